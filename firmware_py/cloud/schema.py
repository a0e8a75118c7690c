"""The remote protocol's messages (docs/remote-protocol.md): one versioned JSON envelope for
every message between the box and the portal, whatever carries it (MQTT 5 or a WebSocket).

Pure: bytes in, a validated :class:`Message` out, and back. Decoding is strict and bounded; every
refusal is a :class:`ProtocolError` that names what is wrong, and nothing else is raised.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from firmware_py import strict_json
from firmware_py.errors import VciError

VERSION = 1
MAX_MESSAGE = 64 * 1024
TYPES = {
    # portal -> box
    "job.request": "run a job (kind, ecu, params) under the ticket given",
    "job.cancel": "ask a running job to stop at a safe point",
    "uds.request": "one raw UDS request, executed by the box with its own timing",
    "outbox.ack": "records the portal has stored (by id)",
    "time.beacon": "the portal's time, signed with its ticket key for this box (body: beacon)",
    "update.offer": "a software update for this box, signed with the portal's ticket key (body: offer)",
    "emission_limits.publish": "exhaust limit values, signed with the portal's ticket key for this "
    "box (body: limits)",
    "map.offer": "a navigation map update the box keeps for a car until it is installed: the "
    "portal's signed manifest and activation code (body: manifest, activation)",
    "package.offer": "a flash package of the portal's store for this box to download into its "
    "package store, signed with the portal's ticket key (body: offer)",
    "trace.read": "a piece of the box's newest vehicle-link trace, or of the one named (body: "
    "name, offset)",
    "helpdesk.answer": "the help desk's answer to a request of this box (body: request, answer, who)",
    "info.piece": "a piece of one car's repair information for the box's cache (body: vin, "
    "content_version, index, count, data: a part of the subset's JSON text)",
    "ticket.deliver": "a bought ticket for the box to add (body: delivery, ticket)",
    "ticket.revoke": "the portal's signed revocation list to apply (body: delivery, revocations)",
    # box -> portal
    "job.accepted": "the job passed the ticket and precondition checks",
    "job.denied": "refused, with the reason and the tariffs that would allow it",
    "job.event": "progress of a job (step, percent, rate, time left)",
    "job.result": "the end of a job (done or failed)",
    "uds.response": "the answer to a raw UDS request",
    "ticket.ack": "a delivered ticket or revocation list stored (ok) or refused with the reason",
    "outbox.record": "a record the portal must keep (job result, service booklet entry, session "
    "log, help-desk request and its attachments' chunks)",
    "map.offered": "the map offer the box keeps (body: offer, map, bytes, vin)",
    "package.stored": "the offered package downloaded, verified and kept (body: package, sha256, "
    "ecu, version, size)",
    "trace.chunk": "a piece of a trace (body: name, size, offset, data as base64)",
    "info.stored": "a piece of repair information taken (body: vin, content_version, index, "
    "count, complete, evicted)",
    "emission_limits.stored": "the limit values the box now keeps (body: source, version, type_codes)",
    "error": "a request that could not be taken, with the reason",
}
REQUESTS = frozenset({"job.request", "job.cancel", "uds.request"})


class ProtocolError(VciError):
    code = "protocol_error"


@dataclass(frozen=True)
class Message:
    type: str
    body: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """unique per message; receivers drop a message whose id they have seen (at-least-once delivery)"""
    corr: str | None = None
    """the request's id in every answer and event that belongs to it"""
    ticket: str | None = None
    """a ticket for the box to add before it checks the request (requests only; optional)"""
    time: float | None = None
    """the sender's clock, for logs only: an unsigned field never moves the box's trusted time
    (that takes a ``time.beacon``)"""

    def encode(self) -> bytes:
        out = {"v": VERSION, "type": self.type, "id": self.id, "corr": self.corr, "body": self.body}
        if self.ticket is not None:
            out["ticket"] = self.ticket
        if self.time is not None:
            out["time"] = self.time
        try:
            text = json.dumps(out, separators=(",", ":"), default=str, allow_nan=False)
        except ValueError:  # a NaN in a result (a sensor value) goes as null: receivers refuse NaN
            text = json.dumps(_finite(out), separators=(",", ":"), default=str)
        data = text.encode()
        if len(data) > MAX_MESSAGE:
            raise ProtocolError(f"message of {len(data)} bytes is larger than {MAX_MESSAGE}")
        return data

    def answer(self, type_: str, body: dict[str, Any]) -> Message:
        return Message(type_, body, corr=self.id)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def decode(data: bytes) -> Message:
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is larger than {MAX_MESSAGE}")
    try:  # no NaN/Infinity, no duplicate keys, bounded depth (firmware_py.strict_json)
        raw = strict_json.loads(data, max_bytes=MAX_MESSAGE)
    except strict_json.StrictJsonError as err:
        raise ProtocolError(f"message is not UTF-8 JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ProtocolError("message is not a JSON object")
    if raw.get("v") != VERSION:
        raise ProtocolError(
            f"message version {str(raw.get('v'))[:20]} is not supported (this box speaks {VERSION})"
        )
    extra = set(raw) - {"v", "type", "id", "corr", "body", "ticket", "time"}
    if extra:
        raise ProtocolError(f"message has unknown fields: {', '.join(sorted(extra))}")
    kind, mid, corr, body = raw.get("type"), raw.get("id"), raw.get("corr"), raw.get("body")
    if not isinstance(kind, str) or kind not in TYPES:
        raise ProtocolError(f"unknown message type {str(kind)[:40]!r}")
    if not isinstance(mid, str) or not 8 <= len(mid) <= 64:
        raise ProtocolError("message id missing or not 8-64 characters")
    if corr is not None and (not isinstance(corr, str) or len(corr) > 64):
        raise ProtocolError("correlation id is not text of at most 64 characters")
    if not isinstance(body, dict):
        raise ProtocolError("message body is not an object")
    ticket = raw.get("ticket")  # optional: without one a job runs under the tickets the box holds
    if ticket is not None and not isinstance(ticket, str):
        raise ProtocolError("ticket is not text")
    t = None
    if raw.get("time") is not None:
        try:
            t = strict_json.number(raw, "time", low=0, high=2.0**40)
        except strict_json.StrictJsonError as err:
            raise ProtocolError(f"time is not a time: {err}") from err
    return Message(kind, body, mid, corr, ticket, t)
