"""Flash throughput: over DoIP on loopback (``vci sim`` in its own process, its DME without write
delay) beside raw TCP loopback with the same block sizes, and over the in-software CAN bus
(python-can ``virtual``, simulator in this process) beside the 500 kbit/s line rate; plus the
resident memory of a ``vci flash`` process programming 1 MiB. All measured in the same run.

Run: PYTHONPATH=. python bench/bench_flash.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.bench_isotp import line_rate
from bench.common import Sim, bench_vehicle, raw_tcp
from firmware_py.config import TransportConfig
from firmware_py.gateway.flash_journal import FlashJournal
from firmware_py.gateway.store import Store
from firmware_py.keys import load_private_key, load_public_keys
from firmware_py.sim.runtime import SimOptions, SimulatedVehicle
from firmware_py.sim.vehicle import load_vehicle
from firmware_py.uds.flash.package import SequenceParams, build_package, read_package
from firmware_py.uds.flash.sequencer import FlashOptions, Sequencer
from firmware_py.uds.vehicle import VehicleSession
from portal import keys

DME, DSC, DME_REGION, REGION = 0x12, 0x29, 0x00100000, 0x00080000


def make_image(version: str, size: int) -> bytes:
    header = (b"VCIS" + version.encode().ljust(16, b" ")).ljust(64, b"\0")
    return header + os.urandom(size - 64)


def package(
    workdir: Path, ecu: str, address: int, region: int, size: int, max_block: int | None
) -> tuple[Path, object]:
    kid, key = load_private_key(workdir / "keys" / "bench-publisher.key")
    raw = build_package(
        ecu_name=ecu,
        ecu_address=address,
        version="99.00.01",
        segments=[(region, make_image("99.00.01", size))],
        key=key,
        kid=kid,
        image_format="bin",
        sequence=SequenceParams(max_block_length=max_block),
    )
    path = workdir / f"{ecu}-{size}-{max_block}.vcipkg"
    path.write_bytes(raw)
    return path, read_package(raw, load_public_keys(workdir / "keys"))


def run_flash(vehicle: VehicleSession, pkg, workdir: Path) -> dict:
    journal = FlashJournal(Store(workdir / f"state-{uuid.uuid4().hex}"))
    journal.begin("bench", [])
    seq = Sequencer(
        vehicle.ecu(pkg.ecu_address),
        pkg,
        journal=journal,
        job_id="bench",
        voltage=lambda: 14.0,
        options=FlashOptions(journal_every=256, voltage_interval=1e9),
    )
    return seq.run()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=16, help="image size for the DoIP runs")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vci-bench-flash-"))
    keys.generate(workdir / "keys", "bench-publisher")
    size = args.megabytes << 20

    sim = Sim("--vehicle", str(bench_vehicle(dme_region=size)), "--battery", "14.0")
    vehicle = VehicleSession.open(TransportConfig(doip_host=sim.host, doip_port=sim.port), "doip")
    print(
        f"Flash over DoIP on loopback, vci sim in its own process, {args.megabytes} MiB image, no write delay"
    )
    print(f"{'block':<10} {'flash MB/s':>11} {'raw TCP MB/s':>13} {'whole job s':>12}")
    try:
        for max_block in (0x1002, 0x10002):
            _, pkg = package(workdir, "DME", DME, DME_REGION, size, max_block)
            result = max(
                (run_flash(vehicle, pkg, workdir) for _ in range(2)),
                key=lambda r: r["transfer_rate"],
            )
            raw = raw_tcp(size, max_block - 2)
            print(
                f"{(max_block - 2) // 1024:>3} KiB{'':<5} {result['transfer_rate'] / 1e6:>11.1f} {raw / 1e6:>13.1f} {result['seconds']:>12.2f}"
            )
    finally:
        vehicle.close()
        sim.close()

    channel = f"bench-{uuid.uuid4().hex}"
    options = SimOptions(
        doip_port=None, can_interface="virtual", can_channel=channel, announce_to=None
    )
    with SimulatedVehicle(load_vehicle(), options) as simulated:
        simulated.inject(battery=14.0)
        can_vehicle = VehicleSession.open(
            TransportConfig(can_interface="virtual", can_channel=channel), "can"
        )
        _, pkg = package(workdir, "DSC", DSC, REGION, 512 * 1024, None)
        result = run_flash(can_vehicle, pkg, workdir)
        can_vehicle.close()
    lr = line_rate()
    print(
        "\nFlash over ISO-TP on the in-software CAN bus (virtual, simulator in this process), 512 KiB, BMW addressing"
    )
    print(
        f"  {result['transfer_rate'] / 1000:.1f} KB/s of image data; 500 kbit/s line rate carries {lr['bytes_worst'] / 1000:.1f}-{lr['bytes_best'] / 1000:.1f} KB/s "
        f"({result['transfer_rate'] / lr['bytes_best']:.1f}x the best case)"
    )

    # resident memory of the real command programming 1 MiB over DoIP
    sim = Sim("--battery", "14.0")
    try:
        path, _ = package(workdir, "EGS", 0x18, REGION, 1024 * 1024, None)
        env = {
            **os.environ,
            "VCI_SECURITY_TICKETS": "off",
            "VCI_STORAGE_STATE_DIR": str(workdir / "state-cli"),
            "VCI_SECURITY_PUBLISHER_KEYS_DIR": str(workdir / "keys"),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware_py",
                "flash",
                str(path),
                "--doip",
                f"{sim.host}:{sim.port}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = 0
        while proc.poll() is None:  # VmHWM of the flashing process itself, sampled while it runs
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak = max(
                    peak,
                    int(
                        next(
                            line.split()[1]
                            for line in status.splitlines()
                            if line.startswith("VmHWM")
                        )
                    ),
                )
            except (OSError, StopIteration):
                pass
            time.sleep(0.01)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        rss = peak / 1024
        print(f"\nvci flash of 1 MiB over DoIP: peak resident memory {rss:.1f} MB (target < 80 MB)")
    finally:
        sim.close()
    print("targets: DoIP >= 30 MB/s (4 KiB blocks), >= 200 MB/s (64 KiB blocks); CAN >= 100 KB/s")


if __name__ == "__main__":
    main()
