"""Update bundles the portal offers the box (docs/update.md): the signed offer and the download.

An offer is a statement the portal signs for one box with the key that signs its tickets
(``vu1.<payload>.<signature>``, the shape of a ticket: ticket_token.py): the bundle's version,
URL, size and SHA-256 and the compatible string of the boxes it is for. The box checks it with
its portal keys and refuses an offer for another box, for other hardware (compatible), or of a
version not newer than the one it runs (no downgrade by a replayed offer).

The download goes into the data partition with HTTP range requests: a download broken off (the
link, the portal, a power cut) goes on from the bytes already on disk, at the next attempt or
after a restart (less what aiohttp had read but not handed out when the link broke: it raises the
break first; a few hundred KiB, fetched again). The bytes are hashed as they arrive; the bundle is kept (renamed from
``.part``) only when its size and SHA-256 are the offer's, and anything else is discarded. Free
space is checked before the first byte. RAUC checks the bundle's own signature (the release
key) again when it installs it: the offer says which bundle, the release key what may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py.errors import DownloadInterrupted, StorageError, TicketError, UpdateError
from firmware_py.gateway.ticket_token import MAX_TIME, sign, verify
from firmware_py.versions import release_key

OFFER_PREFIX = "vu1"
MAX_BUNDLE = 4 * 2**30
"""bytes: an offer for a larger bundle is refused (the data partition holds one at a time)"""
SPARE = 16 * 2**20
"""bytes the data partition keeps free beyond the bundle (the state, the journal)"""
FIELDS = {"device", "kid", "version", "url", "size", "sha256", "compatible", "iat"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


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
            f"{version[:40]!r} is not a release version (numbers separated by dots)",
            hint="The portal's offer is malformed; ask the portal's operator",
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
            f"the update offer is refused: {err.args[0]}",
            hint="Only the portal can offer updates; nothing was downloaded",
        ) from err
    if set(payload) != FIELDS:
        raise UpdateError("the update offer is malformed (its fields)")
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
        raise UpdateError("the update offer is malformed (a field's type or form)")
    if payload["device"] != device:
        raise UpdateError("the update offer is for another box; it was ignored")
    if offered_for != compatible:
        raise UpdateError(
            f"the update is for {offered_for[:60]!r} boxes, this box is {compatible!r}",
            hint="Nothing was downloaded; ask the portal for this box's update",
        )
    if not 0 < size <= MAX_BUNDLE:
        raise UpdateError(f"the update offer names a bundle of {size} bytes; refused")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise UpdateError("the update offer's URL is not an http(s) URL; refused")
    if version_key(version) <= version_key(installed):
        raise UpdateError(
            f"the update offers version {version}, not newer than the installed {installed}",
            hint="A box is never taken back to an older version by an offer",
        )
    return UpdateOffer(version, url, size, digest, offered_for, iat)


Progress = Callable[[int, int], None]


async def download(
    offer: UpdateOffer,
    directory: Path,
    *,
    session: Any,
    attempts: int = 5,
    stall_timeout: float = 30.0,
    backoff: float = 1.0,
    progress: Progress | None = None,
) -> Path:
    """Fetch the offered bundle into ``directory`` (an ``aiohttp.ClientSession`` given as
    ``session``), going on from a ``.part`` left by an earlier attempt; the verified bundle's
    path. A link that breaks is tried again ``attempts`` times (from the bytes on disk)."""
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / offer.file_name
    loop = asyncio.get_running_loop()
    if dest.exists():
        if await loop.run_in_executor(None, _digest_of, dest) == offer.sha256:
            return dest
        dest.unlink()  # damaged on disk: fetched again
    part = directory / (offer.file_name + ".part")
    for old in directory.glob("*.raucb*"):  # one bundle at a time: the last offer wins
        if old not in (dest, part):
            old.unlink(missing_ok=True)
    digest, have = await loop.run_in_executor(None, _resume_state, part, offer.size)
    need = offer.size - have + SPARE
    free = shutil.disk_usage(directory).free
    if free < need:
        raise StorageError(
            f"not enough space for the update: it needs {need // 2**20} MiB, "
            f"{free // 2**20} MiB are free",
            hint="Remove old packages and traces from the box; the download starts again at "
            "the next offer",
        )
    failures = 0
    while have < offer.size:
        try:
            have = await _fetch_once(offer, session, part, digest, have, stall_timeout, progress)
        except _Restart:
            digest, have = hashlib.sha256(), 0
            continue
        except (OSError, TimeoutError, _Broken) as err:
            if isinstance(err, OSError) and err.errno is not None and _is_disk_error(err):
                raise StorageError(
                    f"the update could not be stored: {err.strerror}",
                    hint="Free space on the box; the download goes on from the bytes kept",
                ) from err
            failures += 1
            if failures >= attempts:
                raise DownloadInterrupted(
                    f"the update download broke off {failures} times ({err}); "
                    f"{have} of {offer.size} bytes are kept",
                    hint="It goes on from there at the next offer or restart",
                ) from err
            await asyncio.sleep(min(backoff * 2 ** (failures - 1), 60.0))
            digest, have = await loop.run_in_executor(None, _resume_state, part, offer.size)
    if digest.hexdigest() != offer.sha256:
        part.unlink(missing_ok=True)
        raise UpdateError(
            "the downloaded bundle does not match the offer's SHA-256; it was discarded",
            hint="The portal's file is damaged or was replaced; ask the portal's operator",
        )
    await loop.run_in_executor(None, _keep, part, dest)
    return dest


class _Restart(Exception):
    """The server ignored the range: the part was emptied, start from byte 0."""


class _Broken(Exception):
    """The server's answer broke off or did not fit the request: try again from the part."""


async def _fetch_once(
    offer: UpdateOffer,
    session: Any,
    part: Path,
    digest: Any,
    have: int,
    stall_timeout: float,
    progress: Progress | None,
) -> int:
    import aiohttp

    headers = {"Range": f"bytes={have}-"} if have else {}
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(stall_timeout):
            response = await session.get(offer.url, headers=headers, allow_redirects=False)
    except aiohttp.ClientError as err:
        raise _Broken(f"the portal could not be reached: {err}") from err
    async with response:
        if response.status == 200 and have:
            # a server (or proxy) that ignores ranges sends the whole file: start over
            await loop.run_in_executor(None, _truncate, part)
            raise _Restart
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != have or int(match[3]) != offer.size:
                raise _Broken(
                    f"the server answered another range ({response.headers.get('Content-Range')})"
                )
        elif response.status != 200:
            if response.status in (404, 410, 403):
                raise UpdateError(
                    f"the portal does not serve the update ({response.status})",
                    hint="The offer may be withdrawn; the box waits for the next one",
                )
            raise _Broken(f"the portal answered {response.status}")
        length = response.content_length
        if length is not None and have + length != offer.size:
            raise UpdateError(
                f"the portal sends {have + length} bytes for a bundle of {offer.size}; refused"
            )
        f = await loop.run_in_executor(None, _open_append, part)
        try:
            while True:
                try:
                    async with asyncio.timeout(stall_timeout):
                        chunk = await response.content.readany()
                except aiohttp.ClientError as err:
                    raise _Broken(f"the download broke off: {err}") from err
                if not chunk:
                    break
                if have + len(chunk) > offer.size:
                    await loop.run_in_executor(None, _truncate, part)
                    raise UpdateError("the portal sent more bytes than the offer's size; discarded")
                await loop.run_in_executor(None, f.write, chunk)
                digest.update(chunk)
                have += len(chunk)
                if progress is not None:
                    progress(have, offer.size)
        finally:
            await loop.run_in_executor(None, f.close)
    if have < offer.size:
        raise _Broken(f"the download ended after {have} of {offer.size} bytes")
    return have


def _digest_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resume_state(part: Path, size: int) -> tuple[Any, int]:
    """The hash of the bytes already in ``part`` and their count (a part longer than the bundle
    is not one of this offer: emptied)."""
    h = hashlib.sha256()
    if not part.exists():
        return h, 0
    if part.stat().st_size > size:
        _truncate(part)
        return h, 0
    have = 0
    with part.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            have += len(block)
    return h, have


def _open_append(part: Path) -> IO[bytes]:
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab")


def _truncate(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError), part.open("r+b") as f:
        f.truncate(0)


def _keep(part: Path, dest: Path) -> None:
    with part.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_disk_error(err: OSError) -> bool:
    import errno

    return err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
