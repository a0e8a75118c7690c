"""``vci-portal serve`` as a process on a fresh machine: no database yet (SQLite in the state
dir is made on start), the pages answer, ``--secure-cookies`` marks the cookies Secure."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from portal import keys
from tests.portal.test_cli import SELLER


def test_serve_starts_on_a_fresh_machine(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "portal.toml").write_text(SELLER)
    keys.generate(tmp_path / "keys", "portal-test")
    env = {**os.environ, "VCI_PORTAL_STATE_DIR": str(state)}
    env.pop("VCI_PORTAL_DB", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from portal.cli import main; raise SystemExit(main())", "serve",
         "--port", "0", "--key-dir", str(tmp_path / "keys"), "--secure-cookies"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once listening (or EOF when it failed)
        assert line.startswith("portal on http://127.0.0.1:"), process.stderr.read()  # type: ignore[union-attr]
        base = line.split()[-1]
        with urllib.request.urlopen(base + "login", timeout=10) as answer:
            assert answer.status == 200
            assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
            cookie = answer.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert b'name="csrf"' in answer.read()
        assert (state / "portal.sqlite3").exists()
    finally:
        process.terminate()
        process.wait(timeout=20)
