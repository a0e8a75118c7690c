"""The box's journal of the jobs it ran, whoever asked (the tablet, the portal, a ``vci``
command), kept in SQLite: one row per finished job with what a session log shows (kind, ECU, who,
state, error, times), the newest :data:`KEEP`. A help-desk request from the box's command line
carries the jobs of the last :data:`SESSION_HOURS` from it as its session log (a request through
the gateway carries the gateway's own jobs since it started; docs/helpdesk.md)."""

from __future__ import annotations

import json
from typing import Any

from firmware_py.gateway.store import Store

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS job_log (
        id TEXT PRIMARY KEY, finished REAL NOT NULL, vin TEXT, entry TEXT NOT NULL)""",
)
KEEP = 2000
SESSION_HOURS = 8
"""a command-line session: the jobs of a working day's shift on this box"""
FIELDS = ("id", "kind", "ecu", "origin", "who", "state", "error", "created", "finished")


def entry(job: dict[str, Any]) -> dict[str, Any]:
    """What the session log shows of a job (as :meth:`Job.to_dict` gives it): no parameters,
    no results (they may be large or carry data the help desk does not need)."""
    return {k: job.get(k) for k in FIELDS}


def record(store: Store, job: dict[str, Any], vin: str | None) -> None:
    """Keep a finished job (the same job twice is one row)."""
    if job.get("finished") is None:
        return
    store.ensure_schema("job_log", SCHEMA)
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO job_log VALUES (?,?,?,?)",
            (job["id"], float(job["finished"]), vin, json.dumps(entry(job), default=str)),
        )
        db.execute(
            "DELETE FROM job_log WHERE rowid NOT IN"
            " (SELECT rowid FROM job_log ORDER BY finished DESC LIMIT ?)",
            (KEEP,),
        )


def since(store: Store, when: float, limit: int = 500) -> list[dict[str, Any]]:
    """The jobs finished since ``when`` (the newest ``limit``), oldest first, each with its VIN."""
    store.ensure_schema("job_log", SCHEMA)
    rows = (
        store.connection()
        .execute(
            "SELECT vin, entry FROM job_log WHERE finished >= ? ORDER BY finished DESC LIMIT ?",
            (when, limit),
        )
        .fetchall()
    )
    return [{**json.loads(r[1]), "vin": r[0]} for r in reversed(rows)]
