"""One vehicle's data on the box, on its owner's request (GDPR Art. 15 and 20: a copy; Art. 17:
erasure; docs/data-protection.md): everything the box keeps that names a VIN, found, exported
as one machine-readable record, or erased, with the erasure itself recorded by a keyed hash of
the VIN (when, who, how much), never the VIN.

What names a VIN is found by its forms, not by a column alone: the VIN as text (a ``vin``
column, JSON of results and reports, a booklet entry's id), as hex (a raw UDS answer
``62 F1 90 ...`` kept as a hex string), as base64 (a help-desk attachment's chunks, a VIN-bound
ticket's payload), and in traces as the car sent it (``firmware_py.transport.trace_search``
reads through ISO-TP framing and TCP segments). After an erasure the whole state directory
(every table, every file, the SQLite files themselves after ``VACUUM``) is searched again and
what still names the VIN is reported.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError, PreconditionError
from firmware_py.gateway import info_cache
from firmware_py.gateway.helpdesk import CHUNK_PREFIX, REQUEST_PREFIX
from firmware_py.gateway.store import Store
from firmware_py.i18n import N_
from firmware_py.transport.trace_search import READ_SIZE, trace_contains

TRACES_DIR, REPORTS_DIR = "traces", "reports"
KEY_FILE = "privacy-key"
"""the box's own key of the VIN hashes in erasure records (in the state directory's identity/)"""
VIN_PATTERN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
"""ISO 3779: 17 characters, digits and capital letters without I, O and Q"""

#: tables whose rows naming the VIN are the vehicle's data (exported, erased)
VIN_TABLES = ("job_log", "outbox", "helpdesk", "coding_backups", "booklet_queued", "tickets")
#: of the programming journal only rows that ended: a resumable one stays (the car needs it)
FLASH_ENDED = " WHERE state IN ('done', 'refused')"

ERASURES_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS privacy_erasures (
        time REAL NOT NULL, vin_hash TEXT NOT NULL, who TEXT NOT NULL, deleted TEXT NOT NULL)""",
)


def normalise_vin(text: str) -> str:
    vin = str(text).strip().upper()
    if not VIN_PATTERN.fullmatch(vin):
        raise ConfigError(
            N_("{text} is not a VIN"),
            values={"text": repr(text)},
            hint=N_("Give the 17 characters of the vehicle identification number (no I, O or Q)"),
        )
    return vin


def _base64_forms(data: bytes) -> list[bytes]:
    """The base64 text of ``data`` wherever it starts in an encoded stream (3 alignments), only
    the characters that ``data`` alone decides; standard and URL-safe alphabets."""
    forms = []
    for pad in range(3):
        text = base64.b64encode(b"\0" * pad + data)
        first, last = -(-pad * 8 // 6), (pad + len(data)) * 8 // 6
        piece = text[first:last]
        forms += [piece, piece.replace(b"+", b"-").replace(b"/", b"_")]
    return forms


def vin_forms(vin: str) -> tuple[bytes, ...]:
    """Every form in which the box may keep ``vin``: text, hex of it, base64 of it."""
    raw = vin.encode("ascii")
    forms = {raw, raw.lower(), raw.hex().encode(), raw.hex().upper().encode()}
    forms.update(_base64_forms(raw))
    return tuple(sorted(forms))


def _mentions(value: Any, forms: tuple[bytes, ...]) -> bool:
    if isinstance(value, str):
        value = value.encode("utf-8", "replace")
    return isinstance(value, bytes) and any(f in value for f in forms)


def _tables(db: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]


def _rows(
    db: sqlite3.Connection, table: str, forms: tuple[bytes, ...], where: str = ""
) -> list[Any]:
    rows = db.execute(f"SELECT rowid AS _rowid, * FROM {table}{where}").fetchall()  # noqa: S608
    return [r for r in rows if any(_mentions(v, forms) for v in tuple(r)[1:])]


def _file_mentions(path: Path, forms: tuple[bytes, ...]) -> bool:
    if path.suffix == ".pcap":  # the car's bytes, through ISO-TP frames and TCP segments
        return trace_contains(path, forms)
    keep = max(len(f) for f in forms) - 1
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(READ_SIZE):
            joined = tail + chunk
            if any(form in joined for form in forms):
                return True
            tail = joined[-keep:]
    return False


@dataclass
class Found:
    """What the box keeps about one VIN."""

    vin: str
    rows: dict[str, list[Any]] = field(default_factory=dict)
    helpdesk: set[str] = field(default_factory=set)
    """help-desk requests (ids) whose bundle, question or answer names the VIN: erased whole"""
    reports: list[Path] = field(default_factory=list)
    traces: list[Path] = field(default_factory=list)


def find(store: Store, vin: str) -> Found:
    """Everything in ``store`` and its state directory that names ``vin``."""
    vin = normalise_vin(vin)
    forms, found = vin_forms(vin), Found(vin)
    db = store.connection()
    tables = set(_tables(db))
    for table in VIN_TABLES:
        if table in tables:
            found.rows[table] = _rows(db, table, forms)
    if "flash_jobs" in tables:
        found.rows["flash_jobs"] = _rows(db, "flash_jobs", forms, FLASH_ENDED)
    for row in found.rows.get("outbox", []):
        for prefix in (REQUEST_PREFIX, CHUNK_PREFIX):
            if row["id"].startswith(prefix):
                found.helpdesk.add(row["id"].removeprefix(prefix).split("-")[0])
    found.helpdesk.update(str(r["id"]) for r in found.rows.get("helpdesk", []))
    state = store.state_dir
    for folder, pattern, into in (
        (REPORTS_DIR, "*.json", found.reports),
        (TRACES_DIR, "*.pcap", found.traces),
    ):
        for path in sorted((state / folder).glob(pattern)):
            try:
                if _file_mentions(path, forms):
                    into.append(path)
            except OSError:
                continue  # deleted meanwhile (the retention job, the size bound)
    return found


def _row_dict(row: Any) -> dict[str, Any]:
    data = {k: row[k] for k in row.keys() if k != "_rowid"}  # noqa: SIM118 - sqlite3.Row
    for key in ("entry", "body", "attachments", "packages"):
        if isinstance(data.get(key), str):
            try:
                data[key] = json.loads(data[key])
            except ValueError:
                pass
    if "token" in data:  # a ticket: what it says, not the credential itself
        try:
            payload = str(data.pop("token")).split(".")[1]
            data["ticket"] = json.loads(
                base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            )
        except (IndexError, ValueError):
            data["ticket"] = None
    return data


def export(store: Store, vin: str, now: float) -> dict[str, Any]:
    """The vehicle's data as one JSON document; ``traces`` names the trace files that carry it
    (in ``<state dir>/traces``), which an export archive holds beside it."""
    found = find(store, vin)
    reports = []
    for path in found.reports:
        try:
            reports.append({"file": path.name, "report": json.loads(path.read_text("utf-8"))})
        except (OSError, ValueError):
            continue
    return {
        "format": "vci-vehicle-data/1",
        "vin": found.vin,
        "exported": now,
        "records": {table: [_row_dict(r) for r in rows] for table, rows in found.rows.items()},
        "helpdesk_requests": sorted(found.helpdesk),
        "reports": reports,
        "traces": [p.name for p in found.traces],
        "not_here": "The portal keeps its own copy of results, service booklet entries, reports "
        "and help-desk requests sent to it; ask the workshop's portal account for those.",
    }


def vin_hash(state_dir: Path, vin: str) -> str:
    """HMAC-SHA256 of the VIN under the box's own key (made once, mode 0600): the same VIN gives
    the same hash on this box, and a list of VINs cannot be tried against it elsewhere."""
    path = state_dir / "identity" / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    key = path.read_bytes()
    return "hmac-sha256:" + hmac.new(key, vin.encode("ascii"), hashlib.sha256).hexdigest()


def erase(
    store: Store, vin: str, who: str, now: float, cache: info_cache.InfoCache | None = None
) -> dict[str, Any]:
    """Delete everything that names ``vin``, record the erasure (keyed hash, who, counts), compact
    the database so no deleted row lingers in free pages or the write-ahead log, and search the
    whole state directory again: ``remaining`` lists what still names the VIN (empty: none)."""
    found = find(store, vin)
    deleted = {table: len(rows) for table, rows in found.rows.items()}
    # the portal's repair information for the car: the running gateway's cache, or its file
    path = store.state_dir / info_cache.FILE
    if cache is None and path.exists():
        cache = info_cache.InfoCache(path, 0)  # only forgetting: its size bound does not matter
    if cache is not None:
        deleted["info_cache"] = cache.forget(found.vin)
    db = store.connection()
    db.execute("PRAGMA secure_delete = ON")
    db.execute("PRAGMA temp_store = MEMORY")  # VACUUM's copy stays out of /var/tmp
    hashed = vin_hash(store.state_dir, found.vin)
    store.ensure_schema("privacy_erasures", ERASURES_SCHEMA)
    tables = set(_tables(db))
    with store.transaction() as tx:
        for table, rows in found.rows.items():
            tx.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(r["_rowid"],) for r in rows])  # noqa: S608
        for rid in found.helpdesk:  # the whole request: its chunks, its row, its held ticket use
            deleted["outbox"] = (
                deleted.get("outbox", 0)
                + tx.execute(
                    "DELETE FROM outbox WHERE id = ? OR id LIKE ?",
                    (REQUEST_PREFIX + rid, f"{CHUNK_PREFIX}{rid}-%"),
                ).rowcount
            )
            if "helpdesk" in tables:
                tx.execute("DELETE FROM helpdesk WHERE id = ?", (rid,))
            if "ticket_reservations" in tables:
                tx.execute("DELETE FROM ticket_reservations WHERE ref = ?", (REQUEST_PREFIX + rid,))
        deleted.update(reports=len(found.reports), traces=len(found.traces))
        tx.execute(
            "INSERT INTO privacy_erasures VALUES (?,?,?,?)",
            (now, hashed, who, json.dumps(deleted, sort_keys=True)),
        )
    remaining: list[str] = []
    for path in (*found.reports, *found.traces):
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            remaining.append(f"{path}: not deleted ({err})")
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    remaining += still_named(store, found.vin)
    return {"vin_hash": hashed, "deleted": deleted, "remaining": remaining}


def still_named(store: Store, vin: str) -> list[str]:
    """Every table and every file under the state directory that still names ``vin`` (in any
    of its forms), the SQLite files themselves included."""
    forms = vin_forms(vin)
    db = store.connection()
    left = [f"table {t}" for t in _tables(db) if _rows(db, t, forms)]
    for path in sorted(store.state_dir.rglob("*")):
        try:
            if path.is_file() and not path.is_symlink() and _file_mentions(path, forms):
                left.append(str(path.relative_to(store.state_dir)))
        except OSError:
            continue
    return left


def erasures(store: Store) -> list[dict[str, Any]]:
    """The erasures done on this box, newest first."""
    store.ensure_schema("privacy_erasures", ERASURES_SCHEMA)
    rows = store.connection().execute("SELECT * FROM privacy_erasures ORDER BY time DESC")
    return [{**dict(r), "deleted": json.loads(r["deleted"])} for r in rows]


async def erase_in_gateway(gateway: Any, vin: str, who: str) -> dict[str, Any]:
    """:func:`erase` in the running gateway, refused while a job runs or while that car is
    connected (what they write would name it again); the finished jobs it holds in memory that
    name the VIN (the tablet's list, the session log) are forgotten too."""
    import asyncio

    vin = normalise_vin(vin)
    if gateway.runner.active():
        raise PreconditionError(
            N_("jobs are running; the vehicle's data is erased only when none runs"),
            hint=N_("Wait until they end (or cancel them), then erase again"),
        )
    if gateway.worker.vin == vin:
        raise PreconditionError(
            N_("the box is connected to {vin} now"),
            values={"vin": vin},
            hint=N_("Unplug the box from that car (its link closes), then erase again"),
        )
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        None, erase, gateway.store, vin, who, gateway.now(), gateway.info_cache
    )
    forms = vin_forms(vin)
    for jid, job in list(gateway.runner.jobs.items()):
        text = json.dumps(job.to_dict(), default=str).encode()
        if job.state.value not in ("queued", "running") and any(f in text for f in forms):
            gateway.runner.jobs.pop(jid, None)
    return result
