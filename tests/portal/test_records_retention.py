"""The portal's copies of the boxes' outbox records (portal/records.py) have a retention period
(docs/data-protection.md): job results and remote session logs older than it are deleted; ticket
use (behind invoices) and service booklet entries (the booklet the workshop keeps) are not."""

from __future__ import annotations

import asyncio
import time

from portal.records import RecordStore

DAY = 86400.0
VIN = "WBAJA71090B123456"


def _records(tmp_path) -> RecordStore:
    records = RecordStore(tmp_path / "records.sqlite")
    entry = {
        "id": f"{VIN}-00001-abc",
        "vin": VIN,
        "index": 1,
        "date": "2025-01-02",
        "mileage_km": 1,
    }
    for rid, kind, body in (
        ("job-old", "job.result", {"vin": VIN, "job": {"id": "old"}}),
        ("log-old", "session_log", {"event": "opened"}),
        ("use-old", "ticket.used", {"ticket": "t1", "time": 1.0}),
        ("entry-old", "booklet.entry", {"vin": VIN, "entry": entry}),
        ("job-new", "job.result", {"vin": VIN, "job": {"id": "new"}}),
    ):
        assert records.keep("box-1", {"id": rid, "kind": kind, "body": body}) == 1
        age = 400 if rid.endswith("old") else 300
        records.db.execute(
            "UPDATE records SET received = ? WHERE id = ?", (time.time() - age * DAY, rid)
        )
    return records


def _ids(records: RecordStore) -> list[str]:
    return sorted(r[0] for r in records.db.execute("SELECT id FROM records"))


def test_old_results_and_session_logs_go_ticket_use_and_booklet_stay(tmp_path) -> None:
    records = _records(tmp_path)
    assert records.prune(time.time(), 365) == 2
    assert _ids(records) == ["entry-old", "job-new", "use-old"]
    assert records.booklet.entries(VIN)  # the booklet itself is not touched
    assert records.ticket_usage("t1")["uses"] == 1
    assert records.prune(time.time(), 0) == 0  # 0: kept for good


def test_the_console_task_prunes_at_once(tmp_path) -> None:
    records = _records(tmp_path)

    async def main() -> None:
        task = asyncio.create_task(records.prune_periodically(365, interval=3600))
        deadline = time.monotonic() + 5
        while "job-old" in _ids(records) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(main())
    assert _ids(records) == ["entry-old", "job-new", "use-old"]
