"""In the appliance VM (image/build, booted as tests/appliance does): ISO-TP 4095-byte transfers on
one real SocketCAN bus (vcan0), the tester side through the gateway's CanLink over the kernel's
ISO-TP (CAN_ISOTP sockets) and over can-isotp's user-space stack, the ECU side a kernel ISO-TP
socket in both runs; frames/s and CPU time (user + system of the process) per transfer. Then
the box's boot to page-ready: READY=1 of vci-gateway.service, sent once the page listens.

Run on the host, as root (builds or reuses the image, boots it, runs this file inside):
    PYTHONPATH=. .venv/bin/python bench/bench_vm_isotp.py [--seconds 5]
Inside the VM the same file runs with ``--inside`` (the image's Python, /opt/vci/venv).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAYLOAD = bytes(range(256)) * 15 + bytes(255)  # 4095 bytes
ECU_ADDRESS = 0x12
REQUEST_ID, RESPONSE_ID = 0x7E0, 0x7E8
CHANNEL = "vcan0"


def frames_per_transfer(size: int = len(PAYLOAD)) -> int:
    """First frame (6 bytes), consecutive frames (7 bytes each) and one flow control frame."""
    return 1 + math.ceil((size - 6) / 7) + 1


def measure(stack: str, seconds: float) -> dict[str, float]:
    """Transfers tester -> ECU for ``seconds`` with the tester's ISO-TP on ``stack``."""
    import can
    import isotp

    from firmware_py.transport.isotp_link import CanLink

    ecu = isotp.socket(timeout=5)
    ecu.set_fc_opts(bs=0, stmin=0)
    ecu.bind(CHANNEL, isotp.Address(isotp.AddressingMode.Normal_11bits, rxid=REQUEST_ID,
                                    txid=RESPONSE_ID))  # fmt: skip
    bus = can.Bus(interface="socketcan", channel=CHANNEL)
    link = CanLink(
        bus,
        addressing="normal",
        normal_ids={ECU_ADDRESS: (REQUEST_ID, RESPONSE_ID)},
        owns_bus=True,
        isotp_stack=stack,
    )
    conn = link.ecu_connection(ECU_ADDRESS)
    conn.open()
    try:
        for _ in range(3):  # warm up
            conn.send(PAYLOAD)
            assert ecu.recv() == PAYLOAD
        count = 0
        cpu0, t0 = os.times(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            conn.send(PAYLOAD)
            got = ecu.recv()
            assert got == PAYLOAD, "transfer lost or damaged"
            count += 1
        elapsed, cpu1 = time.perf_counter() - t0, os.times()
    finally:
        conn.close()
        link.close()
        ecu.close()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "transfers": count,
        "frames_per_s": count * frames_per_transfer() / elapsed,
        "kbytes_per_s": count * len(PAYLOAD) / elapsed / 1000,
        "ms_per_transfer": elapsed / count * 1000,
        "cpu_ms_per_transfer": cpu / count * 1000,
    }


def inside(seconds: float) -> None:
    subprocess.run(["modprobe", "vcan"], check=True)
    subprocess.run(["modprobe", "can-isotp"], check=True)
    if subprocess.run(["ip", "link", "show", CHANNEL], capture_output=True).returncode != 0:
        subprocess.run(["ip", "link", "add", CHANNEL, "type", "vcan"], check=True)
    subprocess.run(["ip", "link", "set", CHANNEL, "up"], check=True)
    print(json.dumps({stack: measure(stack, seconds) for stack in ("kernel", "user")}))


def ready_time(vm: object) -> float | None:
    """Seconds from the kernel's start to vci-gateway.service's READY=1, which the gateway sends
    once its page listens and its vehicle worker runs (firmware_py/gateway/sd_notify.py)."""
    run = vm.run  # type: ignore[attr-defined]
    out = run("systemctl show -p ActiveEnterTimestampMonotonic --value vci-gateway.service").out
    return int(out.strip() or 0) / 1e6 or None


def host(seconds: float) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.appliance.conftest import Vm, build_image, qemu_accel

    t0 = time.monotonic()
    manifest = build_image()
    build_s = time.monotonic() - t0
    with tempfile.TemporaryDirectory(prefix="vci-bench-vm-") as tmp:
        vm = Vm(manifest, Path(tmp))
        try:
            boot_s = vm.start()
            vm.wait_for("systemctl is-system-running --wait >/dev/null; true", 180, "boot done")
            ready = ready_time(vm)
            page = vm.run("curl -s -o /dev/null -w '%{http_code}' http://192.168.73.1:8080/").out
            code = base64.b64encode(Path(__file__).read_bytes()).decode()
            vm.check(f"echo {code} | base64 -d > /tmp/bench_vm_isotp.py")
            out = vm.check(
                f"/opt/vci/venv/bin/python /tmp/bench_vm_isotp.py --inside --seconds {seconds}",
                timeout=seconds * 4 + 120,
            )
        finally:
            vm.stop()
    figures = json.loads(out.strip().splitlines()[-1])
    per = frames_per_transfer()
    print(f"appliance VM (QEMU {qemu_accel()}, 2 vCPUs), ISO-TP on vcan0, 4095-byte transfers,")
    print(f"STmin 0, block size 0, {per} frames per transfer; ECU side: a kernel ISO-TP socket")
    print(
        f"{'tester ISO-TP':<36} {'frames/s':>9} {'KB/s':>8} {'ms/transfer':>12} {'CPU ms/tr':>10}"
    )
    for stack, name in (("kernel", "kernel (CAN_ISOTP socket)"), ("user", "can-isotp user space")):
        f = figures[stack]
        print(
            f"{name:<36} {f['frames_per_s']:>9.0f} {f['kbytes_per_s']:>8.1f} "
            f"{f['ms_per_transfer']:>12.2f} {f['cpu_ms_per_transfer']:>10.2f}"
        )
    print(f"image build (cached when unchanged)  {build_s:6.1f} s")
    print(f"QEMU start to the test agent         {boot_s:6.1f} s")
    shown = f"{ready:6.1f} s" if ready is not None else "not reached"
    print(f"kernel start to READY=1 (page listening)  {shown}; the page then answered HTTP {page}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inside", action="store_true", help="measure (inside the VM)")
    args = parser.parse_args()
    if args.inside:
        inside(args.seconds)
    else:
        host(args.seconds)


if __name__ == "__main__":
    main()
