"""ISO-TP throughput over the in-software CAN bus (python-can ``virtual``), 4095-byte transfers,
STmin 0, normal 11-bit addressing, beside the line rate of a 500 kbit/s CAN bus.

Measured in one run, one process (the GIL keeps it on one core):
  ours   - the gateway's path: firmware_py.transport CanLink -> udsoncan connection -> can-isotp
  plain  - can-isotp stack to stack with the same parameters
Run: python bench/bench_isotp.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import math
import time
import uuid

import can
import isotp

from firmware_py.transport.isotp_link import CanLink, isotp_params

PAYLOAD = bytes(range(256)) * 15 + bytes(255)  # 4095 bytes
ECU_ADDRESS = 0x12
REQUEST_ID, RESPONSE_ID = 0x7E0, 0x7E8


def frames_per_transfer(size: int = len(PAYLOAD)) -> int:
    """First frame (6 bytes), consecutive frames (7 bytes each) and one flow control frame."""
    return 1 + math.ceil((size - 6) / 7) + 1


def line_rate(bitrate: int = 500_000) -> dict[str, float]:
    """A classic CAN data frame, 11-bit id, 8 data bytes: 44 + 64 = 108 bits + 3 interframe space
    = 111 bits without stuff bits; worst-case bit stuffing adds 24 -> 135 bits."""
    best, worst = bitrate / 111, bitrate / 135
    return {
        "frames_best": best,
        "frames_worst": worst,
        "bytes_best": best * 7,
        "bytes_worst": worst * 7,
    }


def ecu_stack(channel: str) -> tuple[can.BusABC, can.Notifier, isotp.NotifierBasedCanStack]:
    bus = can.Bus(interface="virtual", channel=channel)
    notifier = can.Notifier(bus, [], timeout=0.1)
    stack = isotp.NotifierBasedCanStack(
        bus,
        notifier,
        address=isotp.Address(
            isotp.AddressingMode.Normal_11bits, rxid=REQUEST_ID, txid=RESPONSE_ID
        ),
        params=isotp_params(0.0, 0),
    )
    stack.start()
    return bus, notifier, stack


def run(send, receiver: isotp.TransportLayer, seconds: float) -> tuple[int, float]:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        send(PAYLOAD)
        got = receiver.recv(block=True, timeout=5)
        assert got is not None and len(got) == len(PAYLOAD), "transfer lost"
        count += 1
    return count, time.perf_counter() - started


def bench_ours(seconds: float) -> tuple[int, float]:
    channel = f"bench-{uuid.uuid4().hex}"
    ebus, enotifier, ecu = ecu_stack(channel)
    tester_bus = can.Bus(interface="virtual", channel=channel)
    link = CanLink(
        tester_bus,
        addressing="normal",
        normal_ids={ECU_ADDRESS: (REQUEST_ID, RESPONSE_ID)},
        owns_bus=True,
    )
    conn = link.ecu_connection(ECU_ADDRESS)
    conn.open()
    try:
        return run(conn.send, ecu, seconds)
    finally:
        conn.close()
        link.close()
        ecu.stop()
        enotifier.stop()
        ebus.shutdown()


def bench_plain(seconds: float) -> tuple[int, float]:
    channel = f"bench-{uuid.uuid4().hex}"
    ebus, enotifier, ecu = ecu_stack(channel)
    tbus = can.Bus(interface="virtual", channel=channel)
    tnotifier = can.Notifier(tbus, [], timeout=0.1)
    tester = isotp.NotifierBasedCanStack(
        tbus,
        tnotifier,
        address=isotp.Address(
            isotp.AddressingMode.Normal_11bits, txid=REQUEST_ID, rxid=RESPONSE_ID
        ),
        params=isotp_params(0.0, 0),
    )
    tester.start()
    try:
        return run(tester.send, ecu, seconds)
    finally:
        tester.stop()
        tnotifier.stop()
        tbus.shutdown()
        ecu.stop()
        enotifier.stop()
        ebus.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    per = frames_per_transfer()
    rows = []
    for name, fn in (
        ("ours (CanLink + udsoncan connection)", bench_ours),
        ("plain can-isotp", bench_plain),
    ):
        fn(0.3)  # warm up
        n, elapsed = fn(args.seconds)
        rows.append((name, n * len(PAYLOAD) / elapsed, n * per / elapsed))
    lr = line_rate()
    print(f"ISO-TP, 4095-byte transfers, STmin 0, virtual bus, {per} frames per transfer")
    print(f"{'path':<40} {'payload KB/s':>14} {'frames/s':>10}")
    for name, bps, fps in rows:
        print(f"{name:<40} {bps / 1000:>14.1f} {fps:>10.0f}")
    print(
        f"{'500 kbit/s CAN line rate':<40} {lr['bytes_worst'] / 1000:>6.1f}-{lr['bytes_best'] / 1000:<7.1f} {lr['frames_worst']:>4.0f}-{lr['frames_best']:.0f}"
    )
    ours_fps = rows[0][2]
    print(
        f"ours / line rate (worst case frames): {ours_fps / lr['frames_worst']:.1f}x  (target >= 4x, i.e. >= 18,000 frames/s)"
    )


if __name__ == "__main__":
    main()
