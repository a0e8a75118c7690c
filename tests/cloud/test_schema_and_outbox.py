"""The remote protocol's envelope (strict, bounded decoding) and the outbox (store first, deliver
at least once, idempotent ids, survives a restart)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.cloud.portal_link import PortalLink
from firmware_py.cloud.schema import MAX_MESSAGE, Message, ProtocolError, decode
from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.store import Store
from tests.strategies import JSON_VALUES


def test_round_trip_and_answers_carry_the_correlation() -> None:
    request = Message("job.request", {"kind": "identify"}, ticket="vt1.x.y")
    back = decode(request.encode())
    assert back == request
    answer = back.answer("job.accepted", {"job": "1"})
    assert decode(answer.encode()).corr == request.id


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (
            json.dumps({"v": 2, "type": "job.request", "id": "a" * 8, "body": {}}).encode(),
            "version 2",
        ),
        (
            json.dumps({"v": 1, "type": "format.disk", "id": "a" * 8, "body": {}}).encode(),
            "unknown message type",
        ),
        (
            json.dumps({"v": 1, "type": "job.event", "id": "short", "body": {}}).encode(),
            "message id",
        ),
        (
            json.dumps({"v": 1, "type": "job.event", "id": "a" * 8, "body": []}).encode(),
            "body is not an object",
        ),
        (
            json.dumps(
                {"v": 1, "type": "job.request", "id": "a" * 8, "body": {}, "ticket": 5}
            ).encode(),
            "ticket is not text",
        ),
        (
            json.dumps(
                {"v": 1, "type": "job.event", "id": "a" * 8, "corr": 5, "body": {}}
            ).encode(),
            "correlation id",
        ),
        (
            json.dumps(
                {"v": 1, "type": "job.event", "id": "a" * 8, "body": {}, "admin": 1}
            ).encode(),
            "unknown fields: admin",
        ),
        (b"{" + b" " * (MAX_MESSAGE + 1) + b"}", "larger than"),
        (b"[" * 60_000, "nested deeper"),
        (b'{"v": 1, "v": 1}', "appears twice"),
        (
            b'{"v":1,"type":"job.cancel","id":"aaaaaaaa","body":{},"time":NaN}',
            "NaN is not a JSON number",
        ),
        (
            b'{"v":1,"type":"job.cancel","id":"aaaaaaaa","body":{"x":Infinity}}',
            "Infinity is not a JSON number",
        ),
        (b'{"v":1,"type":"job.cancel","id":"aaaaaaaa","body":{},"time":1e999}', "time"),
        (b'{"v":1,"type":"job.cancel","id":"aaaaaaaa","body":{},"time":-5}', "time"),
    ],
)
def test_bad_messages_are_refused_with_their_reason(raw: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        decode(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300)
    | st.dictionaries(
        st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8), max_size=8
    ).map(lambda d: json.dumps(d).encode())
)
def test_decoding_raises_nothing_but_protocol_errors(raw: bytes) -> None:
    try:
        decode(raw)
    except ProtocolError:
        pass


def test_outbox_survives_a_restart_and_delivers_until_acknowledged(tmp_path) -> None:
    box = Outbox(Store(tmp_path))
    first = box.put("job.result", {"job": 1})
    box.put("job.result", {"job": 2}, record_id="job-2")
    box.put("job.result", {"job": 2}, record_id="job-2")  # the same record twice is one
    box.sent([first])
    again = Outbox(Store(tmp_path))  # the box rebooted
    pending = again.pending()
    assert [r.body["job"] for r in pending] == [1, 2] and pending[0].attempts == 1
    assert again.acknowledged([first, first, "unknown"]) == 1  # repeated acks are harmless
    assert [r.id for r in again.pending()] == ["job-2"] and again.count() == 1


def test_the_portal_keeps_records_by_box_and_id(tmp_path) -> None:
    """A box cannot take or shadow another box's record ids (the box is its outbox topic's)."""
    from portal.records import RecordStore

    store = RecordStore(tmp_path / "portal.sqlite")
    assert store.keep("box-a", {"id": "job-1", "kind": "job.result", "body": {"who": "a"}}) == 1
    assert store.keep("box-b", {"id": "job-1", "kind": "job.result", "body": {"who": "b"}}) == 1
    assert store.keep("box-a", {"id": "job-1", "kind": "job.result", "body": {"who": "x"}}) == 0
    assert store.count("box-a") == store.count("box-b") == 1
    kept = {r["box"]: r["body"]["who"] for r in store.latest()}
    assert kept == {"box-a": "a", "box-b": "b"}


def test_topics_name_box_kind_and_user() -> None:
    from firmware_py.cloud import topics

    assert topics.parse(topics.requests("box-1", "portal-alice")) == (
        "box-1",
        "req",
        "portal-alice",
    )
    assert topics.parse(topics.responses("box-1", "u")) == ("box-1", "res", "u")
    assert topics.parse(topics.outbox("box-1")) == ("box-1", "outbox", None)
    assert topics.parse(topics.state("box-1")) == ("box-1", "state", None)
    for other in (
        "vci/box/box-1/req",
        "vci/box/box-1/req/a/b",
        "vci/box/box-1/req/+",
        "x/box/b/state",
        "vci/box//state",
        "vci/box/box-1/state/x",
        "vci/box/box-1/other",
    ):
        assert topics.parse(other) is None, other


def test_the_example_acl_gives_a_user_what_user_acl_writes() -> None:
    """broker/acl.example shows the lines portal.broker.user_acl writes for a user (the tests'
    and the benchmark's brokers add users with it), and nothing grants readwrite or a whole box."""
    from pathlib import Path

    from portal.broker import user_acl

    text = (Path(__file__).parents[2] / "broker" / "acl.example").read_text()
    assert user_acl("portal-alice", ["box-test-0001"]) in text
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not [r for r in rules if "readwrite" in r or r.endswith("/#")], rules


FROM_ALICE = "vci/box/box-test-0001/req/portal-alice"


class KeptLink(PortalLink):
    """The portal link's shared part with a carrier that keeps what it would publish."""

    carrier = "kept"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, corr: bytes | None = None) -> None:
        self.sent.append((topic, payload))


def test_an_unsigned_envelope_time_never_moves_trusted_time(tmp_path) -> None:
    """The envelope's ``time`` is not signed: a portal user (or anyone on the path) who sets it
    far ahead must not expire every ticket; only a time.beacon signed by the portal moves it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware_py.config import CloudConfig
    from firmware_py.gateway.entitlements import Entitlements
    from firmware_py.gateway.service import Gateway
    from firmware_py.gateway.trusted_time import TrustedClock
    from portal.tickets import time_beacon

    system = [1_800_000_000.0]
    store = Store(tmp_path)
    clock = TrustedClock(store, system=lambda: system[0], monotonic=lambda: 5.0)
    key = Ed25519PrivateKey.generate()  # TEST key
    ent = Entitlements(store, {"k1": key.public_key()}, "box-test-0001", clock)
    gateway = Gateway(store, open_vehicle=object, handlers={}, entitlements=ent, clock=clock)
    link = KeptLink(gateway, "box-test-0001", CloudConfig())
    ahead = system[0] + 5 * 365 * 86400
    link.received(FROM_ALICE, Message("outbox.ack", {"ids": []}, time=ahead).encode(), None)
    assert clock.now() == system[0]
    beacon = time_beacon(key, "k1", "box-test-0001", now=system[0] + 600)
    link.received(FROM_ALICE, Message("time.beacon", {"beacon": beacon}).encode(), None)
    assert clock.now() == system[0] + 600 and link.sent == []
    forged = time_beacon(Ed25519PrivateKey.generate(), "k1", "box-test-0001", now=ahead)
    link.received(FROM_ALICE, Message("time.beacon", {"beacon": forged}).encode(), None)
    assert clock.now() == system[0] + 600
    [(topic, answer)] = link.sent  # the refusal goes back to the sender
    assert topic.endswith("/res/portal-alice") and b"signature is not valid" in answer


FIELDS = ["v", "type", "id", "corr", "body", "ticket", "time"]


def all_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return True


def envelopes():
    good = {"v": 1, "type": "job.cancel", "id": "a" * 12, "corr": None, "body": {"job": "x"}}
    mutated = st.tuples(st.sampled_from(FIELDS), JSON_VALUES).map(
        lambda fv: json.dumps({**good, fv[0]: fv[1]}).encode()
    )
    deep = st.integers(min_value=33, max_value=5000).map(
        lambda n: json.dumps({**good, "body": {"x": 0}}).replace("0", "[" * n + "]" * n).encode()
    )
    return mutated | deep | st.binary(max_size=200)


@settings(max_examples=400, deadline=None)
@given(envelopes())
def test_any_envelope_is_a_clear_refusal_or_a_finite_message(raw: bytes) -> None:
    try:
        msg = decode(raw)
    except ProtocolError as err:
        assert str(err)
    else:
        assert msg.time is None or math.isfinite(msg.time)
        assert all_finite(msg.body)


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """A gateway with its portal link (no carrier): messages go in through ``received``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware_py.config import CloudConfig
    from firmware_py.gateway.entitlements import Entitlements
    from firmware_py.gateway.service import Gateway
    from firmware_py.gateway.trusted_time import TrustedClock

    store = Store(tmp_path_factory.mktemp("link"))
    clock = TrustedClock(store, system=lambda: 1_800_000_000.0, monotonic=lambda: 5.0)
    key = Ed25519PrivateKey.generate()  # TEST key
    ent = Entitlements(store, {"k1": key.public_key()}, "box-test-0001", clock)
    gateway = Gateway(store, open_vehicle=object, handlers={}, entitlements=ent, clock=clock)
    return KeptLink(gateway, "box-test-0001", CloudConfig()), store


@settings(max_examples=300, deadline=None)
@given(envelopes())
def test_malformed_portal_messages_change_nothing_on_the_box(linked, raw: bytes) -> None:
    link, store = linked
    db = store.connection()

    def snapshot() -> list:
        return [
            db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("tickets", "ticket_usage", "trusted_time", "outbox", "revoked")
        ]

    before, now = [list(map(tuple, rows)) for rows in snapshot()], link.gateway.clock.now()
    link.received(FROM_ALICE, raw, None)  # raises nothing, whatever comes
    assert [list(map(tuple, rows)) for rows in snapshot()] == before
    assert link.gateway.clock.now() == now


@pytest.mark.parametrize(
    "frame",
    [
        '{"ack": 1e400}',  # infinity: int() raised OverflowError, which ended the link's reader
        '{"refused": 1e400}',
        '{"mid": 1e400, "topic": "x"}',
        '{"mid": "7"}',
        '{"ack": 1, "ack": 2}',
        "[" * 5000 + "]" * 5000,  # nested past the recursion limit: RecursionError before
        "not json",
        "[1]",
        "{}",
    ],
)
def test_a_malformed_bridge_frame_is_dropped_and_the_link_reads_on(frame: str) -> None:
    from firmware_py.cloud.ws_link import WsLink
    from firmware_py.config import CloudConfig

    link = WsLink(None, "box", CloudConfig())
    link._unacked[1] = "{}"
    link._frame(frame)  # raises nothing
    link._frame('{"ack": 1}')
    assert link._unacked == {} and link._acks == []


def test_a_result_larger_than_a_message_is_answered_and_the_link_goes_on(tmp_path) -> None:
    """A job result the envelope cannot carry (more than MAX_MESSAGE) is answered with an error
    that says so; before, encoding it raised in the event forwarder, which ended it: no remote
    job on that box was answered again until the gateway restarted."""
    import asyncio
    import time

    from firmware_py.cloud import topics
    from firmware_py.config import CloudConfig
    from firmware_py.gateway.service import Gateway

    sizes = iter([2 * MAX_MESSAGE, 17])
    gateway = Gateway(
        Store(tmp_path),
        open_vehicle=object,
        handlers={"identify": lambda vehicle, ctx: {"vin": "W" * next(sizes)}},
    )
    link = KeptLink(gateway, "box-test-0001", CloudConfig())
    answer_to = topics.responses("box-test-0001", "portal-alice")

    async def answer(request: Message) -> Message:
        link.received(FROM_ALICE, request.encode(), answer_to, request.id.encode())
        ends = time.monotonic() + 10
        while time.monotonic() < ends:
            for _, payload in link.sent:
                msg = decode(payload)
                if msg.corr == request.id and msg.type in ("job.result", "error"):
                    return msg
            await asyncio.sleep(0.02)
        raise AssertionError(f"no answer to {request.id}")

    async def go() -> tuple[Message, Message]:
        await gateway.start()
        link._start_tasks()
        try:
            first = await answer(Message("job.request", {"kind": "identify"}))
            second = await answer(Message("job.request", {"kind": "identify"}))
            link.connected.set()  # the outbox goes out: the large record held up the others
            ends = time.monotonic() + 10
            while len(records()) < 2 and time.monotonic() < ends:
                await asyncio.sleep(0.05)
            return first, second
        finally:
            await link._stop_tasks()
            await gateway.stop()

    def records() -> dict[str, dict]:
        out = {}
        for _, payload in link.sent:
            msg = decode(payload)
            if msg.type == "outbox.record":
                out[msg.body["id"]] = msg.body["body"]
        return out

    first, second = asyncio.run(go())
    kept = records()
    assert len(kept) == 2, kept.keys()
    assert sum("larger than" in body.get("omitted", "") for body in kept.values()) == 1
    assert (
        sum(body.get("job", {}).get("result") == {"vin": "W" * 17} for body in kept.values()) == 1
    )
    assert first.type == "error" and "larger than" in first.body["message"]
    assert first.body["hint"]
    assert second.type == "job.result" and second.body["job"]["result"]["vin"] == "W" * 17


@pytest.mark.parametrize(
    ("vin", "car"),
    [
        ("WBAJA71090B123456", "WBAJA71090B123456"),
        ("wbaja71090b123456", None),  # lower case: not a VIN the portal takes
        ("WBAJA7109 B123456", None),  # a space from an odd ECU answer
        ("WBAJA71090B12345O", None),  # O is never in a VIN
        (None, None),
    ],
)
def test_the_box_state_names_only_a_vin_the_portal_takes(vin: str | None, car: str | None) -> None:
    """A VIN the portal would refuse must not cost the whole state message (online, release):
    the box then says it is online without a car."""
    from types import SimpleNamespace

    from firmware_py.cloud.box_state import parse
    from firmware_py.config import CloudConfig

    gateway = SimpleNamespace(vehicle_state=lambda: {"vin": vin})
    state = PortalLink(gateway, "box-test-0001", CloudConfig()).state()
    assert state.online and state.vin == car
    assert parse(state.encode()).vin == car  # what the portal reads back
