from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.conftest import SimHandle


def vci(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware_py", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def vci_json(sim: SimHandle, transport: str, *args: str, expect_rc: int | None = 0) -> Any:
    """Run ``vci --json <args> <transport flags>`` against the simulator; parse its JSON."""
    cmd, rest = args[0], args[1:]
    sub = [cmd, *rest] if cmd != "dtc" else [cmd, rest[0], *rest[1:]]
    proc = vci("--json", *sub, *sim.cli_args(transport))
    if expect_rc is not None:
        assert proc.returncode == expect_rc, proc.stdout + proc.stderr
    return json.loads(proc.stdout)
