"""The electronic service booklet and Technical Help Desk requests end to end, over DoIP and CAN
against ``vci sim``, through a real mosquitto that is killed in the middle (docs/service-booklet.md,
docs/helpdesk.md): booklet entries reach the portal's booklet for the VIN exactly once, a help-desk
request with a 5 MB trace arrives whole (SHA-256 equal) and uses its one ticket once, and an
answer comes back to the box."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sqlite3

import pytest

from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.store import Store
from portal.records import RecordStore
from portal.remote import RemoteSession
from tests.cloud.conftest import (
    BOX,
    HAVE_MOSQUITTO,
    USER,
    BrokerOutage,
    gateway_env,
    portal,
    wait_online,
    wait_until,
)
from tests.conftest import start_gateway_process

if not HAVE_MOSQUITTO:
    pytest.skip("mosquitto is not installed (scripts/test installs it)", allow_module_level=True)

VIN = "WBAJA71090B123456"
LINKS = ("doip", "can")


def _kinds(box) -> list[str]:
    return [r.kind for r in Outbox(Store(box.root / "state")).pending(1000)]


@pytest.mark.parametrize("link", LINKS)
def test_booklet_entry_reaches_the_portal_once_through_a_broker_outage(
    box, broker, start_sim, tmp_path, link
) -> None:
    sim = start_sim("--battery", "13.6")
    assert box.vci("ticket", "add", box.issue("basic-1d")).returncode == 0
    history = box.vci("--json", "service", "history", *sim.cli_args(link))
    assert history.returncode == 0, history.stderr
    assert [e["index"] for e in json.loads(history.stdout)["history"]] == [1, 2]
    # not reset, and no terminal to ask on: refused, nothing written to the car
    record = ["service", "record", "--items", "engine_oil,brake_fluid", "--note", "oil+fluid"]
    refused = box.vci(*record, "--workshop", "W-TEST-1", "--yes", *sim.cli_args(link))
    assert refused.returncode == 2 and "were not reset" in refused.stderr
    assert sim.state()["ecus"]["KOMBI"]["service_history"] == 2
    outage = BrokerOutage(broker)
    outage.kill()  # the portal is away while the service is recorded
    gateway = start_gateway_process(sim.cli_args(link), gateway_env(box, broker))
    try:
        done = box.vci(
            "--json", *record, "--workshop", "W-TEST-1", "--reset", "--yes", *sim.cli_args(link)
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["reset"] == ["engine_oil", "brake_fluid"] and result["new"]
        entry = result["entry"]
        assert (entry["index"], entry["mileage_km"], entry["items"]) == (
            3, 48211, ["engine_oil", "brake_fluid"],
        )  # fmt: skip
        kombi = sim.state()["ecus"]["KOMBI"]
        assert kombi["service_history"] == 3
        assert all(c["availability"] == 100 for c in kombi["cbs"] if c["id"] in (1, 4))
        assert _kinds(box).count("booklet.entry") == 3  # the two it had, and the new one
        outage.start()
        session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
        try:
            wait_online(session, BOX)
            records = RecordStore(tmp_path / "portal.sqlite")
            session.keep_records(records)
            outbox = Outbox(Store(box.root / "state"))
            wait_until(
                lambda: len(records.booklet.entries(VIN)) == 3 and outbox.count() == 0,
                30,
                "the booklet at the portal and an empty outbox",
            )
            # the same service again (its answer lost, say): the car keeps one entry
            ticket = box.issue("basic-1d")
            again = session.run(
                BOX, "service_history", ticket=ticket, params={
                    "action": "record", "items": ["engine_oil", "brake_fluid"],
                    "note": "oil+fluid", "workshop": "W-TEST-1",
                },
            )  # fmt: skip
            assert again.body["job"]["state"] == "done", again.body
            assert again.body["job"]["result"]["new"] is False
            # every entry sent again (a power cut between "sent" and "acknowledged"): kept once
            with sqlite3.connect(box.root / "state" / "vci.sqlite3") as db:
                db.execute("DELETE FROM booklet_queued")
            read = session.run(BOX, "service_history", ticket=ticket, params={"action": "read"})
            assert read.body["job"]["state"] == "done"
            wait_until(lambda: outbox.count() == 0, 30, "the resent entries acknowledged")
            kept = records.booklet.entries(VIN)
            assert [e["index"] for e in kept] == [1, 2, 3] and not any(e["flag"] for e in kept)
            shown = portal("booklet", VIN, "--records", str(tmp_path / "portal.sqlite"))
            assert "oil+fluid" in shown.stdout and "48211 km" in shown.stdout
        finally:
            session.close()
    finally:
        gateway.stop()
        if broker["proc"].poll() is not None:
            outage.start()  # the fixture stops it


@pytest.mark.parametrize("link", LINKS)
def test_helpdesk_request_with_a_5_mb_trace_arrives_whole_through_a_broker_kill(
    box, broker, start_sim, tmp_path, link
) -> None:
    sim = start_sim("--battery", "13.6")
    trace = tmp_path / "session.pcap"
    trace.write_bytes(os.urandom(5 * 1024 * 1024))
    gateway = start_gateway_process(sim.cli_args(link), gateway_env(box, broker))
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    outage = BrokerOutage(broker)
    db = tmp_path / "portal.sqlite"
    try:
        wait_online(session, BOX)
        records = RecordStore(db)
        session.keep_records(records)
        assert box.vci("ticket", "add", box.issue("helpdesk")).returncode == 0
        ask = box.vci(
            "--json", "helpdesk", "ask", "--question", "Boost pressure low after flash?",
            "--contact", "Jo, +49 30 1234", "--trace", str(trace), *sim.cli_args(link),
        )  # fmt: skip
        assert ask.returncode == 0, ask.stderr
        rid = json.loads(ask.stdout)["request"]
        tickets = json.loads(box.vci("--json", "ticket", "list").stdout)
        assert [t["state"] for t in tickets] == ["held by a request waiting for the portal"]

        def chunks() -> int:
            return int(
                records.db.execute(
                    "SELECT COUNT(*) FROM helpdesk_chunks WHERE request = ?", (rid,)
                ).fetchone()[0]
            )

        wait_until(lambda: chunks() >= 20, 30, "the transfer under way")
        outage.kill()  # mid-transfer
        at_kill = chunks()
        assert at_kill < 160 + 1  # 5 MiB in 32 KiB chunks: not all of it yet
        tickets = json.loads(box.vci("--json", "ticket", "list").stdout)
        assert tickets[0]["uses_left"] == 0 and tickets[0]["state"].startswith("held")
        outage.start()  # the portal's session subscribes again by itself
        outbox = Outbox(Store(box.root / "state"))
        wait_until(
            lambda: (
                records.helpdesk.requests()
                and records.helpdesk.requests()[0]["complete"]
                and outbox.count() == 0
            ),
            60,
            "the whole request at the portal and acknowledged",
        )
        got = records.helpdesk.attachment(rid, f"trace-1-{trace.name}")
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(trace.read_bytes()).hexdigest()
        shown = records.helpdesk.show(rid)
        assert shown["bundle"]["identification"]["vin"] == VIN
        dme = next(e for e in shown["bundle"]["fault_memory"] if e["name"] == "DME")
        assert dme["dtcs"][0]["snapshots"]  # with details
        assert {"session_log", "battery_history"} <= set(shown["bundle"])
        used = wait_until(
            lambda: records.ticket_usage(json.loads(ask.stdout)["ticket"])["uses"], 20,
            "the ticket's use at the portal",
        )  # fmt: skip
        assert used == 1
        tickets = json.loads(box.vci("--json", "ticket", "list").stdout)
        assert [t["state"] for t in tickets] == ["used up"]
        # the help desk answers; the answer reaches the box
        answer = portal(
            "helpdesk", "answer", rid, "Check the charge air hose clamps.", "--records", str(db),
            "--broker", f"127.0.0.1:{broker['port']}", "--pki", str(broker["pki"]),
            "--user", USER,
        )  # fmt: skip
        assert answer.returncode == 0, answer.stderr

        def answered() -> bool:
            mine = json.loads(box.vci("--json", "helpdesk", "list").stdout)
            return mine[0]["answer"] == "Check the charge air hose clamps."

        wait_until(answered, 20, "the answer on the box")
        print(f"\n{link}: {chunks()} chunks, {at_kill} before the broker was killed")
    finally:
        session.close()
        gateway.stop()
        if broker["proc"].poll() is not None:
            outage.start()


def test_booklet_and_helpdesk_need_their_tariffs(box, start_sim) -> None:
    sim = start_sim()
    assert box.vci("ticket", "add", box.issue("helpdesk")).returncode == 0
    denied = box.vci("service", "history", *sim.cli_args("doip"))
    assert denied.returncode == 2 and "does not include service" in denied.stderr
    assert box.vci("ticket", "add", box.issue("basic-1d")).returncode == 0
    assert box.vci("ticket", "remove", json.loads(
        box.vci("--json", "ticket", "list").stdout)[0]["tid"]).returncode == 0  # fmt: skip
    asked = box.vci("helpdesk", "ask", "--question", "q", "--contact", "c", *sim.cli_args("doip"))
    assert asked.returncode == 2 and "does not include help_desk" in asked.stderr
    assert "Technical Help Desk request (25 EUR net)" in asked.stderr
    assert "no help-desk requests" in box.vci("helpdesk", "list").stdout


def test_a_helpdesk_request_goes_out_when_no_car_answers(box, tmp_path) -> None:
    """The help desk is most needed when the car does not talk at all: the request is queued
    with what the box has, and the bundle says why there is no vehicle data."""
    with socket.socket() as closed:  # a port nothing listens on: no car at this address
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert box.vci("ticket", "add", box.issue("helpdesk")).returncode == 0
    ask = box.vci(
        "--json", "helpdesk", "ask", "--question", "Car does not talk to the tester at all",
        "--contact", "Jo", "--doip", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert ask.returncode == 0, ask.stderr
    pending = Outbox(Store(box.root / "state")).pending(1000)
    request = next(r for r in pending if r.kind == "helpdesk.request")
    chunks = sorted(
        (r.body for r in pending
         if r.kind == "helpdesk.chunk" and r.body["attachment"] == "bundle.json"),
        key=lambda c: c["index"],
    )  # fmt: skip
    bundle = json.loads(b"".join(base64.b64decode(c["data"]) for c in chunks))
    assert bundle["identification"]["error"]["error"] in ("connection_lost", "vehicle_not_found")
    assert "error" in bundle["fault_memory"] and request.body["vin"] is None
    tickets = json.loads(box.vci("--json", "ticket", "list").stdout)
    assert [t["state"] for t in tickets] == ["held by a request waiting for the portal"]


def test_a_helpdesk_request_from_the_command_line_carries_the_session_log(box, start_sim) -> None:
    """``vci helpdesk ask`` on the box: its session log lists the jobs the box ran in the last
    hours (here two commands, in order; a job from yesterday is not in it), as a request from the
    tablet lists the gateway's."""
    from firmware_py.gateway import job_log

    sim = start_sim()
    for tariff in ("basic-1d", "helpdesk"):
        assert box.vci("ticket", "add", box.issue(tariff)).returncode == 0
    store = Store(box.root / "state")
    old = {"id": "yesterday", "kind": "coding", "state": "done", "created": 1.0, "finished": 2.0}
    job_log.record(store, old, VIN)
    for command in (("identify",), ("dtc", "read")):
        done = box.vci(*command, *sim.cli_args("doip"))
        assert done.returncode == 0, done.stderr
    ask = box.vci(
        "--json", "helpdesk", "ask", "--question", "DME fault after the read?", "--contact", "Jo",
        *sim.cli_args("doip"),
    )  # fmt: skip
    assert ask.returncode == 0, ask.stderr
    pending = Outbox(store).pending(1000)
    chunks = sorted(
        (r.body for r in pending
         if r.kind == "helpdesk.chunk" and r.body["attachment"] == "bundle.json"),
        key=lambda c: c["index"],
    )  # fmt: skip
    log = json.loads(b"".join(base64.b64decode(c["data"]) for c in chunks))["session_log"]
    assert [(j["kind"], j["origin"], j["state"]) for j in log] == [
        ("identify", "cli", "done"),
        ("read_fault_memory", "cli", "done"),
    ], log
    assert all(j["vin"] == VIN and j["finished"] >= j["created"] for j in log)
