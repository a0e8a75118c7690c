"""Emission limit values the portal publishes to the box (docs/emissions.md): the signed
statement and the box's copy.

The statement is signed for one box with the key that signs the portal's tickets, in the shape
of a ticket and an update offer (``vl1.<payload>.<signature>``, ticket_token.py): the limit
values' TOML text, its version and the box it is for. The box checks the signature with its
portal keys, the text against the schema (:mod:`firmware_py.reports.emission_limits`, the same
validator the portal ran before it signed), refuses a version older than the one it keeps, and
writes ``emission_limits.toml`` into the state directory atomically: the next emissions report
uses it. A refused statement leaves the kept file as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py.errors import ConfigError, TicketError
from firmware_py.gateway.ticket_token import MAX_TIME, sign, verify
from firmware_py.i18n import N_
from firmware_py.reports.emission_limits import (
    LOCAL_LIMITS,
    LimitTable,
    local_limits,
    parse_limits,
    version_key,
)

LIMITS_PREFIX = "vl1"
MAX_STATEMENT = 60 * 1024
"""characters of a signed statement: it goes in one message of the remote protocol (64 KiB)"""
FIELDS = {"device", "kid", "version", "limits", "iat"}


class LimitsRefused(ConfigError):
    code = "emission_limits_refused"


def sign_limits(
    key: Ed25519PrivateKey, kid: str, *, device: str, text: str, now: float | None = None
) -> str:
    """The portal's side: the limit values of ``text`` (checked first) signed for one box."""
    table = parse_limits(text, "the file", published=True)
    payload = {
        "device": device, "kid": kid, "version": table.version, "limits": text,
        "iat": int(time.time() if now is None else now),
    }  # fmt: skip
    token = sign(LIMITS_PREFIX, payload, key)
    if len(token) > MAX_STATEMENT:
        raise LimitsRefused(
            N_(
                "the signed limit values are {n} characters, more than the {max_statement} one message carries"
            ),
            values={"n": len(token), "max_statement": MAX_STATEMENT},
            hint=N_("Publish only the engines of the cars this box's workshop serves"),
        )
    return token


def accept_limits(
    token: str, keys: Mapping[str, Ed25519PublicKey], *, device: str, state_dir: Path
) -> LimitTable:
    """Check a published statement and keep its limit values in ``state_dir``; raises
    :class:`LimitsRefused` (said back to the portal) and keeps the old file when refused."""
    try:
        payload = verify(LIMITS_PREFIX, token, keys, max_len=MAX_STATEMENT)
    except TicketError as err:
        raise LimitsRefused(
            N_("the emission limit values are refused: {value}"),
            values={"value": err.args[0]},
            hint=N_("Only the portal can publish limit values; the box keeps the ones it has"),
        ) from err
    if set(payload) != FIELDS:
        raise LimitsRefused(N_("the emission limit values' statement is malformed (its fields)"))
    text, version, iat = payload["limits"], payload["version"], payload["iat"]
    if (
        not isinstance(text, str)
        or not isinstance(version, str)
        or not isinstance(iat, int)
        or isinstance(iat, bool)
        or not 0 <= iat <= MAX_TIME
    ):
        raise LimitsRefused(
            N_("the emission limit values' statement is malformed (a field's type)")
        )
    if payload["device"] != device:
        raise LimitsRefused(N_("the emission limit values are for another box; ignored"))
    try:
        table = parse_limits(text, "the portal's statement", published=True)
    except ConfigError as err:
        raise LimitsRefused(
            err.text.template,
            values=err.text.values,
            hint=N_("The box keeps the limit values it has"),
        ) from err
    if table.version != version:
        raise LimitsRefused(N_("the statement's version is not the version of its limit values"))
    try:
        kept = local_limits(state_dir)
    except ConfigError:  # a damaged copy: replaced
        kept = None
    kept_key = version_key(kept.version) if kept is not None else None
    new_key = version_key(table.version)
    if kept is not None and kept_key is not None and new_key is not None and new_key < kept_key:
        raise LimitsRefused(
            N_("the emission limit values {version} are older than the {version2} this box has"),
            values={"version": table.version, "version2": kept.version},
            hint=N_("A box is never taken back to older limit values; publish a newer version"),
        )
    _write_atomically(state_dir / LOCAL_LIMITS, text)
    return table


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def summary(table: LimitTable) -> dict[str, Any]:
    """What the box answers the portal: the version kept and the type codes it covers."""
    return {
        "source": table.source,
        "version": table.version,
        "type_codes": sorted(c for e in table.engines for c in e["type_codes"]),
    }
