"""What the portal keeps of the boxes' outbox records (job results, service history, session
logs), in SQLite; a record id seen twice from a box is kept once (boxes deliver at least once).

The box a record is kept under is the one whose outbox topic it came on (only that box may
publish there), never a field of the record, and record ids are the box's own: one box cannot
take or shadow another's. Who did what is in the record as the box wrote it, and the box takes
it from the requests topic a job came on (the sender's certificate name), never from a message."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_py.gateway.helpdesk import REQUEST_PREFIX
from portal.booklet import Booklet
from portal.helpdesk import HelpDesk

RETENTION_DAYS = 365.0
"""how long job results and remote session logs are kept (docs/data-protection.md): a year of
the workshop's liability for its work"""
PRUNED_KINDS = ("job.result", "session_log")
"""the record kinds a retention period applies to; ticket use (behind invoices: 10 years) and
booklet entries (the service booklet the workshop keeps) are kept"""


class RecordStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (id TEXT NOT NULL, box TEXT NOT NULL, kind TEXT, "
            "body TEXT, received REAL, PRIMARY KEY (box, id))"
        )
        self.on_new: Callable[[str, dict[str, Any]], None] | None = None
        """called with (box, record) for every record kept for the first time"""
        self.booklet = Booklet(self.db)
        self.helpdesk = HelpDesk(self.db)

    def keep(self, box: str, record: dict[str, Any]) -> int:
        """Keep ``record`` from ``box`` (the box its topic names); 1 if it is new, else 0.
        Booklet entries go to the VIN's booklet, help-desk requests and their chunks to the help
        desk (a chunk's data only there)."""
        raw = record.get("body")
        body: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = str(record.get("kind"))
        kept = {k: v for k, v in body.items() if k != "data"} if kind == "helpdesk.chunk" else body
        cur = self.db.execute(
            "INSERT OR IGNORE INTO records VALUES (?,?,?,?,?)",
            (str(record.get("id")), box, kind, json.dumps(kept), time.time()),
        )
        if cur.rowcount:
            if kind == "booklet.entry":
                self.booklet.add(box, body)
            elif kind == "helpdesk.request":
                self.helpdesk.add_request(box, body)
            elif kind == "helpdesk.chunk":
                self.helpdesk.add_chunk(box, body)
            if self.on_new is not None:
                self.on_new(box, record)
        return cur.rowcount

    def prune(self, now: float, days: float = RETENTION_DAYS) -> int:
        """Delete the records of :data:`PRUNED_KINDS` received more than ``days`` before ``now``
        (0: none); returns how many. The deleted rows are overwritten, not left in free pages."""
        if days <= 0:
            return 0
        self.db.execute("PRAGMA secure_delete = ON")
        marks = ",".join("?" * len(PRUNED_KINDS))
        cur = self.db.execute(
            f"DELETE FROM records WHERE kind IN ({marks}) AND received < ?",  # noqa: S608
            (*PRUNED_KINDS, now - days * 86400.0),
        )
        if cur.rowcount:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(cur.rowcount)

    async def prune_periodically(self, days: float, interval: float = 3600.0) -> None:
        """:meth:`prune` now and every ``interval`` seconds (a task of the console)."""
        import asyncio

        while True:
            self.prune(time.time(), days)
            await asyncio.sleep(interval)

    def acknowledgements(self, box: str, record: dict[str, Any]) -> list[str]:
        """The record ids to acknowledge to ``box`` now that ``record`` is kept: the record's
        own, but a help-desk request's only once it is here whole (the box consumes its ticket
        on that acknowledgement), which may be when its last chunk arrives."""
        rid, kind = str(record.get("id")), record.get("kind")
        raw = record.get("body")
        body: dict[str, Any] = raw if isinstance(raw, dict) else {}
        request = str(body.get("request", ""))
        if kind == "helpdesk.request":
            return [rid] if self.helpdesk.complete(box, request) else []
        if kind == "helpdesk.chunk" and self.helpdesk.complete(box, request):
            return [rid, REQUEST_PREFIX + request]
        return [rid]

    def latest(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, box, kind, body, received FROM records WHERE kind != 'helpdesk.chunk'"
            " ORDER BY received DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            {"id": r[0], "box": r[1], "kind": r[2], "body": json.loads(r[3]), "received": r[4]}
            for r in rows
        ]

    def count(self, box: str | None = None) -> int:
        if box is None:
            return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        return int(
            self.db.execute("SELECT COUNT(*) FROM records WHERE box = ?", (box,)).fetchone()[0]
        )

    def ticket_usage(self, tid: str) -> dict[str, Any]:
        """What the boxes reported a ticket has used: its activation (``ticket.activated``) and
        its uses (``ticket.used``)."""
        rows = self.db.execute(
            "SELECT kind, body FROM records WHERE kind IN ('ticket.activated', 'ticket.used')"
            " AND json_extract(body, '$.ticket') = ?",
            (tid,),
        ).fetchall()
        bodies = [(kind, json.loads(body)) for kind, body in rows]
        activated = [b["time"] for kind, b in bodies if kind == "ticket.activated"]
        return {
            "activated_at": min(activated) if activated else None,
            "uses": sum(1 for kind, _ in bodies if kind == "ticket.used"),
        }
