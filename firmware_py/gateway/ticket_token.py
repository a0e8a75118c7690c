"""The ticket token: what the portal signs and the box verifies offline.

Format (docs/tickets.md): ``vt1.<payload>.<signature>``, both parts base64url without padding;
the payload is UTF-8 JSON; the signature is Ed25519 over the ASCII bytes ``vt1.<payload>`` (the
same signing input shape as a JWS). Revocation lists use the prefix ``vr1``, time beacons ``vb1``.

Parsing is strict and bounded: the length is checked before anything is decoded, every field is
checked for presence and type, unknown fields are refused. Every failure is a
:class:`TicketError` whose ``reason`` names it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py import strict_json
from firmware_py.errors import TicketError
from firmware_py.gateway.tariffs import TARIFFS, Scope
from firmware_py.i18n import N_, Text

MAX_TOKEN = 4096
TICKET_PREFIX, REVOCATION_PREFIX, TIME_PREFIX = "vt1", "vr1", "vb1"
_WHAT = {
    TICKET_PREFIX: N_("ticket"),
    REVOCATION_PREFIX: N_("revocation list"),
    TIME_PREFIX: N_("time beacon"),
}


class TicketRefused(TicketError):
    def __init__(self, reason: str, message: str, hint: str | None = None, **texts: Any) -> None:
        super().__init__(message, hint=hint, **texts)  # values, hint_values as VciError takes them
        self.reason = reason

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "reason": self.reason}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(
        c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text
    ):
        raise TicketRefused(
            "malformed", N_("the ticket is not valid base64url"), N_("Copy the whole ticket again")
        )
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise TicketRefused(
            "malformed", N_("the ticket is not valid base64url"), N_("Copy the whole ticket again")
        ) from err


def sign(prefix: str, payload: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    body = _b64(
        json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    )
    signing_input = f"{prefix}.{body}".encode("ascii")
    return f"{prefix}.{body}.{_b64(key.sign(signing_input))}"


def verify(
    prefix: str, token: str, keys: Mapping[str, Ed25519PublicKey], *, max_len: int = MAX_TOKEN
) -> dict[str, Any]:
    """Check the shape and the signature; returns the payload (fields not yet checked).
    ``max_len``: characters of the token (a statement that carries data, e.g. emission limit
    values, is longer than a ticket)."""
    if not isinstance(token, str) or len(token) > max_len:
        raise TicketRefused(
            "malformed",
            N_("the {value} is too long (at most {max_len} characters)"),
            values={"value": Text(_WHAT.get(prefix, N_("statement"))), "max_len": max_len},
        )
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != prefix:
        raise TicketRefused(
            "malformed",
            N_("this is not a {value} of this portal"),
            values={"value": Text(_WHAT.get(prefix, N_("statement")))},
            hint=N_("Copy the whole ticket again"),
        )
    body, signature = _unb64(parts[1]), _unb64(parts[2])
    try:  # no NaN/Infinity, no duplicate keys, bounded depth: nothing unchecked reaches a clock
        payload = strict_json.loads(body, max_bytes=max_len)
    except strict_json.StrictJsonError as err:
        raise TicketRefused(
            "malformed", N_("the ticket's content is not valid JSON: {err}"), values={"err": err}
        ) from err
    if not isinstance(payload, dict):
        raise TicketRefused("malformed", N_("the ticket's content is not a JSON object"))
    kid = payload.get("kid")
    if not isinstance(kid, str):
        raise TicketRefused("malformed", N_("the ticket names no signing key (kid)"))
    key = keys.get(kid)
    if key is None:
        raise TicketRefused(
            "unknown_key",
            N_("the ticket is signed with key {kid}, which this box does not trust"),
            values={"kid": repr(kid)},
            hint=N_("Update the box's portal keys, or ask the portal for a new ticket"),
        )
    try:
        key.verify(signature, f"{prefix}.{parts[1]}".encode("ascii"))
    except InvalidSignature as err:
        raise TicketRefused(
            "forged",
            N_("the ticket's signature is not valid: it was changed or not issued by the portal"),
        ) from err
    return payload


FIELDS: dict[str, type | tuple[type, ...]] = {
    "v": int,
    "tid": str,
    "tariff": str,
    "scopes": list,
    "device": str,
    "vin": (str, type(None)),
    "iat": int,
    "nbf": (int, type(None)),
    "exp": (int, type(None)),
    "duration": (int, type(None)),
    "uses": (int, type(None)),
    "kid": str,
}


MAX_TIME = 2**40  # seconds since 1970 (year 36812): any time field beyond is not a time
#: fields that are counts or times, with their allowed range (checked after the type)
RANGES: dict[str, tuple[int, int]] = {
    "v": (0, 2**31),
    "iat": (0, MAX_TIME),
    "nbf": (0, MAX_TIME),
    "exp": (0, MAX_TIME),
    "duration": (1, MAX_TIME),
    "uses": (1, 2**31),
}


@dataclass(frozen=True)
class Ticket:
    tid: str
    tariff: str
    scopes: frozenset[Scope]
    device: str
    vin: str | None
    iat: int
    nbf: int | None
    exp: int | None
    duration: int | None
    uses: int | None
    kid: str
    token: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any], token: str) -> Ticket:
        missing = [f for f in FIELDS if f not in payload]
        if missing:
            raise TicketRefused(
                "malformed", N_("the ticket lacks {value}"), values={"value": ", ".join(missing)}
            )
        extra = sorted(set(payload) - set(FIELDS))
        if extra:
            raise TicketRefused(
                "malformed",
                N_("the ticket has unknown fields: {value}"),
                values={"value": ", ".join(extra)},
            )
        for name, kind in FIELDS.items():
            value = payload[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TicketRefused(
                    "malformed",
                    N_("the ticket's field {name} has the wrong type"),
                    values={"name": repr(name)},
                )
            low, high = RANGES.get(name, (0, 0))
            if isinstance(value, int) and name in RANGES and not low <= value <= high:
                raise TicketRefused(
                    "malformed",
                    N_("the ticket's field {name} is out of range ({low}..{high})"),
                    values={"name": repr(name), "low": low, "high": high},
                )
        if payload["v"] != 1:
            raise TicketRefused(
                "malformed",
                N_("ticket format version {v} is not supported"),
                values={"v": payload["v"]},
                hint=N_("Update the box"),
            )
        if payload["tariff"] not in TARIFFS:
            raise TicketRefused(
                "malformed",
                N_("unknown tariff {tariff}"),
                values={"tariff": repr(payload["tariff"])},
                hint=N_("Update the box"),
            )
        try:
            scopes = frozenset(Scope(s) for s in payload["scopes"])
        except ValueError as err:
            raise TicketRefused(
                "malformed", N_("the ticket names an unknown scope: {err}"), values={"err": err}
            ) from err
        timed = payload["exp"] is not None or payload["duration"] is not None
        if not timed and payload["uses"] is None:
            raise TicketRefused(
                "malformed", N_("the ticket has neither an end, a duration nor a number of uses")
            )
        if not 1 <= len(payload["tid"]) <= 64 or not 1 <= len(payload["device"]) <= 64:
            raise TicketRefused("malformed", N_("the ticket's id or device is empty or too long"))
        if payload["vin"] is not None and not 1 <= len(payload["vin"]) <= 32:
            raise TicketRefused("malformed", N_("the ticket's vin is empty or too long"))
        if not all(isinstance(s, str) for s in payload["scopes"]):
            raise TicketRefused("malformed", N_("the ticket's scopes are not all text"))
        return cls(
            tid=payload["tid"],
            tariff=payload["tariff"],
            scopes=scopes,
            device=payload["device"],
            vin=payload["vin"],
            iat=payload["iat"],
            nbf=payload["nbf"],
            exp=payload["exp"],
            duration=payload["duration"],
            uses=payload["uses"],
            kid=payload["kid"],
            token=token,
        )


def parse_ticket(token: str, keys: Mapping[str, Ed25519PublicKey]) -> Ticket:
    return Ticket.from_payload(verify(TICKET_PREFIX, token, keys), token.strip())


@dataclass(frozen=True)
class Revocations:
    seq: int
    revoked: frozenset[str]
    iat: int
    """when the portal signed the list: trusted time (``TrustedClock.observe_signed_time``)"""


def parse_revocations(token: str, keys: Mapping[str, Ed25519PublicKey]) -> Revocations:
    payload = verify(REVOCATION_PREFIX, token, keys)
    seq, revoked, iat = payload.get("seq"), payload.get("revoked"), payload.get("iat")
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or not 0 <= seq <= 2**62
        or not isinstance(iat, int)
        or isinstance(iat, bool)
        or not 0 <= iat <= MAX_TIME
        or not isinstance(revoked, list)
        or not all(isinstance(t, str) and 1 <= len(t) <= 64 for t in revoked)
    ):
        raise TicketRefused("malformed", N_("the revocation list is malformed"))
    return Revocations(seq, frozenset(revoked), iat)


def parse_time_beacon(token: str, keys: Mapping[str, Ed25519PublicKey], device: str) -> int:
    """A time beacon: the portal's signed statement of its time for one box
    (``vb1.<{"time", "device", "kid"}>.<signature>``); returns the time."""
    payload = verify(TIME_PREFIX, token, keys)
    t = payload.get("time")
    if (
        set(payload) != {"time", "device", "kid"}
        or not isinstance(t, int)
        or isinstance(t, bool)
        or not 0 <= t <= MAX_TIME
    ):
        raise TicketRefused("malformed", N_("the time beacon is malformed"))
    if payload.get("device") != device:
        raise TicketRefused("other_device", N_("the time beacon is for another box"))
    return t
