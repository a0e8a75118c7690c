"""One vehicle's data in the portal's records file (portal/records.py) on its owner's request
(docs/data-protection.md): what names the VIN is found in the boxes' records (job results, remote
session logs, booklet entries as received), the service booklet, and the help-desk requests with
their attachments (a bundle names the VIN as text, a trace as the car sent it: read through its
framing like the box does, firmware_py/transport/trace_search.py); exported as one archive, or
erased and the erasure recorded by a keyed hash of the VIN. Ticket use (``ticket.*`` records,
behind the invoices) names no VIN and is never touched; purchases and invoices, which may name
one, are in the portal's database and kept for 10 years (§147 AO, §14b UStG).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_py.gateway.helpdesk import CHUNK_PREFIX, REQUEST_PREFIX
from firmware_py.gateway.privacy import normalise_vin, vin_forms
from firmware_py.transport.trace_search import trace_contains
from portal.records import RecordStore

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS privacy_erasures (
        time REAL NOT NULL, vin_hash TEXT NOT NULL, who TEXT NOT NULL, deleted TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS privacy_key (id INTEGER PRIMARY KEY CHECK (id = 1), key BLOB)",
)


def _names(value: Any, forms: tuple[bytes, ...]) -> bool:
    if isinstance(value, str):
        value = value.encode("utf-8", "replace")
    return isinstance(value, bytes) and any(f in value for f in forms)


def _attachment_names(name: str, data: bytes, forms: tuple[bytes, ...]) -> bool:
    if _names(data, forms):
        return True
    if not name.endswith(".pcap"):
        return False
    with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
        f.write(data)
        f.flush()
        return trace_contains(Path(f.name), forms)


@dataclass
class Found:
    vin: str
    records: list[dict[str, Any]] = field(default_factory=list)
    booklet: list[dict[str, Any]] = field(default_factory=list)
    helpdesk: list[tuple[str, str]] = field(default_factory=list)
    """(box, request id) of the help-desk requests that name the VIN"""


def find(records: RecordStore, vin: str) -> Found:
    vin = normalise_vin(vin)
    forms, db, found = vin_forms(vin), records.db, Found(vin)
    cols = ("id", "box", "kind", "body", "received")
    for row in db.execute("SELECT id, box, kind, body, received FROM records"):
        if not str(row[2]).startswith("ticket.") and any(_names(v, forms) for v in row):
            found.records.append(dict(zip(cols, row, strict=True)))
    cur = db.execute("SELECT * FROM booklet")
    names = [d[0] for d in cur.description]
    found.booklet = [
        dict(zip(names, r, strict=True)) for r in cur if any(_names(v, forms) for v in r)
    ]
    for row in db.execute("SELECT * FROM helpdesk_requests"):
        if any(_names(v, forms) for v in row):
            found.helpdesk.append((row[0], row[1]))
    for box, rid, name in db.execute(
        "SELECT DISTINCT box, request, attachment FROM helpdesk_chunks"
    ).fetchall():
        if (box, rid) not in found.helpdesk:
            data = records.helpdesk._data(box, rid, name)  # noqa: SLF001 - its joined chunks
            if _attachment_names(name, data, forms):
                found.helpdesk.append((box, rid))
    return found


def export(records: RecordStore, vin: str, now: float) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(the vehicle's records as one JSON document, its help-desk attachments by archive name)."""
    found = find(records, vin)
    files: dict[str, bytes] = {}
    requests = []
    for box, rid in found.helpdesk:
        row = records.db.execute(
            "SELECT question, contact, vin, body, answer, answered_at, answered_by, received"
            " FROM helpdesk_requests WHERE box = ? AND id = ?",
            (box, rid),
        ).fetchone()
        if row is not None:
            keys = ("question", "contact", "vin", "body", "answer", "answered_at",
                    "answered_by", "received")  # fmt: skip
            requests.append({"box": box, "id": rid, **dict(zip(keys, row, strict=True))})
        for (name,) in records.db.execute(
            "SELECT DISTINCT attachment FROM helpdesk_chunks WHERE box = ? AND request = ?",
            (box, rid),
        ).fetchall():
            files[f"helpdesk/{rid}/{Path(name).name}"] = records.helpdesk._data(box, rid, name)  # noqa: SLF001
    data = {
        "format": "vci-portal-vehicle-data/1",
        "vin": found.vin,
        "exported": now,
        "records": found.records,
        "booklet": found.booklet,
        "helpdesk_requests": requests,
        "not_here": "Purchases and invoices that name the VIN are kept for 10 years "
        "(§147 AO, §14b UStG); the box keeps its own data (vci privacy export on the box).",
    }
    return data, files


def vin_hash(records: RecordStore, vin: str) -> str:
    for statement in SCHEMA:
        records.db.execute(statement)
    records.db.execute(
        "INSERT OR IGNORE INTO privacy_key VALUES (1, ?)", (secrets.token_bytes(32),)
    )
    key = records.db.execute("SELECT key FROM privacy_key WHERE id = 1").fetchone()[0]
    return "hmac-sha256:" + hmac.new(key, vin.encode("ascii"), hashlib.sha256).hexdigest()


def erase(records: RecordStore, vin: str, who: str, now: float) -> dict[str, Any]:
    """Delete what names ``vin`` (not ticket use, not invoices), record the erasure, compact the
    file; ``remaining`` lists what still names the VIN (empty: none)."""
    found = find(records, vin)
    hashed = vin_hash(records, found.vin)
    db = records.db
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA temp_store = MEMORY")
    deleted = {"records": 0, "booklet": 0, "helpdesk_requests": len(found.helpdesk)}
    db.execute("BEGIN IMMEDIATE")
    try:
        for r in found.records:
            deleted["records"] += db.execute(
                "DELETE FROM records WHERE box = ? AND id = ?", (r["box"], r["id"])
            ).rowcount
        for e in found.booklet:
            deleted["booklet"] += db.execute(
                "DELETE FROM booklet WHERE vin = ? AND id = ?", (e["vin"], e["id"])
            ).rowcount
        for box, rid in found.helpdesk:
            db.execute("DELETE FROM helpdesk_requests WHERE box = ? AND id = ?", (box, rid))
            db.execute("DELETE FROM helpdesk_chunks WHERE box = ? AND request = ?", (box, rid))
            deleted["records"] += db.execute(
                "DELETE FROM records WHERE box = ? AND (id = ? OR id LIKE ?)",
                (box, REQUEST_PREFIX + rid, f"{CHUNK_PREFIX}{rid}-%"),
            ).rowcount
        db.execute(
            "INSERT INTO privacy_erasures VALUES (?,?,?,?)",
            (now, hashed, who, json.dumps(deleted, sort_keys=True)),
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    left = find(records, found.vin)
    remaining = [
        f"{len(v)} {k}" for k, v in (("records", left.records), ("booklet", left.booklet),
                                     ("helpdesk requests", left.helpdesk)) if v
    ]  # fmt: skip
    path = Path(db.execute("PRAGMA database_list").fetchone()[2])
    forms = vin_forms(found.vin)
    for f in (path, path.with_name(path.name + "-wal")):
        if f.exists() and _names(f.read_bytes(), forms):
            remaining.append(f"file {f.name}")
    return {"vin_hash": hashed, "deleted": deleted, "remaining": remaining}
