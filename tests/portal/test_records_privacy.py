"""One vehicle's data in the portal's records file (portal/privacy.py): exported as one archive,
and erased so that the file names the VIN nowhere - not in a help-desk trace that carries it cut
into ISO-TP frames, not in free pages - while another car's booklet, help-desk request and the
ticket use behind invoices stay; the erasure is recorded by a keyed hash."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile

import can

from firmware_py.gateway.privacy import vin_forms
from firmware_py.transport.trace import CanTrace
from firmware_py.transport.trace_search import trace_contains
from portal import privacy
from portal.cli import main
from portal.records import RecordStore

VIN, OTHER = "WBAJA71090B123456", "WBA5R11000FH99999"


def _trace(tmp_path, vin: str) -> bytes:
    """A CAN trace in which the car sent ``vin`` (0x22 F190's answer, BMW's ISO-TP frames)."""
    payload = b"\x62\xf1\x90" + vin.encode()
    frames = [b"\xf1\x10\x14" + payload[:5]]
    for seq, at in enumerate(range(5, len(payload), 6), start=1):
        frames.append((b"\xf1" + bytes([0x20 | seq]) + payload[at : at + 6]).ljust(8, b"\xaa"))
    path = tmp_path / f"{vin}.pcap"
    trace = CanTrace(path)
    for f in frames:
        trace.on_message_received(can.Message(arbitration_id=0x612, data=f, is_extended_id=False))
    trace.stop()
    data = path.read_bytes()
    assert vin.encode() not in data
    return data


def _request(records: RecordStore, rid: str, vin: str | None, files: dict[str, bytes]) -> None:
    atts = []
    for n, (name, data) in enumerate(files.items()):
        atts.append({"name": name, "size": len(data), "chunks": 1,
                     "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
        body = {"request": rid, "attachment": name, "index": 0, "count": 1,
                "data": base64.b64encode(data).decode()}  # fmt: skip
        records.keep(
            "box-1", {"id": f"hdchunk-{rid}-{n}-0", "kind": "helpdesk.chunk", "body": body}
        )
    request = {"request": rid, "question": "rough idle", "contact": "Jo, 0711 1234", "vin": vin,
               "attachments": atts}  # fmt: skip
    records.keep("box-1", {"id": f"helpdesk-{rid}", "kind": "helpdesk.request", "body": request})


def _fill(tmp_path) -> RecordStore:
    records = RecordStore(tmp_path / "records.sqlite")
    for n, vin in enumerate((VIN, OTHER)):
        entry = {"id": f"{vin}-00001-abc", "vin": vin, "index": 1, "date": "2025-01-02",
                 "mileage_km": 1000, "items": ["engine_oil"], "workshop": "W", "note": ""}  # fmt: skip
        records.keep("box-1", {"id": entry["id"], "kind": "booklet.entry",
                               "body": {"vin": vin, "entry": entry}})  # fmt: skip
        records.keep("box-1", {"id": f"job-{n}", "kind": "job.result",
                               "body": {"vin": vin, "job": {"kind": "coding"}}})  # fmt: skip
    records.keep("box-1", {"id": "ticket-t1-use-1", "kind": "ticket.used",
                           "body": {"ticket": "t1", "job": "coding", "time": 1.0}})  # fmt: skip
    # the VIN only inside the attachments: the request's own field is empty (no car answered)
    bundle = json.dumps({"identification": {"vin": VIN}}).encode()
    _request(
        records, "r-vin", None, {"bundle.json": bundle, "trace-1-car.pcap": _trace(tmp_path, VIN)}
    )
    _request(records, "r-trace-only", None, {"trace-1-car.pcap": _trace(tmp_path, VIN)})
    _request(records, "r-other", OTHER, {"trace-1-car.pcap": _trace(tmp_path, OTHER)})
    return records


def _file_names(path, vin: str) -> bool:
    forms = vin_forms(vin)
    return any(
        any(f in p.read_bytes() for f in forms)
        for p in (path, path.with_name(path.name + "-wal"))
        if p.exists()
    )


def test_a_vehicle_is_exported_and_erased_from_the_records_file(tmp_path, capsys) -> None:
    records = _fill(tmp_path)
    path = tmp_path / "records.sqlite"
    archive = tmp_path / "export.zip"
    assert (
        main(["privacy", "export", "--vin", VIN, "--records", str(path), "-o", str(archive)]) == 0
    )
    with zipfile.ZipFile(archive) as z:
        data = json.loads(z.read("vehicle-data.json"))
        assert "helpdesk/r-trace-only/trace-1-car.pcap" in z.namelist()
    assert sorted(r["id"] for r in data["records"]) == [f"{VIN}-00001-abc", "job-0"]
    # the help-desk requests name it only in their attachments (no car answered the box)
    assert sorted(r["id"] for r in data["helpdesk_requests"]) == ["r-trace-only", "r-vin"]
    assert [e["vin"] for e in data["booklet"]] == [VIN] and OTHER not in json.dumps(data)

    assert (
        main(["privacy", "erase", "--vin", VIN, "--by", "Frau Muster", "--records", str(path)]) == 0
    )
    assert f"erased {VIN}" in capsys.readouterr().out
    records = RecordStore(path)
    assert not _file_names(path, VIN)
    for box, rid, name in records.db.execute(
        "SELECT DISTINCT box, request, attachment FROM helpdesk_chunks"
    ).fetchall():
        kept = tmp_path / "kept.pcap"
        kept.write_bytes(records.helpdesk._data(box, rid, name))
        assert rid == "r-other" and not trace_contains(kept, vin_forms(VIN))
    assert records.booklet.entries(OTHER) and not records.booklet.entries(VIN)
    assert records.ticket_usage("t1")["uses"] == 1  # behind an invoice: kept
    assert [r["id"] for r in records.helpdesk.requests()] == ["r-other"]
    [(hashed, who)] = records.db.execute("SELECT vin_hash, who FROM privacy_erasures").fetchall()
    assert hashed == privacy.vin_hash(records, VIN) and who == "portal:Frau Muster"
