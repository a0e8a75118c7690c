"""The retention job: what the box keeps about cars, customers and technicians is deleted when
its period in ``[privacy]`` has passed (docs/data-protection.md), and nothing else.

Kept whatever its age: every outbox record (owed to the portal: service booklet entries, job
results, ticket use, help-desk requests), a help-desk request not yet delivered, a programming
journal row that can still be resumed, a trace that is open now (the vehicle link's, a running
bridge job's). Everything else is judged by its own time: a row's timestamp, a file's mtime.

:func:`apply_retention` takes ``now`` and the open traces as arguments and touches only the store
and the state directory; the gateway runs it at start-up and every ``retention_interval``
(:func:`apply_in_gateway`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import Any

from firmware_py.config import PrivacyConfig
from firmware_py.gateway.helpdesk import REQUEST_PREFIX, WAITING
from firmware_py.gateway.store import Store

log = logging.getLogger(__name__)
DAY = 86400.0
TRACES_DIR, REPORTS_DIR = "traces", "reports"

#: (what, table, time column, extra condition, the [privacy] field of its period)
ROW_RULES: tuple[tuple[str, str, str, str, str], ...] = (
    ("job_log", "job_log", "finished", "", "job_log_days"),
    ("booklet_queued", "booklet_queued", "queued", "", "job_log_days"),
    (
        "helpdesk",
        "helpdesk",
        "created",
        # delivered (or answered), and none of its records still in the outbox
        f" AND state != '{WAITING}'"
        f" AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id = '{REQUEST_PREFIX}' || helpdesk.id)",
        "helpdesk_days",
    ),
    ("battery_history", "battery_history", "time", "", "battery_log_days"),
    ("coding_backups", "coding_backups", "taken_at", "", "coding_backups_days"),
    (
        "flash_journal",
        "flash_jobs",
        "updated",
        " AND state IN ('done', 'refused')",
        "flash_journal_days",
    ),
    ("tablets", "tablets", "last_seen", "", "tablets_days"),
    ("pairing_failures", "pairing_code_failures", "at", "", "pairing_failures_days"),
)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def cutoff(policy: PrivacyConfig, field: str, now: float) -> float | None:
    """The time before which a kind of record is due; None: no time limit for it."""
    days = float(getattr(policy, field))
    return now - days * DAY if days > 0 else None


def _old_files(
    folder: Path,
    pattern: str,
    before: float | None,
    keep: Collection[Path],
    active: Collection[str],
) -> int:
    if before is None or not folder.is_dir():
        return 0
    kept = {Path(p).resolve() for p in keep}
    deleted = 0
    for path in sorted(folder.glob(pattern)):
        try:
            if path.stat().st_mtime >= before or path.resolve() in kept:
                continue
        except OSError:
            continue  # gone meanwhile
        if any(job in path.name for job in active if job):
            continue  # a running job's trace (the bridge names its traces by job id)
        path.unlink(missing_ok=True)
        deleted += 1
    return deleted


def apply_retention(
    store: Store,
    policy: PrivacyConfig,
    now: float,
    *,
    open_traces: Collection[Path] = (),
    active_jobs: Collection[str] = (),
) -> dict[str, int]:
    """Delete what is due at ``now``; returns how many of each kind were deleted."""
    state = store.state_dir
    done = {
        "traces": _old_files(
            state / TRACES_DIR,
            "*.pcap",
            cutoff(policy, "traces_days", now),
            open_traces,
            active_jobs,
        ),
        "reports": _old_files(
            state / REPORTS_DIR, "*.json", cutoff(policy, "reports_days", now), (), ()
        ),
    }
    db = store.connection()
    db.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not left in free pages
    tables = _tables(db)
    with store.transaction() as tx:
        for what, table, column, extra, field in ROW_RULES:
            before = cutoff(policy, field, now)
            if table not in tables or before is None:
                done[what] = 0
                continue
            if "outbox" in extra and "outbox" not in tables:
                extra = extra.split(" AND NOT EXISTS")[0]
            done[what] = tx.execute(
                f"DELETE FROM {table} WHERE {column} < ?{extra}", (before,)
            ).rowcount
    if any(done.values()):
        # the deleted rows' old pages leave the write-ahead log too
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("retention: deleted %s", ", ".join(f"{n} {k}" for k, n in done.items() if n))
    return done


def apply_in_gateway(gateway: Any) -> dict[str, int]:
    """:func:`apply_retention` for the running gateway (its trusted time, the trace its link
    writes, its running jobs), and its finished jobs of the job journal's age forgotten from
    memory (the tablet's list, the session log). Off the loop."""
    from firmware_py.gateway.helpdesk import link_traces

    now, policy = gateway.now(), gateway.privacy
    runner = gateway.runner
    done = apply_retention(
        gateway.store, policy, now,
        open_traces=link_traces(gateway.worker.vehicle),
        active_jobs=[job.id for job in runner.active()],
    )  # fmt: skip
    before = cutoff(policy, "job_log_days", now)
    if before is not None:
        for jid, job in list(runner.jobs.items()):
            if (job.finished or now) < before:
                runner.jobs.pop(jid, None)
    return done
