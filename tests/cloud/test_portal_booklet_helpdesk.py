"""The portal's keeping of booklet entries and help-desk requests as plain code over a real SQLite
file: duplicates are kept once, mileage going backwards is flagged and kept, a request is
acknowledged only when it is here whole with SHA-256 equal (docs/service-booklet.md,
docs/helpdesk.md)."""

from __future__ import annotations

import base64
import hashlib

from portal.records import RecordStore

VIN = "WBAJA71090B123456"


def _entry(index: int, date: str, km: int, eid: str | None = None) -> dict:
    entry = {"id": eid or f"{VIN}-{index:05d}-{index:012x}", "index": index, "date": date,
             "mileage_km": km, "items": ["engine_oil"], "workshop": "W-1", "note": "", "vin": VIN}  # fmt: skip
    return {"id": entry["id"], "kind": "booklet.entry", "body": {"vin": VIN, "entry": entry}}


def test_booklet_keeps_an_entry_once_and_flags_mileage_going_backwards(tmp_path) -> None:
    store = RecordStore(tmp_path / "portal.sqlite")
    assert store.keep("box-a", _entry(1, "2024-04-11", 31877)) == 1
    assert store.keep("box-b", _entry(1, "2024-04-11", 31877)) == 1  # another box: same entry
    assert store.keep("box-a", _entry(2, "2025-05-20", 30000)) == 1  # the odometer went back
    assert store.keep("box-a", _entry(2, "2025-05-21", 44000, "other-id")) == 1  # index reused
    entries = store.booklet.entries(VIN)
    assert [e["index"] for e in entries] == [1, 2, 2]  # the first entry once, nothing lost
    assert entries[0]["flag"] is None
    assert "mileage goes backwards: 30000 km after 31877 km on 2024-04-11" in entries[1]["flag"]
    assert "entry 2 was seen before" in entries[2]["flag"]


def _chunks(rid: str, name: str, data: bytes, size: int) -> list[dict]:
    count = -(-len(data) // size)
    return [
        {"id": f"hdchunk-{rid}-0-{i}", "kind": "helpdesk.chunk", "body": {
            "request": rid, "attachment": name, "index": i, "count": count,
            "data": base64.b64encode(data[i * size:(i + 1) * size]).decode()}}
        for i in range(count)
    ]  # fmt: skip


def _request(rid: str, name: str, data: bytes, chunks: int, digest: str | None = None) -> dict:
    att = {"name": name, "size": len(data), "chunks": chunks,
           "sha256": digest or hashlib.sha256(data).hexdigest()}  # fmt: skip
    body = {"request": rid, "question": "q", "contact": "c", "vin": VIN, "attachments": [att]}
    return {"id": f"helpdesk-{rid}", "kind": "helpdesk.request", "body": body}


def test_a_request_is_acknowledged_only_when_whole_and_its_sha256_agrees(tmp_path) -> None:
    store = RecordStore(tmp_path / "portal.sqlite")
    data = bytes(range(256)) * 100
    chunks = _chunks("r1", "t.pcap", data, 4096)
    request = _request("r1", "t.pcap", data, len(chunks))
    for chunk in chunks[:-1]:  # one chunk is still on the way when the request arrives
        store.keep("box-a", chunk)
        assert store.acknowledgements("box-a", chunk) == [chunk["id"]]
    store.keep("box-a", request)
    assert store.acknowledgements("box-a", request) == []  # not yet: the box keeps sending it
    store.keep("box-a", chunks[-1])
    assert store.acknowledgements("box-a", chunks[-1]) == [chunks[-1]["id"], "helpdesk-r1"]
    store.keep("box-a", chunks[0])  # sent again after an outage: kept once
    assert store.helpdesk.attachment("r1", "t.pcap") == data
    assert store.acknowledgements("box-a", request) == ["helpdesk-r1"]
    # an attachment whose SHA-256 does not agree: never acknowledged, and said why
    bad = _request("r2", "t.pcap", data, len(chunks), digest="0" * 64)
    for chunk in _chunks("r2", "t.pcap", data, 4096):
        store.keep("box-a", chunk)
    store.keep("box-a", bad)
    assert store.acknowledgements("box-a", bad) == []
    shown = next(r for r in store.helpdesk.requests() if r["id"] == "r2")
    assert not shown["complete"] and "SHA-256" in shown["problem"]
