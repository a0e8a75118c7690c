"""Flash packages the portal's package store offers this box (docs/flash-package.md, "Packages
from the portal"): the signed offer and the download into the box's package store.

An offer is a statement the portal signs for one box with the key that signs its tickets
(``vk1.<payload>.<signature>``, the shape of a ticket: ticket_token.py): the package's name,
URL, size and SHA-256, and until when the URL serves it. The box refuses an offer for another
box, one expired, or one for a package larger than it keeps.

The download goes into the package store with the box's one downloader (download.py: HTTP
ranges, resumable from the bytes on disk, free space checked before the first byte, size and
SHA-256 checked). The package is kept only when its publisher's signature verifies with the
publisher keys the box trusts (the portal checked it on upload too: the box does not rely on it).
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py.errors import PackageError, TicketError
from firmware_py.gateway.download import Fetch
from firmware_py.gateway.download import download as fetch_file
from firmware_py.gateway.ticket_token import MAX_TIME, sign, verify
from firmware_py.i18n import N_
from firmware_py.uds.flash.package import MAX_PACKAGE, read_package

OFFER_PREFIX = "vk1"
FIELDS = {"device", "kid", "name", "url", "size", "sha256", "iat", "exp"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FETCHING: weakref.WeakValueDictionary[Path, asyncio.Lock] = weakref.WeakValueDictionary()
"""one download per file at a time: two offers of one package (two sessions) would otherwise
append to the same ``.part``; the second waits and finds the package kept"""


@dataclass(frozen=True)
class PackageOffer:
    name: str
    url: str
    size: int
    sha256: str
    exp: int

    @property
    def file_name(self) -> str:
        """its name in the box's package store: what a programming job names"""
        return f"{self.name}-{self.sha256[:12]}.vcipkg"


def sign_offer(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    device: str,
    name: str,
    url: str,
    size: int,
    sha256: str,
    exp: int,
    now: float | None = None,
) -> str:
    """The portal's side: one package of its store offered to one box."""
    payload = {
        "device": device, "kid": kid, "name": name, "url": url, "size": size,
        "sha256": sha256, "iat": int(time.time() if now is None else now), "exp": exp,
    }  # fmt: skip
    return sign(OFFER_PREFIX, payload, key)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_offer(
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    device: str,
    now: float | None = None,
    max_bytes: int = MAX_PACKAGE,
) -> PackageOffer:
    """A verified offer for this box, or :class:`PackageError` saying why not."""
    try:
        payload = verify(OFFER_PREFIX, token, keys)
    except TicketError as err:
        raise PackageError(
            N_("the package offer is refused: {value}"),
            values={"value": err.args[0]},
            hint=N_("Only the portal can offer packages; nothing was downloaded"),
        ) from err
    if set(payload) != FIELDS:
        raise PackageError(N_("the package offer is malformed (its fields)"))
    name, url, size, digest, exp = (payload[k] for k in ("name", "url", "size", "sha256", "exp"))
    if (
        not all(isinstance(v, str) for v in (name, url, digest))
        or not all(_is_int(v) for v in (size, exp, payload["iat"]))
        or not 0 <= exp <= MAX_TIME
        or not _SHA256.match(digest)
        or not _NAME.match(name)
        or len(url) > 2048
    ):
        raise PackageError(N_("the package offer is malformed (a field's type or form)"))
    if payload["device"] != device:
        raise PackageError(N_("the package offer is for another box; it was ignored"))
    if exp < (time.time() if now is None else now):
        raise PackageError(
            N_("the package offer has expired"), hint=N_("Choose the package on the portal again")
        )
    if not 0 < size <= max_bytes:
        raise PackageError(
            N_(
                "the package offer names a package of {size} bytes; this box keeps at most {max_bytes}"
            ),
            values={"size": size, "max_bytes": max_bytes},
            hint=N_(
                "Raise storage.max_package_bytes on the box, or program from a smaller package"
            ),
        )
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise PackageError(N_("the package offer's URL is not an http(s) URL; refused"))
    return PackageOffer(name, url, size, digest, exp)


async def download(
    offer: PackageOffer,
    packages_dir: Path,
    publisher_keys: Mapping[str, Ed25519PublicKey],
    **options: Any,
) -> Path:
    """Fetch the offered package into the package store (download.py: HTTP ranges, resumable,
    size and SHA-256 checked) and keep it only if its publisher's signature verifies; its path.
    ``options`` are :func:`.download.download`'s."""
    fetch = Fetch(
        offer.url, offer.size, offer.sha256, offer.file_name,
        what="the flash package", item="package",
        siblings=offer.file_name + ".part",  # other packages in the store stay
    )  # fmt: skip
    lock = _FETCHING.setdefault((packages_dir / offer.file_name).resolve(), asyncio.Lock())
    async with lock:
        path = await fetch_file(fetch, packages_dir, **options)
    try:
        with path.open("rb") as f:
            read_package(f, publisher_keys)
    except PackageError:
        path.unlink(missing_ok=True)
        raise
    return path
