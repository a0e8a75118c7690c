"""Whole-vehicle update of 4 ECUs behind the gateway (EGS, DSC, BDC, KOMBI), each with a simulated
write delay (every answer of the ECU comes ``--delay`` seconds late, so that each ECU takes
several seconds), programmed with ``vci flash`` one after another and then with ``--parallel``
over the one DoIP (and HSFZ) connection. Prints both times and the ratio of the parallel run to
the longest single ECU (target <= 1.25). All measured in the same run.

Run: PYTHONPATH=. python bench/bench_parallel.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.bench_flash import REGION, package
from bench.common import Sim
from portal import keys

ECUS = (("EGS", 0x18), ("DSC", 0x29), ("BDC", 0x40), ("KOMBI", 0x60))


def _post(sim: Sim, path: str, body: dict) -> None:
    req = urllib.request.Request(
        sim.control + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=5).read()


def flash(sim: Sim, link: list[str], paths: list[Path], env: dict, *extra: str) -> dict:
    """One ``vci flash`` job on a fresh vehicle; its result and the job's seconds."""
    _post(sim, "/reset", {})
    _post(sim, "/battery", {"volts": 14.0})
    for ecu, _ in ECUS:
        _post(sim, "/faults", {"ecu": ecu, "delay": env["BENCH_DELAY"]})
    proc = subprocess.run(
        [sys.executable, "-m", "firmware_py", "--json", "flash", *map(str, paths), *extra, *link],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    if proc.returncode != 0 or not last.get("result"):
        raise SystemExit(f"vci flash failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {"seconds": last["seconds"], "packages": last["result"]["packages"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kib", type=int, default=256, help="image size per ECU")
    parser.add_argument("--delay", type=float, default=0.012, help="seconds per ECU answer")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vci-bench-parallel-"))
    keys.generate(workdir / "keys", "bench-publisher")
    paths = [
        package(workdir, ecu, address, REGION, args.kib * 1024, 0x402)[0] for ecu, address in ECUS
    ]
    env = {
        **os.environ,
        "VCI_SECURITY_TICKETS": "off",
        "VCI_STORAGE_STATE_DIR": str(workdir / "state"),
        "VCI_SECURITY_PUBLISHER_KEYS_DIR": str(workdir / "keys"),
        "BENCH_DELAY": str(args.delay),
    }
    print(
        f"Whole-vehicle update: 4 ECUs x {args.kib} KiB, 1 KiB blocks, each ECU answering "
        f"{args.delay * 1000:.0f} ms late (simulated write delay); vci sim in its own process"
    )
    sim = Sim("--battery", "14.0", hsfz=True)
    try:
        for name, link in (
            ("DoIP", ["--doip", f"{sim.host}:{sim.port}"]),
            ("HSFZ", ["--hsfz", f"{sim.host}:{sim.hsfz_port}"]),
        ):
            seq = flash(sim, link, paths, env)
            par = flash(sim, link, paths, env, "--parallel")
            longest = max(p["seconds"] for p in seq["packages"])
            each = ", ".join(f"{p['ecu']} {p['seconds']:.2f} s" for p in seq["packages"])
            print(f"\n{name}: sequential {seq['seconds']:.2f} s ({each})")
            print(
                f"{name}: --parallel {par['seconds']:.2f} s; parallel / longest single ECU "
                f"({longest:.2f} s) = {par['seconds'] / longest:.2f} (target <= 1.25); "
                f"speed-up {seq['seconds'] / par['seconds']:.2f}x"
            )
    finally:
        sim.close()


if __name__ == "__main__":
    main()
