"""Running ``vci`` against the simulator in the integration tests."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import SimHandle, vci


def vci_json(sim: SimHandle, transport: str, *args: str, expect_rc: int | None = 0) -> Any:
    """Run ``vci --json <args> <transport flags>`` against the simulator; parse its JSON."""
    proc = vci("--json", *args, *sim.cli_args(transport))
    if expect_rc is not None:
        assert proc.returncode == expect_rc, proc.stdout + proc.stderr
    return json.loads(proc.stdout)
