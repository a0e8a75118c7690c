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


def test_serve_applies_the_retention_periods(tmp_path: Path) -> None:
    """``vci-portal serve`` runs the retention job at its start (then hourly): a client address's
    login count quiet for longer than ``[retention] address_quiet_seconds`` is gone."""
    import time

    from sqlalchemy import select

    from portal import keys
    from portal.db.engine import open_database
    from portal.db.models import AddressAttempts
    from tests.portal.test_cli import SELLER
    from tests.portal.web_client import serve_process

    state = tmp_path / "state"
    state.mkdir()
    (state / "portal.toml").write_text(SELLER + "\n[retention]\naddress_quiet_seconds = 60\n")
    keys.generate(tmp_path / "keys", "portal-test")
    engine, factory = open_database(f"sqlite:///{state / 'portal.sqlite3'}")
    now_ms = int(time.time() * 1000)
    with factory() as db, db.begin():
        db.add(AddressAttempts(client="10.0.0.1", times_ms="1", last_ms=now_ms - 120_000))
        db.add(AddressAttempts(client="10.0.0.2", times_ms="1", last_ms=now_ms))
    with serve_process(state, "--key-dir", str(tmp_path / "keys")):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with factory() as db:
                left = list(db.scalars(select(AddressAttempts.client)))
            if left == ["10.0.0.2"]:
                break
            time.sleep(0.1)
        assert left == ["10.0.0.2"]
    engine.dispose()
