"""Issuing tickets and revocation lists (the portal side of firmware_py.gateway.ticket_token)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_py.gateway.tariffs import TARIFFS
from firmware_py.gateway.ticket_token import REVOCATION_PREFIX, TICKET_PREFIX, TIME_PREFIX, sign

ACTIVATION_WINDOW = 365 * 86400  # a ticket counted from activation must be activated within a year


def issue(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    tariff: str,
    device: str,
    vin: str | None = None,
    now: float | None = None,
    not_before: int | None = None,
    not_after: int | None = None,
) -> str:
    """A signed ticket. By default its validity is the tariff's duration counted from activation
    on the box; ``not_before``/``not_after`` give a fixed window instead."""
    if tariff not in TARIFFS:
        raise ValueError(f"unknown tariff {tariff!r}; one of {', '.join(TARIFFS)}")
    t = TARIFFS[tariff]
    iat = int(now if now is not None else time.time())
    fixed = not_after is not None
    payload = {
        "v": 1,
        "tid": "T-" + secrets.token_hex(6).upper(),
        "tariff": t.id,
        "scopes": sorted(s.value for s in t.scopes),
        "device": device,
        "vin": vin,
        "iat": iat,
        "nbf": not_before,
        "exp": not_after if fixed else (iat + ACTIVATION_WINDOW + (t.duration or 0)),
        "duration": None if fixed else t.duration,
        "uses": t.uses,
        "kid": kid,
    }
    return sign(TICKET_PREFIX, payload, key)


def time_beacon(key: Ed25519PrivateKey, kid: str, device: str, now: float | None = None) -> str:
    """The portal's time signed for one box (a ``time.beacon`` message carries it): the only
    way besides tickets and revocation lists that a box's trusted time moves forward."""
    return sign(
        TIME_PREFIX,
        {"time": int(now if now is not None else time.time()), "device": device, "kid": kid},
        key,
    )


def update_offer(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    device: str,
    bundle: Path,
    url: str,
    version: str,
    compatible: str,
    now: float | None = None,
) -> str:
    """An update bundle offered to one box (an ``update.offer`` message carries it): its size
    and SHA-256 from the file, where the box downloads it, and its version and compatible."""
    from firmware_py.gateway.update_offer import sign_offer

    digest, size = hashlib.sha256(), 0
    with bundle.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return sign_offer(
        key, kid, device=device, version=version, url=url, size=size,
        sha256=digest.hexdigest(), compatible=compatible, now=now,
    )  # fmt: skip


class RevocationList:
    """The portal's list of revoked ticket ids, kept in ``revoked.json`` beside the keys."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "revoked.json"

    def load(self) -> dict[str, object]:
        if self.path.exists():
            return dict(json.loads(self.path.read_text()))
        return {"seq": 0, "revoked": []}

    def revoke(self, tid: str) -> int:
        data = self.load()
        revoked = sorted(set(data["revoked"]) | {tid})  # type: ignore[call-overload]
        data = {"seq": int(data["seq"]) + 1, "revoked": revoked}  # type: ignore[call-overload]
        self.path.write_text(json.dumps(data))
        return int(data["seq"])  # type: ignore[call-overload]

    def export(self, key: Ed25519PrivateKey, kid: str, more: Sequence[str] = ()) -> str:
        """The list signed now. ``more``: the tickets revoked in the portal's database (they
        only ever grow, as the file does): they join the list and their count is added to its
        sequence number, which thus grows with every revocation on either side."""
        data = self.load()
        revoked = sorted(set(data["revoked"]) | set(more))  # type: ignore[call-overload]
        seq = int(data["seq"]) + len(set(more))  # type: ignore[call-overload]
        return sign(
            REVOCATION_PREFIX,
            {"seq": seq, "revoked": revoked, "iat": int(time.time()), "kid": kid},
            key,
        )
