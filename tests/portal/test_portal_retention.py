"""The portal database's retention job (portal/retention.py), on SQLite and PostgreSQL: it
deletes what is past its period and nothing else: old remote sessions with their jobs and events
(not a session with a job still running, not a recent one), expired login sessions and pending
logins, quiet addresses' counts, spent failed-login counters; never purchases, bookings or
invoices however old. ``[retention]`` is read from the config file and checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import ConfigError
from portal import credit, login
from portal.accounts import Actor
from portal.credit import BankTransfer, Signer
from portal.db.models import (
    AddressAttempts,
    Base,
    LoginGuard,
    PendingLogin,
    RemoteJob,
    RemoteJobEvent,
    RemoteSessionRecord,
    User,
    WebSession,
)
from portal.invoices import Seller
from portal.retention import DAY, RetentionConfig, apply
from tests.portal.conftest import NOW, claim, sign_up

T = NOW + 2 * 365 * DAY  # "now" of the job: two years after the purchase


def _session(db: Session, owner: Actor, last_active: int, state: str, tag: str) -> None:
    remote = RemoteSessionRecord(workshop_id=owner.workshop_id, user_id=owner.user_id,
                                 device="box-w1", vin=None, started_at=last_active,
                                 last_active_at=last_active)  # fmt: skip
    db.add(remote)
    db.flush()
    job = RemoteJob(session_id=remote.id, workshop_id=owner.workshop_id, user_id=owner.user_id,
                    device="box-w1", kind="identify", params="{}", state=state, summary=tag,
                    created_at=last_active)  # fmt: skip
    db.add(job)
    db.flush()
    db.add(RemoteJobEvent(job_id=job.id, at=last_active, type="job.event", body="{}"))


def test_retention_deletes_what_is_due_and_nothing_else(
    factory: sessionmaker[Session], signer: Signer, seller: Seller, operator: Actor
) -> None:
    owner = sign_up(factory, 1)
    claim(factory, owner, "box-w1")
    with factory() as db, db.begin():
        BankTransfer().book(db, operator, owner.workshop_id or 0, 10_000, "SEPA-1")
    credit.buy_ticket(factory, owner, owner.workshop_id or 0, tariff="basic-9h", device="box-w1",
                      signer=signer, seller=seller, now=NOW)  # fmt: skip
    year_ago = int(T - 365 * DAY)
    with factory() as db, db.begin():
        _session(db, owner, year_ago - 10, "done", "due")
        _session(db, owner, year_ago - 10, "running", "running")  # still running: kept
        _session(db, owner, year_ago + 10, "done", "recent")
        user = db.get(User, owner.user_id)
        assert user is not None
        login.open_session(db, user, now=T - login.SESSION_SECONDS - 1)  # expired
        login.open_session(db, user, now=T - 60)
        db.add(PendingLogin(token_sha256="a" * 64, user_id=user.id, expires_at=int(T) - 1))
        db.add(PendingLogin(token_sha256="b" * 64, user_id=user.id, expires_at=int(T) + 60))
        db.add(AddressAttempts(client="10.0.0.1", times_ms="1", last_ms=(T - 3601) * 1000))
        db.add(AddressAttempts(client="10.0.0.2", times_ms="1", last_ms=(T - 10) * 1000))
        db.add(LoginGuard(login="spent@example.com", failures=0, locked_until=int(T) - 1))
        db.add(LoginGuard(login="counting@example.com", failures=3, locked_until=0))
        db.add(LoginGuard(login="locked@example.com", failures=0, locked_until=int(T) + 60))

    def counts() -> dict[str, int]:
        with factory() as db:
            return {t.name: db.scalar(select(func.count()).select_from(t)) or 0
                    for t in Base.metadata.sorted_tables}  # fmt: skip

    before = counts()
    done = apply(factory, RetentionConfig(), now=T)
    assert done == {"remote_job_events": 1, "remote_jobs": 1, "remote_sessions": 1,
                    "web_sessions": 1, "pending_logins": 1, "address_attempts": 1,
                    "login_guards": 1}  # fmt: skip
    after = counts()
    assert {k: before[k] - after[k] for k in before if before[k] != after[k]} == done
    with factory() as db:
        assert sorted(db.scalars(select(RemoteJob.summary))) == ["recent", "running"]
        assert db.scalar(select(WebSession.expires_at)) == int(T - 60 + login.SESSION_SECONDS)
        assert sorted(db.scalars(select(LoginGuard.login))) == [
            "counting@example.com", "locked@example.com"]  # fmt: skip
    assert apply(factory, RetentionConfig(), now=T) == dict.fromkeys(done, 0)
    # 0: remote sessions kept for no set time
    assert "remote_sessions" not in apply(factory, RetentionConfig(remote_sessions_days=0), T + 1e9)


def test_retention_config_from_the_portal_toml(tmp_path: Path) -> None:
    path = tmp_path / "portal.toml"
    assert RetentionConfig.load(path) == RetentionConfig()
    path.write_text('[seller]\nname = "x"\n[retention]\nremote_sessions_days = 90\n')
    assert RetentionConfig.load(path).remote_sessions_days == 90.0
    for bad in ("remote_session_days = 90", "remote_sessions_days = -1",
                'remote_sessions_days = "a"'):  # fmt: skip
        path.write_text(f"[retention]\n{bad}\n")
        with pytest.raises(ConfigError) as err:
            RetentionConfig.load(path)
        assert "remote_sessions_days" in (err.value.hint or "")
