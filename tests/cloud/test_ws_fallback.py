"""The WebSocket fallback: a box whose network blocks the MQTT port reaches the portal through
``vci-portal ws-bridge`` (HTTPS, its client certificate); the portal's user keeps talking MQTT to a
real mosquitto and gets the same messages. The bridge confines each box to its own topics and
refuses bad frames without harm; a bridge that goes away mid-flash loses no event."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import aiohttp
import pytest

from firmware_py.cloud import topics
from firmware_py.cloud.schema import Message
from portal.remote import RemoteSession
from tests.cloud.conftest import (
    BOX,
    HAVE_MOSQUITTO,
    OTHER_BOX,
    OTHER_USER,
    USER,
    flash_package,
    flash_through_an_outage,
    free_port,
    gateway_env,
    wait_online,
)
from tests.conftest import start_gateway_process

if not HAVE_MOSQUITTO:
    pytest.skip("mosquitto is not installed (scripts/test installs it)", allow_module_level=True)


def blocked_port() -> int:
    """A port where nothing answers: what a box sees when its network blocks MQTT."""
    return free_port()


@pytest.fixture
def ws_box(box, broker, start_sim, start_bridge):
    sim = start_sim("--battery", "13.6")
    bridge, url = start_bridge()
    env = gateway_env(
        box,
        broker,
        transport="auto",
        ws_url=url,
        fallback_after="1.5",
        broker_port=str(blocked_port()),
    )
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    wait_online(session, BOX)
    yield {
        "session": session,
        "sim": sim,
        "box": box,
        "broker": broker,
        "gateway": gateway,
        "url": url,
    }
    session.close()
    gateway.stop()


def test_auto_falls_back_to_the_websocket_and_remote_jobs_run(ws_box) -> None:
    session, box = ws_box["session"], ws_box["box"]
    events: list[Message] = []
    final = session.run(BOX, "identify", on_event=events.append)
    assert final.type == "job.result" and final.body["job"]["state"] == "done"
    assert final.body["job"]["result"]["vin"] == "WBAJA71090B123456"
    assert events[0].type == "job.accepted" and any(e.type == "job.event" for e in events)
    # the box's state through the bridge carries its release and, once identified, the car
    deadline = time.monotonic() + 10
    while (state := session.status.get(BOX)) is None or state.vin is None:
        assert time.monotonic() < deadline, f"the car is not in the box's state: {state}"
        time.sleep(0.1)
    assert state.online and state.version and state.vin == "WBAJA71090B123456"
    read = session.run(BOX, "read_fault_memory", ecu="DME")
    assert [d["id"] for d in read.body["job"]["result"]["ecus"][0]["dtcs"]] == ["12A100", "0A8E00"]
    denied = session.run(BOX, "clear_fault_memory", ecu="DME")
    assert denied.type == "job.denied" and "Basic" in denied.body["hint"]  # the reason arrives
    cleared = session.run(BOX, "clear_fault_memory", ecu="DME", ticket=box.issue("basic-1d"))
    assert cleared.body["job"]["state"] == "done"
    assert (
        session.run(BOX, "read_fault_memory", ecu="DME").body["job"]["result"]["ecus"][0]["dtcs"]
        == []
    )


def test_outbox_records_arrive_through_the_bridge(ws_box, tmp_path) -> None:
    from firmware_py.gateway.outbox import Outbox
    from firmware_py.gateway.store import Store
    from portal.records import RecordStore

    session, box = ws_box["session"], ws_box["box"]
    ticket = box.issue("basic-1d")
    for _ in range(3):  # each clearing of fault memory is a record the portal must keep
        assert (
            session.run(BOX, "clear_fault_memory", ecu="DME", ticket=ticket).body["job"]["state"]
            == "done"
        )
    records = RecordStore(tmp_path / "portal.sqlite")
    received = session.collect_outbox(records, seconds=6)
    # three job results, and what the ticket used: its activation and three uses
    assert received == records.count(BOX) == 7
    kinds = sorted(r["kind"] for r in records.latest())
    assert kinds == ["job.result"] * 3 + ["ticket.activated"] + ["ticket.used"] * 3
    deadline = time.monotonic() + 5
    outbox = Outbox(Store(box.root / "state"))
    while outbox.count() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outbox.count() == 0  # acknowledged through the bridge


def _client_ssl(pki: Any, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if name:
        ctx.load_cert_chain(str(pki / f"{name}.pem"), str(pki / f"{name}.key"))
    return ctx


def test_bridge_confines_a_box_and_refuses_bad_frames(broker, start_bridge) -> None:
    """Box B's certificate gets box B's topics only; malformed, misaddressed and oversized frames
    are refused, the bridge goes on serving, and nothing of it reaches box A's portal user."""
    _, url = start_bridge()
    alice = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    bob = RemoteSession("127.0.0.1", broker["port"], broker["pki"], OTHER_USER)
    alice.subscribe(f"vci/box/{BOX}/#")
    bob.subscribe(f"vci/box/{OTHER_BOX}/#")

    async def as_box_b() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            try:  # no client certificate: refused in the TLS handshake or with 403
                async with http.ws_connect(url, ssl=_client_ssl(broker["pki"], None)):
                    seen["anonymous"] = "connected"
            except (aiohttp.ClientError, ssl.SSLError, OSError) as err:
                seen["anonymous"] = type(err).__name__
            async with http.ws_connect(url, ssl=_client_ssl(broker["pki"], OTHER_BOX)) as ws:
                good = Message("job.result", {"job": {"state": "done"}}, corr="c" * 16)
                frames = [
                    "not json",
                    json.dumps(
                        {
                            "seq": 1,
                            "topic": topics.responses(BOX, USER),
                            "payload": good.encode().decode(),
                        }
                    ),
                    # its own state, but not one a box sends (firmware_py/cloud/box_state.py)
                    json.dumps(
                        {"seq": 2, "topic": topics.state(OTHER_BOX), "payload": '{"state": "up"}'}
                    ),
                    json.dumps(
                        {
                            "seq": 3,
                            "topic": topics.responses(OTHER_BOX, "#"),
                            "payload": good.encode().decode(),
                        }
                    ),
                    json.dumps(
                        {
                            "seq": 4,
                            "topic": topics.responses(OTHER_BOX, OTHER_USER),
                            "payload": '{"v": 2}',
                        }
                    ),
                    json.dumps({"ack_mid": 999}),
                    json.dumps({"ack_mid": [1]}),  # unhashable: TypeError ended the connection
                    "[" * 5000 + "]" * 5000,  # RecursionError in json.loads did too
                    json.dumps(
                        {
                            "seq": 5,
                            "topic": topics.responses(OTHER_BOX, OTHER_USER),
                            "payload": good.encode().decode(),
                        }
                    ),
                ]
                for frame in frames:
                    await ws.send_str(frame)
                answers = []
                while len(answers) < len(frames):
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    answers.append(json.loads(msg.data))
                seen["answers"] = answers
                await ws.send_str("x" * 200_000)  # larger than a frame may be
                msg = await asyncio.wait_for(ws.receive(), 10)
                seen["oversized"] = (msg.type, ws.close_code)
            async with http.ws_connect(url, ssl=_client_ssl(broker["pki"], OTHER_BOX)) as ws:
                await ws.send_str(
                    json.dumps(
                        {
                            "seq": 1,
                            "topic": topics.responses(OTHER_BOX, OTHER_USER),
                            "payload": good.encode().decode(),
                        }
                    )
                )
                seen["after"] = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        return seen

    try:
        seen = asyncio.run(as_box_b())
        assert seen["anonymous"] != "connected"
        answers = seen["answers"]
        refused = [a for a in answers if "refused" in a]
        assert [a.get("ack") for a in answers if "ack" in a] == [
            5
        ]  # only the well-formed frame to its own topic
        assert len(refused) == 8
        words = " ".join(a["error"]["message"] for a in refused)
        assert "not JSON" in words and f"may not publish to 'vci/box/{BOX}" in words
        assert "wildcards" in words and "version" in words and "ack_mid" in words
        assert "neither online nor offline" in words
        # closed by the bridge (aiohttp: 1009 message too big, or the transport dropped at once)
        assert seen["oversized"][0] in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ) and seen["oversized"][1] in (1009, 1006)
        assert seen["after"] == {"ack": 1}  # the bridge still serves
        time.sleep(0.5)
        got_alice = [alice.inbox.get_nowait() for _ in range(alice.inbox.qsize())]
        got_bob = [bob.inbox.get_nowait() for _ in range(bob.inbox.qsize())]
        assert got_alice == [] and BOX not in alice.states  # box B reached nothing of box A
        # the good frame went out on both connections: one message id, kept once by the portal
        assert [t for t, _ in got_bob] == [topics.responses(OTHER_BOX, OTHER_USER)]
        assert bob.states.get(OTHER_BOX) == "offline"  # the bridge said so when it left
    finally:
        alice.close()
        bob.close()


def test_bridge_restarted_mid_flash_loses_nothing(
    box, broker, start_sim, start_bridge, tmp_path
) -> None:
    """A remote flash over the WebSocket goes on while the bridge is killed and restarted; the
    portal then gets the rest of the events and the result."""
    import signal

    sim = start_sim("--battery", "13.6")
    sim.inject(ecu="EGS", delay=0.004)
    package, trust = flash_package(box, tmp_path, 512 * 1024)
    port = free_port()
    bridge, url = start_bridge(port)
    env = gateway_env(box, broker, transport="websocket", ws_url=url)
    env["VCI_SECURITY_PUBLISHER_KEYS_DIR"] = str(trust)
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(session, BOX)

        def outage() -> None:
            bridge.send_signal(
                signal.SIGKILL
            )  # the portal's bridge dies in the middle of the flash
            bridge.wait(timeout=10)
            time.sleep(1.5)
            start_bridge(port)

        seen = flash_through_an_outage(session, box, package, outage)
        assert seen.result.type == "job.result", seen.result
        assert seen.result.body["job"]["state"] == "done"
        assert seen.at_kill < 100 and seen.after and max(seen.after) == 100.0
        steps = [e.body.get("seq") for e in seen.events if e.type == "job.event"]
        assert steps == sorted(set(steps))  # in order, nothing twice
        assert sim.state()["ecus"]["EGS"]["sw_version"] == "12.05.00"
        print(f"\nflash at {seen.at_kill} % when the bridge was killed; {len(seen.events)} events")
    finally:
        session.close()
        gateway.stop()
