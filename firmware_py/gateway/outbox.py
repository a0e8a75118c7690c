"""The outbox: everything the portal must receive (job results, service history entries, session
logs, what tickets have used: ``ticket.activated`` and ``ticket.used``) is written to SQLite first
and delivered at least once, each record with an idempotent id; the portal acknowledges by id.
Nothing is lost across a reboot or a broker outage."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_py.gateway.store import Store

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL,
        created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_attempt REAL)""",
)


#: jobs whose results the portal keeps (what was done to a car: the service history); local reads
#: are logged locally only, every job a remote technician runs is kept (the remote session log)
OUTBOX_KINDS = frozenset(
    {"clear_fault_memory", "coding", "programming", "service_reset", "service_history", "raw_uds"}
    | {"vehicle_test_report"}  # the report the workshop handed over (firmware_py/reports)
)


def wanted(job: dict[str, Any]) -> bool:
    """Whether the portal must have this job's result (a job as :meth:`Job.to_dict` gives it)."""
    return job.get("kind") in OUTBOX_KINDS or job.get("origin") == "portal"


@dataclass(frozen=True)
class Record:
    id: str
    kind: str
    body: dict[str, Any]
    created: float
    attempts: int


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_schema("outbox", SCHEMA)

    def put(self, kind: str, body: dict[str, Any], record_id: str | None = None) -> str:
        """Keep a record for the portal (committed before this returns). The same id twice is one record."""
        with self.store.transaction() as db:
            return self.insert(db, kind, body, record_id)

    @staticmethod
    def insert(
        db: sqlite3.Connection, kind: str, body: dict[str, Any], record_id: str | None = None
    ) -> str:
        """:meth:`put` inside a transaction the caller holds (a record written with the change it
        reports, or neither)."""
        rid = record_id or uuid.uuid4().hex
        db.execute(
            "INSERT OR IGNORE INTO outbox(id, kind, body, created) VALUES (?,?,?,?)",
            (rid, kind, json.dumps(body, default=str), time.time()),
        )
        return rid

    def probe(self) -> None:
        """Prove a record can be kept now: a write to the outbox that commits (and is removed in
        the same transaction). Raises :class:`StorageError` (e.g. the disk is full)."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO outbox(id, kind, body, created) VALUES (?,?,?,?)",
                ("probe", "probe", "x" * 4096, time.time()),
            )
            db.execute("DELETE FROM outbox WHERE id = 'probe'")

    def keep_job(self, job: dict[str, Any], vin: str | None) -> str | None:
        """Keep a finished job's result if the portal must have it (:func:`wanted`); the record
        id is ``job-<job id>``, so keeping it twice is one record."""
        from firmware_py.gateway.booklet_jobs import queue_entries

        if job.get("state") not in ("done", "failed") or not wanted(job):
            return None
        with self.store.transaction() as db:  # the booklet entries it saw go with it, or neither
            queue_entries(db, job)
            return self.insert(db, "job.result", {"vin": vin, "job": job}, f"job-{job['id']}")

    def pending(self, limit: int = 100) -> list[Record]:
        rows = (
            self.store.connection()
            .execute("SELECT * FROM outbox ORDER BY created, id LIMIT ?", (limit,))
            .fetchall()
        )
        return [
            Record(r["id"], r["kind"], json.loads(r["body"]), r["created"], r["attempts"])
            for r in rows
        ]

    def sent(self, ids: list[str]) -> None:
        """Count a delivery attempt (a record stays until acknowledged)."""
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt = ? WHERE id = ?",
                [(time.time(), i) for i in ids],
            )

    def acknowledged(
        self,
        ids: list[str],
        on_delivered: Callable[[sqlite3.Connection, str], None] | None = None,
    ) -> int:
        """The portal stored these: forget them. Unknown or repeated ids are ignored.
        ``on_delivered(db, id)`` runs for each record forgotten now, in the same transaction
        (a help-desk request's ticket is consumed with its record's acknowledgement, or neither)."""
        with self.store.transaction() as db:
            done = 0
            for i in ids:
                if db.execute("DELETE FROM outbox WHERE id = ?", (i,)).rowcount:
                    done += 1
                    if on_delivered is not None:
                        on_delivered(db, i)
            return done

    def count(self) -> int:
        return int(self.store.connection().execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
