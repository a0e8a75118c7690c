"""Flash test material: images with the simulator's header, made here, and packages signed by a
publisher key generated for the test (TEST material)."""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_py.keys import load_private_key
from firmware_py.uds.flash.package import SequenceParams, build_package
from portal import keys
from tests.conftest import ProcessOutput

EGS_REGION = 0x00080000  # every simulated ECU but the DME (see docs/simulator.md)


def image(version: str, size: int, seed: int = 1) -> bytes:
    header = b"VCIS" + version.encode().ljust(16, b" ")
    header += bytes(64 - len(header))
    body = bytes((i * 31 + seed) & 0xFF for i in range(size - len(header)))
    return header + body


@dataclass
class Publisher:
    root: Path
    trust: Path
    key_file: Path

    def package(
        self,
        name: str,
        ecu: str,
        address: int,
        version: str,
        data: bytes,
        *,
        expects: tuple[str, ...] = (),
        hw: str | None = None,
        fmt: str = "ihex",
        max_block: int | None = None,
        region: int = EGS_REGION,
    ) -> Path:
        kid, key = load_private_key(self.key_file)
        raw = build_package(
            ecu_name=ecu,
            ecu_address=address,
            version=version,
            segments=[(region, data)],
            key=key,
            kid=kid,
            image_format=fmt,
            hw_number=hw,
            sw_versions=expects,
            sequence=SequenceParams(max_block_length=max_block),
        )
        path = self.root / name
        path.write_bytes(raw)
        return path


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    keys.generate(tmp_path / "publisher", "test-publisher")
    trust = tmp_path / "trusted-publishers"
    trust.mkdir()
    (trust / "test-publisher.pub").write_bytes(
        (tmp_path / "publisher" / "test-publisher.pub").read_bytes()
    )
    return Publisher(tmp_path, trust, tmp_path / "publisher" / "test-publisher.key")


@pytest.fixture
def flash_box(basic_box, publisher, monkeypatch):
    """A box with a Basic ticket that trusts the test publisher (VCI_* for every vci started)."""
    monkeypatch.setenv("VCI_SECURITY_PUBLISHER_KEYS_DIR", str(publisher.trust))
    return basic_box


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["EGS_REGION", "Publisher", "image", "sha", "os"]


def cut_point(events: str, rng: random.Random) -> tuple[int, float]:
    """A random moment of a flash whose ``vci --json flash`` printed ``events``, as (events
    printed by then, seconds after the last of them): drawn evenly over the flash's own time, so
    most cuts fall in the long transfers, and placed by the events, so a slower or faster start
    of the process (a loaded machine) does not move it."""
    times = [json.loads(line)["time"] for line in events.splitlines() if line.startswith("{")]
    moment = rng.uniform(times[0], times[-1])
    printed = bisect.bisect_right(times, moment)
    return printed, moment - times[printed - 1]


def step_cut_points(events: str, transfer_cuts: int = 3) -> list[tuple[int, float]]:
    """Cut points (as from ``cut_point``) that each fall in a different part of the flash that
    printed ``events``: before anything was printed (no journal yet), right after each step's
    event (the process is then in that step: sessions and security access with nothing erased,
    the erase, each check, the reset, the version check after it), and ``transfer_cuts`` times
    in the transfer (first progress event, middle, last before 100 %), which the resume must
    restart from the segment's erase. Placed by events, so a loaded machine does not move them;
    one cut per distinct place instead of many random ones in the long transfer."""
    lines = [json.loads(line) for line in events.splitlines() if line.startswith("{")]
    points = [(0, 0.0)]
    for n, e in enumerate(lines):
        if e.get("kind") == "job.step" and e.get("ecu"):
            name = e["step"]
            # the set-up steps (nothing erased yet) are one place: security access stands for them
            setup = ("check package", "extended", "programming session", "DTC", "communication")
            if not name.startswith(("download", *setup)):
                points.append((n + 1, 0.0))
    transfer = [
        n + 1
        for n, e in enumerate(lines)
        if e.get("kind") == "job.progress"
        and str(e.get("step", "")).startswith("download")
        and e.get("percent", 0) < 100
    ]
    picks = sorted({transfer[round(i * (len(transfer) - 1) / max(1, transfer_cuts - 1))]
                    for i in range(transfer_cuts)})  # fmt: skip
    return points + [(n, 0.0) for n in picks]


def transfer_cut_point(
    events: str, rng: random.Random, before_percent: float = 60.0
) -> tuple[int, float]:
    """A cut right after a transfer's progress event of the flash that printed ``events`` (one
    at most ``before_percent`` through its transfer): wherever the machine's load puts the
    flash's other steps, the process is then in a transfer, with the rest of it ahead."""
    lines = [json.loads(line) for line in events.splitlines() if line.startswith("{")]
    during = [
        n + 1
        for n, e in enumerate(lines)
        if e.get("kind") == "job.progress" and 0 < e.get("percent", 0) <= before_percent
    ]
    return rng.choice(during), 0.0


def flash_cut_after(
    args: Sequence[str], point: tuple[int, float], timeout: float = 120
) -> list[str]:
    """``vci --json flash ARGS`` SIGKILLed (a power cut) at ``point`` (from ``cut_point``), or
    when it ends first; the lines it printed."""
    printed, later = point
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_py", "--json", "flash", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    output = ProcessOutput(proc)
    try:
        if output.wait_for_lines(printed, timeout):
            time.sleep(later)  # the moment of the cut is what the tests vary, not a wait
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    output.finish()
    return list(output.lines)
