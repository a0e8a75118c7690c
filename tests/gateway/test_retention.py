"""The retention job (docs/data-protection.md): with records and files of every kind, some past
their period and some not, it deletes exactly what is due - never what is owed to the portal
(the outbox: service booklet entries, results), a help-desk request not yet delivered, a
resumable programming journal, or a trace that is open now - and the gateway runs it at
start-up."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from firmware_py.config import PrivacyConfig, load_config
from firmware_py.errors import ConfigError
from firmware_py.gateway import battery_log, booklet_jobs, coding_jobs, helpdesk, job_log
from firmware_py.gateway.flash_journal import FlashJournal
from firmware_py.gateway.job_handlers import HANDLERS
from firmware_py.gateway.jobs import Caller, Job, JobRequest, JobState
from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.retention import DAY, apply_retention
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.web import pairing

NOW = 1_800_000_000.0
VIN = "WBA8E9C50GK123456"


def ago(days: float) -> float:
    return NOW - days * DAY


def _file(path, days: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 100)
    os.utime(path, (ago(days), ago(days)))


def _fill(store: Store) -> None:
    """Records of each kind, one just inside and one past its default period (keys name which)."""
    for name, days in (("old", 91), ("new", 89)):
        job_log.record(store, {"id": f"job-{name}", "finished": ago(days), "kind": "identify"}, VIN)
        battery_log.record(store, ago(days), 12.5, "box")
    store.ensure_schema("coding", coding_jobs.SCHEMA)
    store.ensure_schema("helpdesk", helpdesk.SCHEMA)
    outbox = Outbox(store)
    with store.transaction() as db:
        for statement in booklet_jobs.SCHEMA:
            db.execute(statement)
        for name, days in (("old", 91), ("new", 89)):
            db.execute("INSERT INTO booklet_queued VALUES (?,?)", (f"{VIN}-{name}", ago(days)))
        for name, days in (("old", 366), ("new", 364)):
            db.execute(
                "INSERT INTO coding_backups(ecu, vin, data, taken_at, job_id) VALUES (?,?,?,?,?)",
                ("BDC", VIN, "00", ago(days), f"coding-{name}"),
            )
        for rid, days, state in (
            ("hd-old-answered", 181, helpdesk.ANSWERED),
            ("hd-old-delivered", 181, helpdesk.DELIVERED),
            ("hd-new-answered", 179, helpdesk.ANSWERED),
            ("hd-old-waiting", 181, helpdesk.WAITING),  # the portal has not received it yet
        ):
            db.execute(
                "INSERT INTO helpdesk(id, created, question, contact, vin, state, attachments)"
                " VALUES (?,?,?,?,?,?,?)",
                (rid, ago(days), "q", "c", VIN, state, "[]"),
            )
        # owed to the portal whatever their age: the booklet entry the workshop keeps, a result
        for rid in ("booklet-entry", "job-result"):
            outbox.insert(db, "booklet.entry", {"vin": VIN}, rid)
            db.execute("UPDATE outbox SET created = ? WHERE id = ?", (ago(1000), rid))
    store.ensure_schema("pairing", pairing.SCHEMA)
    with store.transaction() as db:
        for name, days in (("old", 181), ("new", 179)):
            db.execute(
                "INSERT INTO tablets VALUES (?,?,?,?,?,?,?)",
                (f"tablet-{name}", "Werkstatt-Tablet", name, "c", ago(400), ago(days), "button"),
            )
        for client, days in (("192.168.4.20", 31), ("192.168.4.21", 29)):
            db.execute("INSERT INTO pairing_code_failures VALUES (?,?)", (ago(days), client))
    journal = FlashJournal(store)
    for jid, state in (
        ("flash-done-old", "done"),
        ("flash-refused-old", "refused"),
        ("flash-stopped-old", "stopped"),  # resumable
        ("flash-running-old", "running"),  # interrupted by a power cut: resumable
        ("flash-done-new", "done"),
    ):
        journal.begin(jid, [{"ecu": "DME"}])
        days = 89 if jid.endswith("new") else 91
        with store.transaction() as db:
            db.execute(
                "UPDATE flash_jobs SET state = ?, updated = ? WHERE job_id = ?",
                (state, ago(days), jid),
            )
    traces, reports = store.state_dir / "traces", store.state_dir / "reports"
    _file(traces / "old.pcap", 31)
    _file(traces / "new.pcap", 29)
    _file(traces / "open-now.pcap", 31)  # the link's trace, idle for a month but open
    _file(traces / "20260101-bridge-job-7-tester.pcap", 31)  # a running bridge job's
    _file(reports / "old.json", 91)
    _file(reports / "new.json", 89)


def _contents(store: Store) -> dict[str, list]:
    db = store.connection()
    column = {
        "job_log": "id",
        "booklet_queued": "id",
        "coding_backups": "job_id",
        "helpdesk": "id",
        "outbox": "id",
        "flash_jobs": "job_id",
        "battery_history": "time",
        "tablets": "id",
        "pairing_code_failures": "client",
    }
    found = {t: sorted(r[0] for r in db.execute(f"SELECT {c} FROM {t}")) for t, c in column.items()}
    for folder in ("traces", "reports"):
        found[folder] = sorted(p.name for p in (store.state_dir / folder).iterdir())
    return found


def test_the_retention_job_deletes_what_is_due_and_nothing_else(tmp_path) -> None:
    store = Store(tmp_path / "state")
    _fill(store)
    before = _contents(store)
    in_use = {
        "open_traces": [store.state_dir / "traces" / "open-now.pcap"],
        "active_jobs": ["job-7"],
    }
    done = apply_retention(store, PrivacyConfig(), NOW, **in_use)
    after = _contents(store)
    expected = {
        "job_log": ["job-new"],
        "booklet_queued": [f"{VIN}-new"],
        "coding_backups": ["coding-new"],
        "helpdesk": ["hd-new-answered", "hd-old-waiting"],
        "outbox": before["outbox"],
        "flash_jobs": ["flash-done-new", "flash-running-old", "flash-stopped-old"],
        "battery_history": [ago(89)],
        "tablets": ["tablet-new"],
        "pairing_code_failures": ["192.168.4.21"],
        "traces": ["20260101-bridge-job-7-tester.pcap", "new.pcap", "open-now.pcap"],
        "reports": ["new.json"],
    }
    assert after == expected
    assert "booklet-entry" in after["outbox"] and "job-result" in after["outbox"]
    assert done == {
        "traces": 1, "reports": 1, "job_log": 1, "booklet_queued": 1, "helpdesk": 2,
        "battery_history": 1, "coding_backups": 1, "flash_journal": 2, "tablets": 1,
        "pairing_failures": 1,
    }  # fmt: skip
    # run again at the same time: nothing more is due
    assert sum(apply_retention(store, PrivacyConfig(), NOW, **in_use).values()) == 0


def test_deleted_rows_do_not_linger_in_the_database_files(tmp_path) -> None:
    """SQLite leaves a deleted row's bytes in the page's free space and in the write-ahead log
    unless told otherwise (secure_delete, a checkpoint)."""
    store = Store(tmp_path / "state")
    for n in range(50):
        days = 91 if n % 10 == 3 else 1
        job_log.record(store, {"id": f"job-{n:03d}", "finished": ago(days), "who": "x"}, VIN)
    store.connection().execute("PRAGMA secure_delete = OFF")  # SQLite's default, where
    # the build does not turn it on (Debian's does)
    assert apply_retention(store, PrivacyConfig(), NOW)["job_log"] == 5
    data = b"".join(p.read_bytes() for p in store.state_dir.glob("vci.sqlite3*"))
    assert b"job-013" not in data and b"job-043" not in data and b"job-012" in data


def test_a_period_of_zero_keeps_for_no_set_time(tmp_path) -> None:
    store = Store(tmp_path / "state")
    _fill(store)
    before = _contents(store)
    keep_all = PrivacyConfig(
        **{f: 0.0 for f in PrivacyConfig.__dataclass_fields__ if f.endswith("_days")}
    )
    assert sum(apply_retention(store, keep_all, NOW).values()) == 0
    assert _contents(store) == before


def test_a_helpdesk_request_whose_record_is_still_in_the_outbox_is_kept(tmp_path) -> None:
    store = Store(tmp_path / "state")
    store.ensure_schema("helpdesk", helpdesk.SCHEMA)
    outbox = Outbox(store)
    with store.transaction() as db:
        outbox.insert(db, "helpdesk.request", {}, helpdesk.REQUEST_PREFIX + "r1")
        db.execute(
            "INSERT INTO helpdesk(id, created, question, contact, state, attachments)"
            " VALUES ('r1', ?, 'q', 'c', ?, '[]')",
            (ago(400), helpdesk.ANSWERED),
        )
    apply_retention(store, PrivacyConfig(), NOW)
    assert [r["id"] for r in helpdesk.requests(store)] == ["r1"]


def test_the_retention_periods_come_from_vci_toml_and_the_environment(tmp_path) -> None:
    path = tmp_path / "vci.toml"
    path.write_text("[privacy]\ntraces_days = 7\nhelpdesk_days = 0\n")
    cfg = load_config(path, env={"VCI_PRIVACY_JOB_LOG_DAYS": "30"})
    assert (cfg.privacy.traces_days, cfg.privacy.helpdesk_days) == (7.0, 0.0)
    assert cfg.privacy.job_log_days == 30.0 and cfg.privacy.reports_days == 90.0
    path.write_text("[privacy]\ntraces_days = -1\n")
    with pytest.raises(ConfigError, match="must not be negative"):
        load_config(path, env={})


def test_the_gateway_applies_retention_at_start_up_also_to_jobs_held_in_memory(tmp_path) -> None:
    store = Store(tmp_path / "state")
    old_trace = store.state_dir / "traces" / "old.pcap"
    _file(old_trace, 0)
    os.utime(old_trace, (time.time() - 31 * DAY,) * 2)
    job_log.record(store, {"id": "old", "finished": time.time() - 91 * DAY}, VIN)
    gateway = Gateway(store, open_vehicle=lambda: None, handlers=HANDLERS, privacy=PrivacyConfig())
    # a gateway that runs for months holds its finished jobs (the session log) in memory
    for jid, days in (("old", 91), ("new", 1)):
        gateway.runner.jobs[jid] = Job(
            jid, JobRequest("read_vin"), Caller("tablet", "t"), JobState.DONE,
            result={"vin": VIN}, finished=time.time() - days * DAY,
        )  # fmt: skip

    async def main() -> None:
        await gateway.start()
        try:
            deadline = time.monotonic() + 10
            while old_trace.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await gateway.stop()

    asyncio.run(main())
    assert not old_trace.exists()
    assert job_log.since(store, 0) == []
    assert list(gateway.runner.jobs) == ["new"]
