"""The battery's history as the box saw it: each reading that changed what the page shows (the
box's own measurement or the vehicle's report, and which), kept in SQLite, the newest
:data:`KEEP` of them. A help-desk request carries it (docs/helpdesk.md)."""

from __future__ import annotations

from typing import Any

from firmware_py.gateway.store import Store

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS battery_history (
        time REAL NOT NULL, volts REAL NOT NULL, source TEXT NOT NULL)""",
)
KEEP = 2000


def record(store: Store, when: float, volts: float, source: str) -> None:
    store.ensure_schema("battery_history", SCHEMA)
    with store.transaction() as db:
        db.execute("INSERT INTO battery_history VALUES (?,?,?)", (when, volts, source))
        db.execute(
            "DELETE FROM battery_history WHERE rowid NOT IN"
            " (SELECT rowid FROM battery_history ORDER BY time DESC LIMIT ?)",
            (KEEP,),
        )


def history(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    """The newest ``limit`` readings, oldest first."""
    store.ensure_schema("battery_history", SCHEMA)
    rows = (
        store.connection()
        .execute(
            "SELECT time, volts, source FROM battery_history ORDER BY time DESC LIMIT ?", (limit,)
        )
        .fetchall()
    )
    return [{"time": r[0], "volts": r[1], "source": r[2]} for r in reversed(rows)]
