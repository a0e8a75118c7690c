"""ENET on loopback against ``vci sim`` in its own process: BMW HSFZ beside DoIP, both measured
in the same run against the same simulated ECU - UDS 22 F190 round trip, and TransferData
throughput with 4 KiB and 64 KiB blocks.

Run: python bench/bench_enet.py [--megabytes 32]
"""

from __future__ import annotations

import argparse

from bench.bench_doip import ours, programming_session, round_trips
from bench.common import Sim, bench_vehicle
from firmware_py.transport import open_doip_link, open_hsfz_link


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=32, help="data per measurement")
    parser.add_argument("--round-trips", type=int, default=2000)
    args = parser.parse_args()
    total = args.megabytes << 20
    sim = Sim("--vehicle", str(bench_vehicle(dme_region=total)), hsfz=True)
    links = {
        "DoIP": open_doip_link(sim.host, sim.port),
        "HSFZ": open_hsfz_link(sim.host, sim.hsfz_port),
    }
    try:
        sessions = {name: programming_session(link) for name, link in links.items()}
        print(f"ENET on loopback, vci sim in its own process, {args.megabytes} MiB per transfer")
        print(f"{'':<6} {'22 F190 median':>15} {'p99':>8} {'4 KiB MB/s':>11} {'64 KiB MB/s':>12}")
        for name, session in sessions.items():
            median, p99 = round_trips(session, args.round_trips)
            rates = [max(ours(session, total, block) for _ in range(3)) for block in (4096, 65536)]
            print(
                f"{name:<6} {median * 1e6:>12.0f} us {p99 * 1e6:>5.0f} us"
                f" {rates[0] / 1e6:>11.1f} {rates[1] / 1e6:>12.1f}"
            )
        for session in sessions.values():
            session.close()
    finally:
        for link in links.values():
            link.close()
        sim.close()


if __name__ == "__main__":
    main()
