"""The ENET bridge's cost on loopback: what a workshop tester sees through the box's bridge
against what it sees talking to the car directly, both measured in the same run against the same
``vci sim`` (in its own process): UDS 22 F190 round trip (median and p99; the bridge adds the
difference) and TransferData throughput with 4 KiB and 64 KiB blocks, over HSFZ and DoIP.

The bridge runs in its own process as the gateway runs it: ``bridge_net.Hub`` in relay mode
(every frame parsed, guarded and traced as pcap on both sides), admitting 127.0.0.1.

Run: python bench/bench_bridge.py [--megabytes 16] [--round-trips 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.bench_doip import ours, programming_session, round_trips
from bench.common import Sim, bench_vehicle
from firmware_py.transport import open_doip_link
from firmware_py.transport.hsfz_link import open_hsfz_link

TRACE = os.environ.get("BENCH_BRIDGE_TRACE", "1") == "1"


def serve(car_host: str, hsfz_port: int, doip_port: int, control: str) -> None:
    """The bridge's process: relay to the simulator until stdin closes."""
    from firmware_py.config import BridgeConfig
    from firmware_py.gateway.bridge_guard import Guard
    from firmware_py.gateway.bridge_net import BridgeIdentity, EnetCar, Hub, session_pcaps
    from firmware_py.transport.hsfz import HsfzIdentity

    vin = "WBAJA71090B123456"
    traces = Path(tempfile.mkdtemp(prefix="vci-bench-bridge-"))

    async def voltage() -> float:
        def read() -> float:
            with urllib.request.urlopen(control + "/state", timeout=5) as resp:
                return float(json.loads(resp.read())["battery_voltage"])

        return await asyncio.to_thread(read)

    async def main() -> None:
        tester_pcap, car_pcap = session_pcaps(traces / "tester.pcap", traces / "car.pcap")
        hub = Hub(
            "127.0.0.1",
            BridgeConfig(listen_host="127.0.0.1", hsfz_port=0, hsfz_control_port=0, doip_port=0),
            EnetCar((car_host, hsfz_port), (car_host, doip_port)),
            Guard(13.0),
            BridgeIdentity(vin, hsfz=HsfzIdentity(0x10, "001A37C0FFEE", vin)),
            voltage,
            lambda refusal: print(f"refused: {refusal.reason}", file=sys.stderr),
            tester_pcap=tester_pcap if TRACE else None,
            car_pcap=car_pcap if TRACE else None,
        )
        ports = await hub.start()
        print(json.dumps(ports), flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await hub.stop()

    asyncio.run(main())


def measure(link, total: int, n: int) -> tuple[float, float, float, float]:
    session = programming_session(link)
    try:
        median, p99 = round_trips(session, n)
        rates = [max(ours(session, total, block) for _ in range(2)) for block in (4096, 65536)]
        return median, p99, rates[0], rates[1]
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=16, help="data per measurement")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--serve", nargs=4, metavar=("HOST", "HSFZ", "DOIP", "CONTROL"))
    args = parser.parse_args()
    if args.serve:
        host, hsfz_port, doip_port, control = args.serve
        profile = os.environ.get("BENCH_BRIDGE_PROFILE")  # a file for the bridge's cProfile
        if profile:
            import cProfile

            cProfile.runctx(
                "serve(host, int(hsfz_port), int(doip_port), control)",
                globals(),
                locals(),
                profile,
            )
        else:
            serve(host, int(hsfz_port), int(doip_port), control)
        return
    total = args.megabytes << 20
    sim = Sim("--vehicle", str(bench_vehicle(dme_region=total)), hsfz=True)
    request = urllib.request.Request(
        sim.control + "/battery",
        data=b'{"volts": 13.8}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()  # above the programming floor
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bench_bridge",
            "--serve",
            sim.host,
            str(sim.hsfz_port),
            str(sim.port),
            sim.control,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bridge.stdout is not None
        ports = json.loads(bridge.stdout.readline())
        paths = {
            "HSFZ direct": lambda: open_hsfz_link(sim.host, sim.hsfz_port),
            "HSFZ bridge": lambda: open_hsfz_link("127.0.0.1", ports["hsfz"]),
            "DoIP direct": lambda: open_doip_link(sim.host, sim.port, gateway_address=0x10),
            "DoIP bridge": lambda: open_doip_link("127.0.0.1", ports["doip"], gateway_address=0x10),
        }
        print(
            f"ENET bridge on loopback, vci sim and the bridge in their own processes, "
            f"{args.megabytes} MiB per transfer, {args.round_trips} round trips"
        )
        print(f"{'':<12} {'22 F190 median':>15} {'p99':>9} {'4 KiB MB/s':>11} {'64 KiB MB/s':>12}")
        results = {}
        for name, opener in paths.items():
            link = opener()
            try:
                results[name] = measure(link, total, args.round_trips)
            finally:
                link.close()
            median, p99, r4, r64 = results[name]
            print(
                f"{name:<12} {median * 1e6:>12.0f} us {p99 * 1e6:>6.0f} us {r4 / 1e6:>11.1f} "
                f"{r64 / 1e6:>12.1f}"
            )
        for protocol in ("HSFZ", "DoIP"):
            d, b = results[f"{protocol} direct"], results[f"{protocol} bridge"]
            print(
                f"{protocol}: the bridge adds {(b[0] - d[0]) * 1e6:.0f} us median, "
                f"{(b[1] - d[1]) * 1e6:.0f} us p99 to a 22 F190 round trip; "
                f"throughput {b[3] / d[3]:.0%} of direct with 64 KiB blocks"
            )
    finally:
        if bridge.stdin is not None:
            bridge.stdin.close()
        bridge.wait(timeout=10)
        sim.close()


if __name__ == "__main__":
    main()
