"""The remote protocol's envelope (strict, bounded decoding) and the outbox (store first, deliver
at least once, idempotent ids, survives a restart)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.cloud.schema import MAX_MESSAGE, Message, ProtocolError, decode
from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.store import Store


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
        (b"[" * 60_000, "not UTF-8 JSON"),  # nested too deep
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
