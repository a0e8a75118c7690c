"""What the portal keeps of the boxes' outbox records (job results, service history, session
logs), in SQLite; a record id seen twice is kept once (boxes deliver at least once)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class RecordStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, box TEXT, kind TEXT, body TEXT, received REAL)"
        )
        self.on_new: Callable[[str, dict[str, Any]], None] | None = None
        """called with (box, record) for every record kept for the first time"""

    def keep(self, box: str, record: dict[str, Any]) -> int:
        cur = self.db.execute(
            "INSERT OR IGNORE INTO records VALUES (?,?,?,?,?)",
            (
                str(record.get("id")),
                box,
                str(record.get("kind")),
                json.dumps(record.get("body")),
                time.time(),
            ),
        )
        if cur.rowcount and self.on_new is not None:
            self.on_new(box, record)
        return cur.rowcount

    def latest(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, box, kind, body, received FROM records ORDER BY received DESC LIMIT ?",
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
