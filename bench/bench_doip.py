"""DoIP on loopback against ``vci sim`` in its own process: UDS request round trip, and
TransferData throughput with 4 KiB and 64 KiB blocks, beside raw TCP loopback and beside stock
doipclient 1.2.2, all measured in the same run.

Run: python bench/bench_doip.py [--megabytes 32]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from doipclient import DoIPClient

from bench.common import Sim, bench_vehicle, raw_tcp
from firmware_py.config import UdsConfig
from firmware_py.transport import open_doip_link
from firmware_py.uds.ecu import EcuSession
from firmware_py.uds.security import SecurityProvider

DME, REGION = 0x12, 0x00100000


def programming_session(link) -> EcuSession:
    session = EcuSession(
        link.ecu_connection(DME),
        name="DME",
        address=DME,
        timing=UdsConfig(p2=2.0),
        security=SecurityProvider({DME: "vci-sim-lcg32"}),
    )
    session.open()
    session.change_session("extended")
    session.change_session("programming")
    session.security_access(0x11)
    return session


def start_download(session: EcuSession, total: int) -> int:
    session.routine("start", 0xFF00, struct.pack(">II", REGION, total))
    return session.request_download(REGION, total)


def transfer(send_block, total: int, block: int) -> float:
    data = bytes(block)
    started = time.perf_counter()
    counter = 1
    for _ in range(total // block):
        send_block(counter, data)
        counter = (counter + 1) & 0xFF
    return time.perf_counter() - started


def ours(session: EcuSession, total: int, block: int) -> float:
    start_download(session, total)
    elapsed = transfer(session.transfer_data, total, block)
    session.request_transfer_exit()
    return total / elapsed


def stock(session: EcuSession, sim: Sim, total: int, block: int) -> float:
    client = DoIPClient(
        sim.host, DME, tcp_port=sim.port, udp_port=sim.port, client_logical_address=0x0E81
    )
    try:
        start_download(session, total)

        def send_block(counter: int, data: bytes) -> None:
            client.send_diagnostic(b"\x36" + bytes([counter]) + data)
            client.receive_diagnostic(timeout=2)

        elapsed = transfer(send_block, total, block)
        session.request_transfer_exit()
        return total / elapsed
    finally:
        client.close()


def round_trips(session: EcuSession, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        session.raw(b"\x22\xf1\x90")
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--megabytes", type=int, default=32, help="data per measurement for our path and raw TCP"
    )
    parser.add_argument(
        "--stock-megabytes", type=int, default=8, help="data per measurement for stock doipclient"
    )
    parser.add_argument("--round-trips", type=int, default=2000)
    args = parser.parse_args()
    total, stock_total = args.megabytes << 20, args.stock_megabytes << 20
    sim = Sim("--vehicle", str(bench_vehicle(dme_region=total)))
    link = open_doip_link(sim.host, sim.port)
    try:
        session = programming_session(link)
        median, p99 = round_trips(session, args.round_trips)
        print(
            f"DoIP on loopback, vci sim in its own process; UDS 22 F190 round trip: median {median * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us ({args.round_trips} requests)"
        )
        print(
            f"{'TransferData block':<20} {'ours MB/s':>10} {'stock doipclient':>17} {'raw TCP MB/s':>13} {'ours/raw':>9}"
        )
        for block in (4096, 65536):
            ours_rate = max(ours(session, total, block) for _ in range(3))
            stock_rate = stock(session, sim, stock_total, block)
            raw_rate = max(raw_tcp(total, block) for _ in range(3))
            print(
                f"{block // 1024:>4} KiB{'':<14} {ours_rate / 1e6:>10.1f} {stock_rate / 1e6:>17.1f} {raw_rate / 1e6:>13.1f} {ours_rate / raw_rate:>8.0%}"
            )
        print("targets: ours >= 30 MB/s with 4 KiB blocks, >= 200 MB/s with 64 KiB blocks")
        session.close()
    finally:
        link.close()
        sim.close()


if __name__ == "__main__":
    main()
