"""The portal's electronic service booklets, one per VIN, from the boxes' ``booklet.entry``
outbox records (docs/service-booklet.md).

An entry's id is the car's own (VIN, the cluster's index, the hash of its record): the same entry
from a resend, after a power cut or from another workshop's box, is kept once. An entry whose
mileage is lower than that of an entry of the same car on an earlier or the same date is kept
and flagged, never dropped: the booklet shows what the car said, and where it does not add up."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

SCHEMA = """CREATE TABLE IF NOT EXISTS booklet (
    vin TEXT NOT NULL, id TEXT NOT NULL, box TEXT NOT NULL, idx INTEGER, date TEXT,
    mileage_km INTEGER, items TEXT, workshop TEXT, note TEXT, received REAL, flag TEXT,
    PRIMARY KEY (vin, id))"""


class Booklet:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(SCHEMA)

    def add(self, box: str, body: dict[str, Any]) -> str:
        """Keep an entry; ``kept``, ``flagged`` (kept, with why) or ``duplicate`` (not kept)."""
        raw = body.get("entry")
        entry: dict[str, Any] = raw if isinstance(raw, dict) else {}
        vin, eid = str(body.get("vin") or entry.get("vin") or ""), str(entry.get("id") or "")
        if not vin or not eid:
            return "duplicate"
        try:
            km, date, index = int(entry["mileage_km"]), str(entry["date"]), int(entry["index"])
        except (KeyError, TypeError, ValueError):
            return "duplicate"
        if self.db.execute("SELECT 1 FROM booklet WHERE vin = ? AND id = ?", (vin, eid)).fetchone():
            return "duplicate"
        flags = []
        before = self.db.execute(
            "SELECT date, mileage_km FROM booklet WHERE vin = ? AND date <= ? AND mileage_km > ?"
            " ORDER BY mileage_km DESC LIMIT 1",
            (vin, date, km),
        ).fetchone()
        if before is not None:
            flags.append(f"mileage goes backwards: {km} km after {before[1]} km on {before[0]}")
        same = self.db.execute(
            "SELECT id FROM booklet WHERE vin = ? AND idx = ?", (vin, index)
        ).fetchone()
        if same is not None:
            flags.append(f"the car's entry {index} was seen before with other contents ({same[0]})")
        listed = entry.get("items")
        items: list[Any] = listed if isinstance(listed, list) else []
        self.db.execute(
            "INSERT OR IGNORE INTO booklet VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                vin,
                eid,
                box,
                index,
                date,
                km,
                json.dumps([str(i) for i in items]),
                str(entry.get("workshop", ""))[:64],
                str(entry.get("note", ""))[:200],
                time.time(),
                "; ".join(flags) or None,
            ),
        )
        return "flagged" if flags else "kept"

    def entries(self, vin: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, box, idx, date, mileage_km, items, workshop, note, received, flag"
            " FROM booklet WHERE vin = ? ORDER BY date, idx",
            (vin,),
        ).fetchall()
        keys = ("id", "box", "index", "date", "mileage_km", "items", "workshop", "note",
                "received", "flag")  # fmt: skip
        return [{**dict(zip(keys, r, strict=True)), "items": json.loads(r[5])} for r in rows]

    def vins(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT vin FROM booklet ORDER BY vin")]
