"""The portal database's retention periods (docs/data-protection.md), applied by ``vci-portal
serve`` at its start and every ``interval`` (a thread of its own), and by ``vci-portal retention
run``: remote sessions, their jobs and the jobs' events older than ``remote_sessions_days``;
expired login sessions and pending logins; the per-address login counts of addresses quiet for
``address_quiet_seconds``; failed-login counters that count nothing any more. Never purchases,
bookings or invoices (10 years, §147 AO, §14b UStG: what the law keeps is not this job's), never
a job that is still running.

The periods are ``[retention]`` in the portal's config file (``<state dir>/portal.toml``, the
``[seller]`` file); a period of 0 keeps for no set time. Every portal process may run the job:
each deletion is one statement, and two processes deleting the same rows delete them once.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import ConfigError
from portal.db.engine import write_transaction
from portal.db.models import (
    AddressAttempts,
    LoginGuard,
    PendingLogin,
    RemoteJob,
    RemoteJobEvent,
    RemoteSessionRecord,
    WebSession,
)

log = logging.getLogger(__name__)
DAY = 86400


@dataclass(frozen=True)
class RetentionConfig:
    remote_sessions_days: float = 365.0
    """remote sessions, their jobs and events, after the session was last active: a year, the
    workshop's liability for its work (0: kept for no set time)"""
    address_quiet_seconds: float = 3600.0
    """a client address's login-attempt count, after its last attempt (longer than any limit's
    window: a row that still counts is never deleted)"""
    interval: float = 3600.0
    """seconds between two runs in ``vci-portal serve``"""

    @classmethod
    def load(cls, path: Path) -> RetentionConfig:
        """``[retention]`` of ``path``; the defaults when the file or the table is missing."""
        try:
            table = tomllib.loads(path.read_text()).get("retention", {})
        except FileNotFoundError:
            return cls()
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path} is not TOML ({err})", hint="See docs/portal.md") from err
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - names)
        bad = [k for k, v in table.items() if not isinstance(v, int | float) or v < 0]
        if unknown or bad:
            raise ConfigError(
                f"{path} [retention]: unknown {', '.join(unknown) or 'nothing'}, not a number "
                f"of 0 or more: {', '.join(bad) or 'nothing'}",
                hint="Keys: " + ", ".join(sorted(names)) + " (docs/data-protection.md)",
            )
        return cls(**{k: float(v) for k, v in table.items()})


def apply(
    factory: sessionmaker[Session], config: RetentionConfig, now: float | None = None
) -> dict[str, int]:
    """Delete what is past its period; how many rows of each table."""
    t = time.time() if now is None else now
    done: dict[str, int] = {}
    quiet = int((t - config.address_quiet_seconds) * 1000)
    # one short transaction each: a login waiting for a row here waits for one statement only
    rounds: list[list[tuple[str, Any]]] = [
        [("web_sessions", delete(WebSession).where(WebSession.expires_at <= int(t)))],
        [("pending_logins", delete(PendingLogin).where(PendingLogin.expires_at <= int(t)))],
        [("address_attempts", delete(AddressAttempts).where(AddressAttempts.last_ms <= quiet))],
        [("login_guards", delete(LoginGuard).where(
            and_(LoginGuard.failures == 0, LoginGuard.locked_until <= int(t))))],
    ]  # fmt: skip
    if config.remote_sessions_days > 0:  # a session with its jobs and events, together
        cutoff = int(t - config.remote_sessions_days * DAY)
        running = exists().where(
            RemoteJob.session_id == RemoteSessionRecord.id,
            RemoteJob.state.in_(("sent", "running")),
        )
        due = select(RemoteSessionRecord.id).where(
            RemoteSessionRecord.last_active_at < cutoff, ~running
        )
        jobs = select(RemoteJob.id).where(RemoteJob.session_id.in_(due))
        rounds.insert(0, [
            ("remote_job_events", delete(RemoteJobEvent).where(RemoteJobEvent.job_id.in_(jobs))),
            ("remote_jobs", delete(RemoteJob).where(RemoteJob.id.in_(jobs))),
            ("remote_sessions", delete(RemoteSessionRecord).where(RemoteSessionRecord.id.in_(due))),
        ])  # fmt: skip
    for statements in rounds:
        with write_transaction(factory) as db:
            for name, statement in statements:
                done[name] = int(db.execute(statement).rowcount)  # type: ignore[attr-defined]
    return done


def run(factory: sessionmaker[Session], config: RetentionConfig, stop: threading.Event) -> None:
    """:func:`apply` now and every ``config.interval`` until ``stop`` (``vci-portal serve``'s
    thread); a failed run is logged and tried again at the next interval."""
    while True:
        try:
            done = apply(factory, config)
            if any(done.values()):
                log.info(
                    "retention: deleted %s", ", ".join(f"{n} {k}" for k, n in done.items() if n)
                )
        except Exception:  # the database away: the next round tries again
            log.exception("retention: the run failed")
        if stop.wait(config.interval):
            return
