"""What the portal keeps of the boxes' outbox records (job results, service history, session
logs), in SQLite; a record id seen twice is kept once (boxes deliver at least once)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any


class RecordStore:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, box TEXT, kind TEXT, body TEXT, received REAL)"
        )

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
        return cur.rowcount

    def count(self, box: str | None = None) -> int:
        if box is None:
            return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        return int(
            self.db.execute("SELECT COUNT(*) FROM records WHERE box = ?", (box,)).fetchone()[0]
        )
