"""Remote sessions through a real mosquitto on loopback (TLS, client certificates, ACL): the
reference portal runs jobs on a box (``vci gateway`` talking to ``vci sim``) with live progress,
denials reach the portal with their reason, and the ACL keeps boxes and users apart."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from firmware_py.cloud import topics
from firmware_py.cloud.schema import Message
from portal.remote import RemoteSession
from tests.cloud.conftest import (
    BOX,
    COLLEAGUE,
    HAVE_MOSQUITTO,
    MOSQUITTO,
    OTHER_BOX,
    OTHER_USER,
    USER,
    flash_package,
    flash_through_an_outage,
    gateway_env,
    wait_online,
    wait_port,
)
from tests.conftest import start_gateway_process

if not HAVE_MOSQUITTO:
    pytest.skip("mosquitto is not installed (scripts/test installs it)", allow_module_level=True)


@pytest.fixture
def remote_box(box, broker, start_sim, enet):
    """``vci gateway`` for box-test-0001, linked to the broker, on the simulated vehicle over
    each ENET protocol in turn (remote jobs work whatever the car speaks)."""
    sim = start_sim("--battery", "13.6")
    gateway = start_gateway_process(sim.cli_args(enet), gateway_env(box, broker))
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    wait_online(session, BOX)
    yield {"session": session, "sim": sim, "box": box, "broker": broker}
    session.close()
    gateway.stop()


def test_box_is_online_and_a_remote_identify_runs_with_live_events(remote_box) -> None:
    session = remote_box["session"]
    assert session.states.get(BOX) == "online"
    assert session.status[BOX].version  # the box's retained state names its release
    events: list[Message] = []
    final = session.run(BOX, "identify", on_event=events.append)
    assert final.type == "job.result" and final.body["job"]["state"] == "done"
    assert final.body["job"]["result"]["vin"] == "WBAJA71090B123456"
    assert final.body["job"]["origin"] == "portal" and final.body["job"]["who"] == USER
    assert [e.type for e in events][0] == "job.accepted" and any(
        e.type == "job.event" for e in events
    )


def test_remote_fault_memory_read_and_clear_under_a_ticket(remote_box, tmp_path) -> None:
    from portal.records import RecordStore

    session, sim, box = remote_box["session"], remote_box["sim"], remote_box["box"]
    read = session.run(BOX, "read_fault_memory", ecu="DME")
    assert [d["id"] for d in read.body["job"]["result"]["ecus"][0]["dtcs"]] == ["12A100", "0A8E00"]
    denied = session.run(BOX, "clear_fault_memory", ecu="DME")
    assert denied.type == "job.denied" and denied.body["error"] == "not_entitled"
    assert (
        "no ticket on this box includes diagnosis" in denied.body["message"]
        and "Basic" in denied.body["hint"]
    )
    assert sim.state()["ecus"]["DME"]["dtcs"]  # nothing was cleared
    cleared = session.run(BOX, "clear_fault_memory", ecu="DME", ticket=box.issue("basic-9h"))
    assert cleared.type == "job.result" and cleared.body["job"]["state"] == "done"
    assert sim.state()["ecus"]["DME"]["dtcs"] == []
    # the portal keeps the remote session log: the read and the clearing, not the denial
    records = RecordStore(tmp_path / "portal.sqlite")
    session.keep_records(records)
    deadline = time.monotonic() + 15
    while records.count(BOX) < 4 and time.monotonic() < deadline:  # 2 job results, 2 ticket records
        time.sleep(0.1)
    jobs = [r for r in records.latest() if r["kind"] == "job.result"]
    kept = sorted((r["body"]["job"]["kind"], r["body"]["job"]["who"]) for r in jobs)
    assert kept == [("clear_fault_memory", USER), ("read_fault_memory", USER)]
    # and what the ticket used: its activation by the clearing (docs/tickets.md)
    tid = next(r["body"]["ticket"] for r in records.latest() if r["kind"] == "ticket.activated")
    assert records.ticket_usage(tid)["uses"] == 1


def test_remote_service_reset_and_coding_read(remote_box) -> None:
    session, sim, box = remote_box["session"], remote_box["sim"], remote_box["box"]
    ticket = box.issue("basic-1d")
    status = session.run(BOX, "service_reset", params={"action": "read"}, ticket=ticket)
    oil = next(i for i in status.body["job"]["result"]["cbs"] if i["name"] == "engine_oil")
    assert oil["due"]
    events: list[Message] = []
    reset = session.run(
        BOX,
        "service_reset",
        params={"action": "reset", "item": "engine_oil"},
        on_event=events.append,
    )
    assert reset.body["job"]["state"] == "done", reset.body
    assert reset.body["job"]["result"]["after"]["availability"] == 100
    assert any(e.body.get("step") == "reset Engine oil" for e in events)
    assert (
        next(c for c in sim.state()["ecus"]["KOMBI"]["cbs"] if c["id"] == 1)["availability"] == 100
    )
    coding = session.run(BOX, "coding", ecu="BDC", params={"action": "read"})
    assert coding.body["job"]["result"]["before"]["daytime_running_lights"] == "on"


def test_a_raw_uds_request_runs_on_the_box_with_its_own_timing(remote_box) -> None:
    session, box = remote_box["session"], remote_box["box"]
    denied = session.uds(BOX, "EGS", bytes.fromhex("22F190"))
    assert denied.type == "job.denied" and "Basic" in denied.body["hint"]
    answer = session.uds(BOX, "EGS", bytes.fromhex("22F190"), ticket=box.issue("basic-1d"))
    assert answer.type == "uds.response", answer
    assert answer.body["response"] == "62f190" + b"WBAJA71090B123456".hex()
    wrong = session.uds(BOX, "EGS", bytes.fromhex("22FFFF"))  # the ticket is on the box now
    assert wrong.body["response"] == "7f2231"  # the ECU's own negative answer, untouched
    nowhere = session.uds(BOX, "NOPE", bytes.fromhex("22F190"))
    assert nowhere.type in ("uds.response", "error") and "NOPE" in json.dumps(nowhere.body)


def test_raw_erase_over_the_portal_needs_engineering_the_battery_floor_and_is_logged(
    remote_box, tmp_path
) -> None:
    """A Basic ticket reads over the raw channel but neither erases nor downloads; with an
    Engineering ticket an erase is refused below the battery floor and, once sent, is in the
    session log the portal receives, with its class, bytes and who sent it."""
    from portal.records import RecordStore

    session, box, sim = remote_box["session"], remote_box["box"], remote_box["sim"]
    basic = box.issue("basic-1d")
    read = session.uds(BOX, "EGS", bytes.fromhex("22F190"), ticket=basic)
    assert read.type == "uds.response" and read.body["response"].startswith("62f190")
    before = sim.state()["ecus"]["EGS"]["requests"]
    for request, what in (
        ("3101FF00", "programming: RoutineControl EraseMemory (0xFF00)"),
        ("3400441234000004", "programming: RequestDownload"),
    ):
        denied = session.uds(BOX, "EGS", bytes.fromhex(request))
        assert denied.type == "job.denied", denied
        assert what in denied.body["message"] and "raw_programming" in denied.body["message"]
        assert "Engineering, 1 day" in denied.body["hint"]
    engineering = box.issue("engineering-1d")
    sim.set_battery(11.8)
    low = session.uds(BOX, "EGS", bytes.fromhex("3101FF00"), ticket=engineering)
    assert low.type == "uds.response" and "response" not in low.body
    assert "battery voltage 11.8 V is below 13.0 V" in low.body["error"]["message"]
    assert sim.state()["ecus"]["EGS"]["requests"] == before  # nothing reached the ECU
    sim.set_battery(13.6)
    sent = session.uds(BOX, "EGS", bytes.fromhex("3101FF00"))
    assert sent.body["response"].startswith("7f31"), sent  # the ECU's answer
    assert sim.state()["ecus"]["EGS"]["requests"] == before + 1
    records = RecordStore(tmp_path / "portal.sqlite")
    session.keep_records(records)
    deadline = time.monotonic() + 15
    log: list[dict] = []
    while not log and time.monotonic() < deadline:
        log = [r for r in records.latest() if r["kind"] == "session_log"]
        time.sleep(0.1)
    [entry] = log  # the one raw request sent that is not a read
    assert entry["id"] == f"raw-{sent.body['job']}"
    body = entry["body"]
    assert (body["class"], body["request"], body["ecu"]) == ("programming", "31 01 ff 00", "EGS")
    assert (body["origin"], body["who"]) == ("portal", USER)


def test_live_data_streams_to_the_portal_until_it_cancels(remote_box) -> None:
    import threading

    session = remote_box["session"]
    events: list[Message] = []
    final: list[Message] = []
    runner = threading.Thread(
        target=lambda: final.append(
            session.run(
                BOX,
                "read_live_data",
                params={"interval": 0.2, "duration": 60},
                ticket=remote_box["box"].issue("basic-1d"),
                on_event=events.append,
            )
        )
    )
    runner.start()
    deadline = time.monotonic() + 20
    while sum("values" in e.body for e in events) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    job_id = events[0].body["job"]["id"]  # from job.accepted
    session.cancel(BOX, "20990101-0001-ffffff")  # not a job of this portal: refused, nothing stops
    time.sleep(0.5)
    assert runner.is_alive()
    stray = session.inbox.get(timeout=5)[1]
    assert stray.type == "error" and "no running remote job" in stray.body["message"]
    session.cancel(BOX, job_id)
    runner.join(timeout=10)
    result = final[0].body["job"]
    assert result["state"] == "done" and result["result"]["rounds"] >= 3
    assert result["result"]["seconds"] < 30  # stopped long before its 60 s
    values = [e.body["values"] for e in events if "values" in e.body]
    assert "DME:4001" in values[0] and values[0]["DME:4001"]["value"] is not None


def test_a_forged_ticket_is_refused_with_its_reason(remote_box) -> None:
    session, box = remote_box["session"], remote_box["box"]
    token = box.issue("basic-1d")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    final = session.run(BOX, "clear_fault_memory", ecu="DME", ticket=forged)
    assert final.type == "error" and final.body["reason"] == "forged"


def test_acl_keeps_users_and_boxes_apart(remote_box) -> None:
    """mosquitto accepts a subscription it may not serve and drops what the ACL forbids, so the
    test looks at what arrives and what the box does, not at acknowledgements."""
    broker, session, sim = remote_box["broker"], remote_box["session"], remote_box["sim"]
    bob = RemoteSession("127.0.0.1", broker["port"], broker["pki"], OTHER_USER)  # serves box-b only
    spy = RemoteSession(
        "127.0.0.1", broker["port"], broker["pki"], OTHER_BOX
    )  # box B's certificate
    try:
        bob.subscribe(f"vci/box/{BOX}/#")
        spy.subscribe(f"vci/box/{BOX}/#")
        assert (
            session.run(BOX, "identify").body["job"]["state"] == "done"
        )  # box A and its user talk ...
        time.sleep(0.5)
        assert (
            bob.inbox.empty()
            and spy.inbox.empty()
            and BOX not in bob.states
            and BOX not in spy.states
        )  # ... unheard
        before = sim.state()["ecus"]["DME"]["requests"]
        for intruder in (bob, spy):
            intruder.send(BOX, Message("job.request", {"kind": "identify", "user": intruder.user}))
        time.sleep(1.5)
        assert (
            sim.state()["ecus"]["DME"]["requests"] == before
        )  # their requests never reached box A
    finally:
        bob.close()
        spy.close()


def test_each_identity_publishes_and_reads_only_what_it_needs(remote_box, tmp_path) -> None:
    """A portal user cannot forge the box's state or outbox records, answer or ask in another
    user's name, or read another user's requests (they carry tickets) or answers; another box
    cannot forge this box's records. Forbidden publishes are not delivered, forbidden
    subscriptions get nothing (looked at on the wire: what paho hands over)."""
    from portal.records import RecordStore

    broker, alice, sim = remote_box["broker"], remote_box["session"], remote_box["sim"]
    carol = RemoteSession("127.0.0.1", broker["port"], broker["pki"], COLLEAGUE)  # same box
    other_box = RemoteSession("127.0.0.1", broker["port"], broker["pki"], OTHER_BOX)
    heard: list[str] = []
    try:
        records = RecordStore(tmp_path / "carol.sqlite")
        carol.keep_records(records)
        wait_online(carol, BOX)
        for topic in (
            topics.responses(BOX, COLLEAGUE),
            topics.requests(BOX, COLLEAGUE),
            topics.all_requests(BOX),
            f"vci/box/{BOX}/#",
            "#",
        ):
            alice.subscribe(topic)
        alice.client.on_message = lambda client, userdata, msg: heard.append(msg.topic)
        forged_record = Message(
            "outbox.record",
            {"id": "forged-1", "kind": "job.result", "body": {"job": {"who": COLLEAGUE}}},
        )
        in_carols_name = Message("job.request", {"kind": "read_fault_memory", "ecu": "DSC"})
        forbidden = [
            (alice, topics.state(BOX), b"offline", True),
            (alice, topics.outbox(BOX), forged_record.encode(), False),
            (
                alice,
                topics.responses(BOX, COLLEAGUE),
                Message("error", {}, corr="x" * 8).encode(),
                False,
            ),
            (alice, topics.requests(BOX, COLLEAGUE), in_carols_name.encode(), False),
            (other_box, topics.outbox(BOX), forged_record.encode(), False),
            (other_box, topics.responses(BOX, COLLEAGUE), Message("error", {}).encode(), False),
        ]
        dsc_before = sim.state()["ecus"]["DSC"]["requests"]
        for sender, topic, payload, retain in forbidden:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = topics.responses(BOX, COLLEAGUE)
            props.CorrelationData = in_carols_name.id.encode()
            sender.client.publish(
                topic, payload, qos=1, retain=retain, properties=props
            ).wait_for_publish(5)
        # carol's own job runs and is answered to her alone, after all of the above
        final = carol.run(BOX, "read_vin", ecu="DME")
        assert final.body["job"]["state"] == "done" and final.body["job"]["who"] == COLLEAGUE
        deadline = time.monotonic() + 10
        while records.count(BOX) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # anything forged would have come by now, with carol's record
        kept = records.latest()
        assert "forged-1" not in [r["id"] for r in kept]
        assert [r["body"]["job"]["kind"] for r in kept] == ["read_vin"]
        assert carol.inbox.empty()  # no forged answer
        assert sim.state()["ecus"]["DSC"]["requests"] == dsc_before  # nothing in carol's name
        assert not [t for t in heard if "/req/" in t or "/res/" in t], heard
        again = RemoteSession("127.0.0.1", broker["port"], broker["pki"], COLLEAGUE, "carol-2")
        try:
            assert again.boxes_online(0.5).get(BOX) == "online"  # the retained state is the box's
        finally:
            again.close()
    finally:
        carol.close()
        other_box.close()


def test_who_is_the_requesting_identity_never_the_message(remote_box) -> None:
    """The session log's "who" is the user whose requests topic a request came on; a request
    that names another user's response topic is refused and not run."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    broker, alice, sim = remote_box["broker"], remote_box["session"], remote_box["sim"]
    claims = Message("job.request", {"kind": "read_vin", "ecu": "DME", "user": COLLEAGUE})
    final = alice.exchange(BOX, claims, timeout=30)
    assert final.body["job"]["who"] == USER
    carol = RemoteSession("127.0.0.1", broker["port"], broker["pki"], COLLEAGUE)
    try:
        carol.subscribe(topics.responses(BOX, COLLEAGUE))
        alice.subscribe(topics.responses(BOX, USER))
        before = sim.state()["ecus"]["DSC"]["requests"]
        request = Message("job.request", {"kind": "read_fault_memory", "ecu": "DSC"})
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.responses(BOX, COLLEAGUE)  # answers to carol, please
        props.CorrelationData = request.id.encode()
        alice.client.publish(
            topics.requests(BOX, USER), request.encode(), qos=1, properties=props
        ).wait_for_publish(5)
        refusal = alice.inbox.get(timeout=10)[1]
        assert (
            refusal.type == "error" and "the box answers only the sender" in refusal.body["message"]
        )
        assert refusal.corr == request.id
        time.sleep(0.5)
        assert carol.inbox.empty() and sim.state()["ecus"]["DSC"]["requests"] == before
    finally:
        carol.close()


def test_malformed_and_oversized_messages_are_refused_without_harm(remote_box) -> None:
    session, sim = remote_box["session"], remote_box["sim"]
    session.subscribe(topics.responses(BOX, USER))
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    identify = Message("job.request", {"kind": "identify", "user": USER})
    cases = [  # (payload, correlation data, with a response topic)
        (b"not json", None, True),
        (
            b'{"v": 1, "type": "job.request", "id": "abcdefgh", "body": {"kind": "identify"}, "ticket": 7}',
            None,
            True,
        ),
        (b"x" * 70_000, None, True),
        (identify.encode(), None, True),  # no correlation data
        (Message("job.request", identify.body).encode(), b"someone-else", True),  # not its id
        (Message("job.request", identify.body).encode(), None, False),  # nowhere to answer
    ]
    before = sim.state()["ecus"]["DME"]["requests"]
    for payload, corr, with_response in cases:
        props = Properties(PacketTypes.PUBLISH)
        if with_response:
            props.ResponseTopic = topics.responses(BOX, USER)
        if corr:
            props.CorrelationData = corr
        session.client.publish(
            topics.requests(BOX, USER), payload, qos=1, properties=props
        ).wait_for_publish(5)
    errors = []
    deadline = time.monotonic() + 10
    while len(errors) < 5 and time.monotonic() < deadline:
        try:
            errors.append(session.inbox.get(timeout=1)[1])
        except Exception:  # noqa: BLE001
            break
    time.sleep(0.5)
    assert session.inbox.empty()  # nothing more: the request without a response topic did not run
    assert [e.type for e in errors] == ["error"] * 5
    words = [e.body["message"] for e in errors]
    assert any("ticket is not text" in w for w in words)
    assert sum("correlation data is missing or is not its id" in w for w in words) == 2
    assert sim.state()["ecus"]["DME"]["requests"] == before  # none of them reached the car
    final = session.run(BOX, "identify")  # the box still serves
    assert final.body["job"]["state"] == "done"


def test_broker_killed_mid_flash_then_everything_arrives(box, broker, start_sim, tmp_path) -> None:
    """A remote flash goes on while mosquitto is killed and restarted; the portal then gets the
    rest of the events and the result (persistent sessions), and the outbox loses nothing."""
    import signal

    from firmware_py.gateway.outbox import Outbox
    from firmware_py.gateway.store import Store
    from portal.records import RecordStore

    conf = broker["pki"] / "mosquitto.conf"
    conf.write_text(
        conf.read_text() + "autosave_on_changes true\nautosave_interval 1\n"
    )  # persist every change
    broker["proc"].terminate()
    broker["proc"].wait(timeout=10)

    def start_broker() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(broker["port"])
        return proc

    mosq = start_broker()
    sim = start_sim("--battery", "13.6")
    sim.inject(ecu="EGS", delay=0.004)  # an ECU that takes its time: the flash lasts a few seconds
    package, trust = flash_package(box, tmp_path, 512 * 1024)
    env = gateway_env(box, broker)
    env["VCI_SECURITY_PUBLISHER_KEYS_DIR"] = str(trust)
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(session, BOX)

        def outage() -> None:
            nonlocal mosq
            mosq.send_signal(signal.SIGKILL)  # the broker dies in the middle of the flash
            mosq.wait(timeout=10)
            time.sleep(1.5)
            mosq = start_broker()

        seen = flash_through_an_outage(session, box, package, outage)
        assert seen.result.type == "job.result", seen.result
        assert seen.result.body["job"]["state"] == "done"
        # the events after the outage arrived
        assert seen.at_kill < 100 and seen.after and max(seen.after) == 100.0
        egs = sim.state()["ecus"]["EGS"]
        assert egs["region"]["valid"] and egs["sw_version"] == "12.05.00"
        records = RecordStore(tmp_path / "portal.sqlite")
        received = session.collect_outbox(records, seconds=5)
        assert received == records.count(BOX) >= 1  # the programming job's result record
        outbox = Outbox(Store(box.root / "state"))
        deadline = time.monotonic() + 10
        while outbox.count() and time.monotonic() < deadline:  # the acknowledgements on the way
            time.sleep(0.05)
        assert outbox.count() == 0  # acknowledged: nothing pending, nothing lost
        print(
            f"\nflash at {seen.at_kill} % when the broker was killed; {len(seen.events)} events, {received} outbox record(s) received"
        )
    finally:
        session.close()
        gateway.stop()
        mosq.terminate()
        mosq.wait(timeout=10)


def test_outbox_records_survive_a_power_cut_of_the_box(box, broker, start_sim, tmp_path) -> None:
    """Records the portal has not acknowledged are still there after the box loses power, and
    arrive once the portal listens: sent = received, nothing left."""
    import signal

    from firmware_py.gateway.outbox import Outbox
    from firmware_py.gateway.store import Store
    from portal.records import RecordStore

    sim = start_sim("--battery", "13.6")
    gateway = start_gateway_process(sim.cli_args("doip"), gateway_env(box, broker))
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(session, BOX)
        ticket = box.issue("basic-1d")
        for ecu in ("DME", "EGS", "DSC"):  # the portal does not collect records yet
            final = session.run(BOX, "clear_fault_memory", ecu=ecu, ticket=ticket)
            assert final.body["job"]["state"] == "done"
        outbox = Outbox(Store(box.root / "state"))
        assert outbox.count() == 7  # 3 job results; the ticket's activation and 3 uses
        gateway.process.send_signal(signal.SIGKILL)  # power cut
        gateway.process.wait(timeout=10)
        assert Outbox(Store(box.root / "state")).count() == 7  # on disk
        gateway = start_gateway_process(sim.cli_args("doip"), gateway_env(box, broker))
        records = RecordStore(tmp_path / "portal.sqlite")
        session.keep_records(records)
        deadline = time.monotonic() + 20
        while (records.count(BOX) < 7 or outbox.count()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert records.count(BOX) == 7 and outbox.count() == 0
        jobs = [r for r in records.latest() if r["kind"] == "job.result"]
        kinds = sorted(r["body"]["job"]["ecu"] for r in jobs)
        assert kinds == ["DME", "DSC", "EGS"]
    finally:
        session.close()
        gateway.stop()


def test_what_a_command_did_to_the_car_reaches_the_portal(box, broker, start_sim, tmp_path) -> None:
    """``vci dtc clear`` on the box, with no gateway running: its result waits in the outbox and
    reaches the portal once the gateway links up; a free read is not sent."""
    from firmware_py.gateway.outbox import Outbox
    from firmware_py.gateway.store import Store
    from portal.records import RecordStore

    sim = start_sim("--battery", "13.6")
    assert box.vci("ticket", "add", box.issue("basic-1d")).returncode == 0
    cleared = box.vci("dtc", "clear", "--ecu", "DME", "--yes", *sim.cli_args("doip"))
    assert cleared.returncode == 0, cleared.stderr
    assert box.vci("dtc", "read", "--ecu", "DSC", *sim.cli_args("doip")).returncode == 0
    outbox = Outbox(Store(box.root / "state"))
    assert outbox.count() == 3  # the clearing, and the ticket's activation and use by it
    gateway = start_gateway_process(sim.cli_args("doip"), gateway_env(box, broker))
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(session, BOX)
        records = RecordStore(tmp_path / "portal.sqlite")
        session.keep_records(records)
        deadline = time.monotonic() + 15
        while (records.count(BOX) < 3 or outbox.count()) and time.monotonic() < deadline:
            time.sleep(0.1)
        [record] = [r for r in records.latest() if r["kind"] == "job.result"]
        job = record["body"]["job"]
        assert (job["kind"], job["ecu"], job["origin"]) == ("clear_fault_memory", "DME", "cli")
        assert record["body"]["vin"] == "WBAJA71090B123456" and outbox.count() == 0
    finally:
        session.close()
        gateway.stop()
