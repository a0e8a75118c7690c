"""The box's one downloader of large files the portal names (update bundles: update_offer.py;
map data packages: map_package.py): HTTP range requests into a directory on the data partition,
resumable, checked against the size and SHA-256 the portal signed.

- Free space is checked before the first byte (the file and :data:`SPARE` to spare).
- A download broken off (the link, the portal, a power cut) goes on from the bytes on disk (the
  ``.part`` file), at the next attempt or after a restart. The bytes aiohttp had received but not
  yet handed out when it learnt of the break are kept too (:func:`_rest_of`), so a resumed
  download asks for exactly the first byte it does not have: no byte is fetched twice.
- A server that ignores ranges (``200``) gets the download started over; one that answers another
  range, more bytes than the size, or ``404`` is refused.
- The bytes are hashed as they arrive; the file is kept (renamed from ``.part``) only when its size
  and SHA-256 are the signed ones; anything else is discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from firmware_py.errors import DownloadInterrupted, StorageError, UpdateError
from firmware_py.i18n import N_

SPARE = 16 * 2**20
"""bytes the data partition keeps free beyond the file (the state, the journal)"""
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Fetch:
    """One file to fetch, as the portal signed it, and the words its errors use."""

    url: str
    size: int
    sha256: str
    file_name: str
    """its name in the directory once verified (``<name>.part`` while it is fetched)"""
    what: str = "the update"
    """how errors name it: "not enough space for the update\""""
    item: str = "bundle"
    """how errors name the file: "the downloaded bundle does not match ...\""""
    source: str = "offer"
    """what signed its size and SHA-256: "... the offer's SHA-256\""""
    siblings: str = "*.raucb*"
    """files of earlier fetches of the same kind in the directory, removed (one at a time)"""


async def download(
    fetch: Fetch,
    directory: Path,
    *,
    session: Any,
    attempts: int = 5,
    stall_timeout: float = 30.0,
    backoff: float = 1.0,
    progress: Progress | None = None,
) -> Path:
    """Fetch ``fetch`` into ``directory`` (an ``aiohttp.ClientSession`` given as ``session``),
    going on from a ``.part`` left by an earlier attempt; the verified file's path. A link that
    breaks is tried again ``attempts`` times (from the bytes on disk)."""
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / fetch.file_name
    loop = asyncio.get_running_loop()
    if dest.exists():
        if await loop.run_in_executor(None, _digest_of, dest) == fetch.sha256:
            return dest
        dest.unlink()  # damaged on disk: fetched again
    part = directory / (fetch.file_name + ".part")
    for old in directory.glob(fetch.siblings):  # one at a time: the last offer wins
        if old not in (dest, part):
            old.unlink(missing_ok=True)
    digest, have = await loop.run_in_executor(None, _resume_state, part, fetch.size)
    need = fetch.size - have + SPARE
    free = shutil.disk_usage(directory).free
    if free < need:
        raise StorageError(
            N_("not enough space for {what}: it needs {value} MiB, {value2} MiB are free"),
            values={"what": fetch.what, "value": need // 2**20, "value2": free // 2**20},
            hint=N_(
                "Remove old packages and traces from the box; the download starts again at the next offer"
            ),
        )
    failures = 0
    while have < fetch.size:
        try:
            have = await _fetch_once(fetch, session, part, digest, have, stall_timeout, progress)
        except _Restart:
            digest, have = hashlib.sha256(), 0
            continue
        except (OSError, TimeoutError, _Broken) as err:
            if isinstance(err, OSError) and err.errno is not None and _is_disk_error(err):
                raise StorageError(
                    N_("{what} could not be stored: {strerror}"),
                    values={"what": fetch.what, "strerror": err.strerror},
                    hint=N_("Free space on the box; the download goes on from the bytes kept"),
                ) from err
            failures += 1
            if failures >= attempts:
                raise DownloadInterrupted(
                    N_(
                        "{what} download broke off {failures} times ({err}); {have} of {size} bytes are kept"
                    ),
                    values={
                        "what": fetch.what,
                        "failures": failures,
                        "err": err,
                        "have": have,
                        "size": fetch.size,
                    },
                    hint=N_("It goes on from there at the next offer or restart"),
                ) from err
            await asyncio.sleep(min(backoff * 2 ** (failures - 1), 60.0))
            digest, have = await loop.run_in_executor(None, _resume_state, part, fetch.size)
    if digest.hexdigest() != fetch.sha256:
        part.unlink(missing_ok=True)
        raise UpdateError(
            N_("the downloaded {item} does not match the {source}'s SHA-256; it was discarded"),
            values={"item": fetch.item, "source": fetch.source},
            hint=N_("The portal's file is damaged or was replaced; ask the portal's operator"),
        )
    await loop.run_in_executor(None, _keep, part, dest)
    return dest


class _Restart(Exception):
    """The server ignored the range: the part was emptied, start from byte 0."""


class _Broken(Exception):
    """The server's answer broke off or did not fit the request: try again from the part."""


def _rest_of(content: Any) -> bytes:
    """What aiohttp had received of the body before it learnt of a break.

    aiohttp's ``StreamReader.readany`` raises a break (``ClientPayloadError``) before it hands
    out the bytes already in its buffer; without them a resumed download asks again for a few
    hundred KiB it had received whole. ``_read_nowait`` is aiohttp's own read of that buffer
    without the check (aiohttp 3.x; no public way): used here only, guarded by the test that a
    download cut at a known byte goes on from exactly that byte."""
    read = getattr(content, "_read_nowait", None)
    if read is None:
        return b""
    try:
        return bytes(read(-1))
    except Exception:  # noqa: BLE001 - another aiohttp: the bytes are fetched again, no harm
        return b""


async def _fetch_once(
    fetch: Fetch,
    session: Any,
    part: Path,
    digest: Any,
    have: int,
    stall_timeout: float,
    progress: Progress | None,
) -> int:
    import aiohttp

    # identity: the offsets of a range are the file's, never a compressed stream's
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(stall_timeout):
            response = await session.get(
                fetch.url, headers=headers, allow_redirects=False, auto_decompress=False
            )
    except aiohttp.ClientError as err:
        raise _Broken(f"the portal could not be reached: {err}") from err
    async with response:
        if response.status == 200 and have:
            # a server (or proxy) that ignores ranges sends the whole file: start over
            await loop.run_in_executor(None, _truncate, part)
            raise _Restart
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != have or int(match[3]) != fetch.size:
                raise _Broken(
                    f"the server answered another range ({response.headers.get('Content-Range')})"
                )
        elif response.status != 200:
            if response.status in (404, 410, 403):
                raise UpdateError(
                    N_("the portal does not serve {what} ({status})"),
                    values={"what": fetch.what, "status": response.status},
                    hint=N_("The offer may be withdrawn; the box waits for the next one"),
                )
            raise _Broken(f"the portal answered {response.status}")
        length = response.content_length
        if length is not None and have + length != fetch.size:
            raise UpdateError(
                N_("the portal sends {value} bytes for {what} of {size}; refused"),
                values={"value": have + length, "what": fetch.what, "size": fetch.size},
            )
        f = await loop.run_in_executor(None, _open_append, part)

        async def store(chunk: bytes) -> None:
            nonlocal have
            if have + len(chunk) > fetch.size:
                await loop.run_in_executor(None, _truncate, part)
                raise UpdateError(
                    N_("the portal sent more bytes than the {source}'s size; discarded"),
                    values={"source": fetch.source},
                )
            await loop.run_in_executor(None, f.write, chunk)
            digest.update(chunk)
            have += len(chunk)
            if progress is not None:
                progress(have, fetch.size)

        try:
            while True:
                try:
                    async with asyncio.timeout(stall_timeout):
                        chunk = await response.content.readany()
                except aiohttp.ClientError as err:
                    rest = _rest_of(response.content)
                    if rest:
                        await store(rest)
                    raise _Broken(f"the download broke off: {err}") from err
                if not chunk:
                    break
                await store(chunk)
        finally:
            await loop.run_in_executor(None, f.close)
    if have < fetch.size:
        raise _Broken(f"the download ended after {have} of {fetch.size} bytes")
    return have


def _digest_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resume_state(part: Path, size: int) -> tuple[Any, int]:
    """The hash of the bytes already in ``part`` and their count (a part longer than the file
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
    return err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
