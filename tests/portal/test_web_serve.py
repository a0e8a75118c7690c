"""``vci-portal serve`` as a process on a fresh machine: no database yet (SQLite in the state
dir is made on start), the pages answer, ``--secure-cookies`` marks the cookies Secure."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.portal.web_client import served


def test_serve_starts_on_a_fresh_machine(tmp_path: Path) -> None:
    with served(tmp_path, "--secure-cookies") as base:
        with urllib.request.urlopen(base + "login", timeout=10) as answer:
            assert answer.status == 200
            assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
            cookie = answer.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert b'name="csrf"' in answer.read()
        assert (tmp_path / "state" / "portal.sqlite3").exists()


def test_serve_needs_nothing_but_a_state_dir(tmp_path: Path) -> None:
    """No seller data, no keys: it makes a signing key, serves sign-up, and says that sales wait
    for the seller's data."""
    with served(tmp_path, bare=True) as base, urllib.request.urlopen(base + "signup") as answer:
        assert answer.status == 200
    made = list((tmp_path / "state" / "keys").glob("*.key"))
    assert len(made) == 1 and made[0].with_suffix(".pub").exists()
