"""Start-up of our commands as a user runs them: wall time and peak resident memory of whole
processes (the installed console scripts), beside bare Python and python-can's logger, all
measured in the same run. ``vci identify --doip`` runs against ``vci sim`` in its own process.

Each command runs ``--runs`` times, the commands taking turns so that any disturbance of the
machine falls on all of them alike; each child is reaped with ``os.wait4``, which gives that one
process's ``ru_maxrss`` (``RUSAGE_CHILDREN`` would give the largest child so far).

Run: PYTHONPATH=. python bench/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Sim

TARGET_HELP_SECONDS = 0.150


def script(name: str) -> list[str]:
    """The console script as installed beside this Python, else ``python -m`` of its package."""
    path = Path(sys.executable).parent / name
    if path.exists():
        return [str(path)]
    return [sys.executable, "-m", {"vci": "firmware_py", "vci-portal": "portal.cli"}[name]]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak resident bytes of one whole process, its output discarded."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - started
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return elapsed, usage.ru_maxrss * 1024  # Linux gives KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    opts = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vci-bench-startup-"))
    (root / "portal-keys").mkdir()
    env = {
        # as a user runs them: with byte code cached (the warm-up run writes it)
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "VCI_CONFIG": str(root / "vci.toml"),  # an empty file: a box's defaults
        "VCI_STORAGE_STATE_DIR": str(root / "state"),
        "VCI_SECURITY_PORTAL_KEYS_DIR": str(root / "portal-keys"),
    }
    (root / "vci.toml").write_text("")
    (root / "state").mkdir()
    sim = Sim()
    try:
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -m can.logger --help": [sys.executable, "-m", "can.logger", "--help"],
            "vci --help": [*script("vci"), "--help"],
            "vci-portal --help": [*script("vci-portal"), "--help"],
            "vci identify --doip (vci sim)": [
                *script("vci"),
                "identify",
                "--doip",
                f"{sim.host}:{sim.port}",
            ],
        }
        for argv in commands.values():  # warm the page cache and __pycache__
            run_once(argv, env)
        samples: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
        for _ in range(opts.runs):
            for name, argv in commands.items():
                samples[name].append(run_once(argv, env))
    finally:
        sim.close()

    wall = {n: statistics.median(s[0] for s in runs) for n, runs in samples.items()}
    rss = {n: statistics.median(s[1] for s in runs) for n, runs in samples.items()}
    logger = wall["python -m can.logger --help"]
    print(
        f"Start-up, whole processes, median of {opts.runs} runs each (commands taking turns), "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'command':<34} {'wall ms':>8} {'peak RSS MiB':>13} {'/ can.logger':>13}")
    for name in commands:
        print(
            f"{name:<34} {wall[name] * 1e3:8.1f} {rss[name] / 2**20:13.1f} "
            f"{wall[name] / logger:12.2f}x"
        )
    help_s = wall["vci --help"]
    met = help_s <= logger and help_s < TARGET_HELP_SECONDS
    print(
        f"target: vci --help <= python -m can.logger --help and < {TARGET_HELP_SECONDS * 1e3:.0f} ms: "
        f"{'met' if met else 'NOT met'} ({help_s * 1e3:.1f} ms, {help_s / logger:.2f}x the logger)"
    )


if __name__ == "__main__":
    main()
