"""``vci`` run by root acts as the owner of the state directory (firmware_py/cli/privileges.py):
nothing in the gateway's state directory is ever made by root, or the gateway (its own user)
could not write its database again. Runs only as root (CI does)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import vci


def _nobody_runs_this_python() -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c", "import sqlite3"],
        capture_output=True,
    )
    return done.returncode == 0


needs_nobody = pytest.mark.skipif(
    not _nobody_runs_this_python(),
    reason="needs root and a Python that another user can run (this one may live in /root); "
    "tests/appliance/test_vm_gateway.py checks the same on the box",
)


@pytest.fixture
def owned_state() -> Iterator[tuple[Path, int]]:
    """A state directory that belongs to ``nobody`` (standing for the box's user ``vci``), in a
    directory that user can reach."""
    nobody = pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(dir="/tmp", prefix="vci-owned-"))
    top.chmod(0o755)
    state = top / "state"
    state.mkdir(mode=0o700)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    yield state, nobody.pw_uid
    shutil.rmtree(top)


@needs_nobody
def test_root_makes_the_state_as_its_owner(owned_state) -> None:
    state, uid = owned_state
    done = vci("-v", "ticket", "list", "--state-dir", str(state))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running as nobody, the owner of the state directory" in done.stdout
    made = list(state.rglob("*"))
    assert made and all(p.stat().st_uid == uid for p in made), [
        (p.name, p.stat().st_uid) for p in made
    ]


def test_a_root_owned_state_directory_stays_roots(tmp_path) -> None:
    done = vci("-v", "ticket", "list", "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running as" not in done.stdout
    assert all(p.stat().st_uid == 0 for p in (tmp_path / "state").rglob("*"))
