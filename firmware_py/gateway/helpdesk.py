"""Technical Help Desk requests on the box (docs/helpdesk.md): the job (kind
``help_desk_request``) that gathers the bundle and sends it through the outbox, what the box
keeps of its requests, and the portal's answers.

The bundle: the vehicle's identification with software versions, its fault memory with details,
the session log, the battery history, and the pcap traces of this session's vehicle link (and,
from the box's own command line, trace files named). Each attachment goes as chunks of
:data:`CHUNK` bytes, each its own outbox record (the link's messages are at most 64 KiB), then the
request itself naming every attachment's size and SHA-256. All of it, the box's row of the
request and the ticket's held use are written in one transaction: the request is sent whole or
not at all, resumes after an outage or a power cut where the portal's acknowledgements stopped,
and the ``help_desk_request`` ticket is consumed when the portal acknowledges the request (it
does once every chunk arrived and its SHA-256 agrees), never on a failed send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError, VciError
from firmware_py.gateway import battery_log
from firmware_py.gateway.jobs import JobContext
from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.store import Store
from firmware_py.i18n import N_
from firmware_py.uds.fault_memory import read_fault_memory
from firmware_py.uds.identification import identify_vehicle

log = logging.getLogger(__name__)

CHUNK = 32 * 1024
"""bytes of an attachment per outbox record (base64 in a message of at most 64 KiB)"""
MAX_ATTACHMENTS = 64 * 1024 * 1024
"""bytes a request may carry in all (the box's state disk holds it until it is delivered)"""
REQUEST_PREFIX, CHUNK_PREFIX = "helpdesk-", "hdchunk-"
WAITING, DELIVERED, ANSWERED = "waiting for the portal", "delivered", "answered"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS helpdesk (
        id TEXT PRIMARY KEY, created REAL NOT NULL, question TEXT NOT NULL, contact TEXT NOT NULL,
        vin TEXT, ticket TEXT, state TEXT NOT NULL, attachments TEXT NOT NULL,
        answer TEXT, answered_at REAL)""",
)


def _store(ctx: JobContext) -> Store:
    store = getattr(ctx.entitlements, "store", None) or ctx.services.get("store")
    if store is None:
        raise ConfigError(N_("this gateway keeps no state: a help-desk request cannot be kept"))
    return store  # type: ignore[no-any-return]


def link_traces(vehicle: Any) -> list[Path]:
    """The pcap of this session's vehicle link, if it is traced."""
    pcap = getattr(getattr(getattr(vehicle, "link", None), "trace", None), "pcap", None)
    path = getattr(pcap, "path", None)
    return [Path(path)] if path is not None and Path(path).is_file() else []


def _safely(what: str, read: Any) -> Any:
    """A part of the bundle the car would not give is there as its error, not a failed request."""
    try:
        return read()
    except VciError as err:
        log.info("help-desk bundle without %s: %s", what, err)
        return {"error": err.to_dict()}


def help_desk_request(vehicle: Any, ctx: JobContext) -> dict[str, Any]:
    store = _store(ctx)
    ctx.step("identify vehicle")
    ident = _safely("identification", lambda: identify_vehicle(vehicle).to_dict())
    ctx.step("read fault memory")
    faults = _safely(
        "fault memory",
        lambda: [r.to_dict() for r in read_fault_memory(vehicle, None, details=True)],
    )
    session_log = ctx.services.get("session_log")
    bundle = {
        "identification": ident,
        "fault_memory": faults,
        "session_log": session_log() if callable(session_log) else [],
        "battery_history": battery_log.history(store),
    }
    files = [*link_traces(vehicle), *(Path(t) for t in ctx.params.get("traces") or [])]
    for path in files:
        if not path.is_file():
            raise ConfigError(
                N_("no trace file {path}"),
                values={"path": path},
                hint=N_("Name a pcap file on the box"),
            )
    total = sum(p.stat().st_size for p in files)
    if total > MAX_ATTACHMENTS:
        raise ConfigError(
            N_("the traces have {value} KiB; a request carries {value2} KiB"),
            values={"value": total // 1024, "value2": MAX_ATTACHMENTS // 1024},
            hint=N_("Send fewer or shorter traces"),
        )
    vin = ident.get("vin") if isinstance(ident, dict) else None
    rid = uuid.uuid4().hex[:16]
    ctx.step("send to the help desk", attachments=len(files) + 1)
    attachments: list[dict[str, Any]] = []
    store.ensure_schema("helpdesk", SCHEMA)
    with store.transaction() as db:
        _attach(db, rid, "bundle.json", json.dumps(bundle, default=str).encode(), attachments)
        for n, path in enumerate(files):
            name = f"trace-{n + 1}-{path.name}"[:120]
            _attach(db, rid, name, path.read_bytes(), attachments)
        request = {
            "request": rid,
            "question": str(ctx.params["question"]),
            "contact": str(ctx.params["contact"]),
            "vin": vin,
            "created": time.time(),
            "who": f"{ctx.job.caller.origin}:{ctx.job.caller.who}",
            "attachments": attachments,
        }
        db.execute(
            "INSERT INTO helpdesk(id, created, question, contact, vin, ticket, state, attachments)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                rid,
                request["created"],
                request["question"],
                request["contact"],
                vin,
                getattr(ctx.decision, "ticket_id", None),
                WAITING,
                json.dumps(attachments),
            ),
        )
        Outbox.insert(db, "helpdesk.request", request, REQUEST_PREFIX + rid)
        reserve = getattr(ctx.entitlements, "reserve", None)  # Entitlements; None: no checks
        if reserve is not None and ctx.decision is not None:
            reserve(db, ctx.decision, REQUEST_PREFIX + rid)
    return {
        "request": rid,
        "state": WAITING,
        "ticket": getattr(ctx.decision, "ticket_id", None),
        "attachments": attachments,
    }


def _attach(
    db: sqlite3.Connection, rid: str, name: str, data: bytes, attachments: list[dict[str, Any]]
) -> None:
    count = max(1, -(-len(data) // CHUNK))
    for index in range(count):
        body = {
            "request": rid,
            "attachment": name,
            "index": index,
            "count": count,
            "data": base64.b64encode(data[index * CHUNK : (index + 1) * CHUNK]).decode(),
        }
        Outbox.insert(db, "helpdesk.chunk", body, f"{CHUNK_PREFIX}{rid}-{len(attachments)}-{index}")
    attachments.append(
        {
            "name": name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "chunks": count,
        }
    )


# -- what the box keeps of its requests -----------------------------------------------------------
def delivered(db: sqlite3.Connection, record_id: str, entitlements: Any) -> bool:
    """The portal acknowledged a record (inside the acknowledgement's transaction): for a
    help-desk request, consume its ticket's held use and mark it delivered."""
    if not record_id.startswith(REQUEST_PREFIX):
        return False
    if entitlements is not None:
        entitlements.deliver(db, record_id)
    db.execute(
        "UPDATE helpdesk SET state = ? WHERE id = ? AND state = ?",
        (DELIVERED, record_id.removeprefix(REQUEST_PREFIX), WAITING),
    )
    return True


def answered(store: Store, body: dict[str, Any], now: float) -> dict[str, Any] | None:
    """The portal's answer to a request of this box (a ``helpdesk.answer`` message); kept once
    (a message delivered twice changes nothing). Returns the request, or None if unknown."""
    store.ensure_schema("helpdesk", SCHEMA)
    rid, text = str(body.get("request", ""))[:64], str(body.get("answer", ""))[:20000]
    with store.transaction() as db:
        db.execute(
            "UPDATE helpdesk SET state = ?, answer = ?, answered_at = ? WHERE id = ? AND answer IS NULL",
            (ANSWERED, text, now, rid),
        )
    found = [r for r in requests(store) if r["id"] == rid]
    return found[0] if found else None


def requests(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """This box's help-desk requests, newest first, with their state and answer."""
    store.ensure_schema("helpdesk", SCHEMA)
    rows = (
        store.connection()
        .execute("SELECT * FROM helpdesk ORDER BY created DESC LIMIT ?", (limit,))
        .fetchall()
    )
    return [{**dict(r), "attachments": json.loads(r["attachments"])} for r in rows]
