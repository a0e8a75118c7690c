"""The programming journal in the SQLite store: what a flash job is doing, committed before the
sequencer moves on, so that after a crash or a power cut ``vci flash --resume`` (or the gateway at
start-up) knows exactly where the ECU stands and continues from the last safe point.

One row per job (a whole-vehicle job has several packages, flashed in order), or, for a parallel
job, one row per ECU (``<job>#<n>``, each with its one package): each ECU resumes on its own.
Rows are written from several threads then (SQLite WAL, one connection per thread, short
transactions: :mod:`.store`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from firmware_py.gateway.store import Store
from firmware_py.i18n import N_, Text

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS flash_jobs (
        job_id TEXT PRIMARY KEY,
        packages TEXT NOT NULL,          -- JSON list of {"path", "sha256", "ecu", "version"}
        current INTEGER NOT NULL,        -- index of the package being flashed
        step_index INTEGER NOT NULL,     -- first body step of that package not yet done
        step_name TEXT NOT NULL,
        segment INTEGER, bytes_done INTEGER, blocks INTEGER,
        state TEXT NOT NULL,             -- running, stopped, refused, done
        message TEXT NOT NULL,
        started REAL NOT NULL, updated REAL NOT NULL)""",
)


@dataclass(frozen=True)
class FlashRecord:
    job_id: str
    packages: list[dict[str, Any]]
    current: int
    step_index: int
    step_name: str
    segment: int | None
    bytes_done: int | None
    blocks: int | None
    state: str
    message: str
    updated: float

    def where(self) -> str:
        return str(self.where_text())

    def where_text(self) -> Text:
        """Where the job stands, as whole sentences for the reader's language."""
        pkg = self.packages[self.current] if self.current < len(self.packages) else {}
        ecu = pkg.get("ecu", "?")
        if self.state == "done":
            return Text(
                N_("{ecu}: programmed and verified ({version})"),
                {"ecu": ecu, "version": pkg.get("version")},
            )
        if self.state == "refused":
            return Text(N_("{ecu}: refused before anything was changed"), {"ecu": ecu})
        values = {"ecu": ecu, "step": self.step_index + 1, "name": self.step_name}
        if not self.blocks:
            return Text(
                N_("{ecu}: at step {step} ({name}) - resume with: vci flash --resume"), values
            )
        return Text(
            N_(
                "{ecu}: at step {step} ({name}), {blocks} blocks ({size} bytes) of segment "
                "{segment} written - resume with: vci flash --resume"
            ),
            values
            | {"blocks": self.blocks, "size": self.bytes_done, "segment": (self.segment or 0) + 1},
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "where": self.where()}


class FlashJournal:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_schema("flash_journal", SCHEMA)

    def begin(self, job_id: str, packages: list[dict[str, Any]]) -> None:
        self.begin_many({job_id: packages})

    def begin_many(self, jobs: dict[str, list[dict[str, Any]]]) -> None:
        """Rows for several jobs in one transaction: a parallel job's ECUs are journaled all
        or none, so that a power cut cannot leave some of them out of the resume."""
        now = time.time()
        with self.store.transaction() as db:
            for job_id, packages in jobs.items():
                db.execute(
                    "INSERT INTO flash_jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        job_id,
                        json.dumps(packages),
                        0,
                        0,
                        "not started",
                        None,
                        None,
                        None,
                        "running",
                        "",
                        now,
                        now,
                    ),
                )

    def _update(self, job_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        assigns = ", ".join(f"{k} = ?" for k in fields)
        with self.store.transaction() as db:
            db.execute(
                f"UPDATE flash_jobs SET {assigns} WHERE job_id = ?", (*fields.values(), job_id)
            )

    # the sequencer's Journal protocol
    def step(self, job_id: str, index: int, name: str, done: bool) -> None:
        self._update(
            job_id,
            step_index=index,
            step_name=name + (" done" if done else ""),
            segment=None,
            bytes_done=None,
            blocks=None,
            state="running",
            message="",
        )

    def position(self, job_id: str, segment: int, bytes_done: int, blocks: int) -> None:
        self._update(job_id, segment=segment, bytes_done=bytes_done, blocks=blocks)

    def next_package(self, job_id: str, current: int) -> None:
        self._update(
            job_id,
            current=current,
            step_index=0,
            step_name="not started",
            segment=None,
            bytes_done=None,
            blocks=None,
        )

    def stopped(self, job_id: str, message: str) -> None:
        self._update(job_id, state="stopped", message=message)

    def refused(self, job_id: str, message: str) -> None:
        """Stopped before any step that changes the ECU: nothing to resume."""
        self._update(job_id, state="refused", message=message)

    def done(self, job_id: str) -> None:
        self._update(job_id, state="done", message="")

    def get(self, job_id: str) -> FlashRecord | None:
        row = (
            self.store.connection()
            .execute("SELECT * FROM flash_jobs WHERE job_id = ?", (job_id,))
            .fetchone()
        )
        return self._record(row) if row else None

    def unfinished(self) -> list[FlashRecord]:
        """Jobs that did not end verified: interrupted (still 'running' after a crash) or stopped."""
        rows = (
            self.store.connection()
            .execute(
                "SELECT * FROM flash_jobs WHERE state NOT IN ('done', 'refused') ORDER BY updated DESC"
            )
            .fetchall()
        )
        return [self._record(r) for r in rows]

    def recent(self, limit: int = 20) -> list[FlashRecord]:
        rows = (
            self.store.connection()
            .execute("SELECT * FROM flash_jobs ORDER BY updated DESC LIMIT ?", (limit,))
            .fetchall()
        )
        return [self._record(r) for r in rows]

    @staticmethod
    def _record(row: Any) -> FlashRecord:
        return FlashRecord(
            row["job_id"],
            json.loads(row["packages"]),
            row["current"],
            row["step_index"],
            row["step_name"],
            row["segment"],
            row["bytes_done"],
            row["blocks"],
            row["state"],
            row["message"],
            row["updated"],
        )
