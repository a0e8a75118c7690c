"""Update bundles the portal offers the box (docs/update.md): the signed offer and the download.

An offer is a statement the portal signs for one box with the key that signs its tickets
(``vu1.<payload>.<signature>``, the shape of a ticket: ticket_token.py): the bundle's version,
URL, size and SHA-256 and the compatible string of the boxes it is for. The box checks it with
its portal keys and refuses an offer for another box, for other hardware (compatible), or of a
version not newer than the one it runs (no downgrade by a replayed offer).

The download goes into the data partition with the box's downloader (download.py: HTTP range
requests, resumable from the bytes on disk without fetching one twice, free space checked before
the first byte, size and SHA-256 checked; the bundle is kept only when they are the offer's). RAUC checks the bundle's own signature (the release
key) again when it installs it: the offer says which bundle, the release key what may run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py.errors import TicketError, UpdateError
from firmware_py.gateway.download import Fetch
from firmware_py.gateway.download import download as fetch_file
from firmware_py.gateway.ticket_token import MAX_TIME, sign, verify
from firmware_py.i18n import N_
from firmware_py.versions import release_key

OFFER_PREFIX = "vu1"
MAX_BUNDLE = 4 * 2**30
"""bytes: an offer for a larger bundle is refused (the data partition holds one at a time)"""
FIELDS = {"device", "kid", "version", "url", "size", "sha256", "compatible", "iat"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class UpdateOffer:
    version: str
    url: str
    size: int
    sha256: str
    compatible: str
    iat: int

    @property
    def file_name(self) -> str:
        return f"{self.sha256}.raucb"


def version_key(version: str) -> tuple[int, ...]:
    """``2026.11.2`` -> (2026, 11, 2, 0): numeric, dotted, up to four parts."""
    key = release_key(version)
    if key is None:
        raise UpdateError(
            N_("{value} is not a release version (numbers separated by dots)"),
            values={"value": repr(version[:40])},
            hint=N_("The portal's offer is malformed; ask the portal's operator"),
        )
    return key


def sign_offer(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    device: str,
    version: str,
    url: str,
    size: int,
    sha256: str,
    compatible: str,
    now: float | None = None,
) -> str:
    """The portal's side: an offer of one bundle to one box."""
    payload = {
        "device": device, "kid": kid, "version": version, "url": url, "size": size,
        "sha256": sha256, "compatible": compatible,
        "iat": int(time.time() if now is None else now),
    }  # fmt: skip
    return sign(OFFER_PREFIX, payload, key)


def parse_offer(
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    device: str,
    compatible: str,
    installed: str,
) -> UpdateOffer:
    """A verified offer for this box, or :class:`UpdateError` saying why not."""
    try:
        payload = verify(OFFER_PREFIX, token, keys)
    except TicketError as err:
        raise UpdateError(
            N_("the update offer is refused: {value}"),
            values={"value": err.args[0]},
            hint=N_("Only the portal can offer updates; nothing was downloaded"),
        ) from err
    if set(payload) != FIELDS:
        raise UpdateError(N_("the update offer is malformed (its fields)"))
    version, url, size, digest = (payload[k] for k in ("version", "url", "size", "sha256"))
    iat, offered_for = payload["iat"], payload["compatible"]
    if (
        not all(isinstance(v, str) for v in (version, url, digest, offered_for))
        or not isinstance(size, int)
        or isinstance(size, bool)
        or not isinstance(iat, int)
        or isinstance(iat, bool)
        or not 0 <= iat <= MAX_TIME
        or not _SHA256.match(digest)
        or len(url) > 2048
    ):
        raise UpdateError(N_("the update offer is malformed (a field's type or form)"))
    if payload["device"] != device:
        raise UpdateError(N_("the update offer is for another box; it was ignored"))
    if offered_for != compatible:
        raise UpdateError(
            N_("the update is for {value} boxes, this box is {compatible}"),
            values={"value": repr(offered_for[:60]), "compatible": repr(compatible)},
            hint=N_("Nothing was downloaded; ask the portal for this box's update"),
        )
    if not 0 < size <= MAX_BUNDLE:
        raise UpdateError(
            N_("the update offer names a bundle of {size} bytes; refused"), values={"size": size}
        )
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise UpdateError(N_("the update offer's URL is not an http(s) URL; refused"))
    if version_key(version) <= version_key(installed):
        raise UpdateError(
            N_("the update offers version {version}, not newer than the installed {installed}"),
            values={"version": version, "installed": installed},
            hint=N_("A box is never taken back to an older version by an offer"),
        )
    return UpdateOffer(version, url, size, digest, offered_for, iat)


async def download(offer: UpdateOffer, directory: Path, **options: Any) -> Path:
    """Fetch the offered bundle into ``directory`` with the box's downloader (download.py: HTTP
    ranges, resumable, size and SHA-256 checked); ``options`` are :func:`.download.download`'s."""
    fetch = Fetch(offer.url, offer.size, offer.sha256, offer.file_name)
    return await fetch_file(fetch, directory, **options)
