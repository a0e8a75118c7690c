"""The portal's update offers and the bundle download (firmware_py/gateway/update_offer.py),
against a real HTTP server on 127.0.0.1 that serves ranges, breaks off, ignores ranges, stalls,
sends the wrong bytes or too many; and on a real small file system that is full. The keys are
TEST keys made here; the bundle is random bytes (RAUC's own check is the appliance test's)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_py.errors import StorageError, UpdateError
from firmware_py.gateway.update_offer import UpdateOffer, download, parse_offer, sign_offer

SIZE = 3 * 2**20
CUT = 2**20
"""where the first answer breaks off"""
DEVICE, COMPATIBLE = "vci-test", "vci-box-amd64"


@pytest.fixture
def bundle(tmp_path: Path) -> bytes:
    data = os.urandom(SIZE)
    (tmp_path / "served.raucb").write_bytes(data)
    return data


class Server:
    """Handlers by path; ``seen`` holds each request's (path, Range header)."""

    def __init__(self, data: bytes, served: Path) -> None:
        self.data, self.served = data, served
        self.seen: list[tuple[str, str | None]] = []
        self.breaks = 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.seen.append((name, request.headers.get("Range")))
        if name == "bundle":  # aiohttp's FileResponse answers ranges (206, Content-Range)
            return web.FileResponse(self.served)
        if name == "breaks":  # the first answers break off after a third of the bytes
            if self.breaks > 0:
                self.breaks -= 1
                return await self.cut(request, self.data, CUT)
            return web.FileResponse(self.served)
        if name == "norange":  # never a range: the whole file, the first time broken off
            if self.breaks > 0:
                self.breaks -= 1
                return await self.cut(request, self.data, CUT)
            return web.Response(body=self.data)
        if name == "other":
            return web.Response(body=bytes(len(self.data)))
        if name == "more":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(self.data + b"extra")
            return resp
        if name == "stalls":
            resp = web.StreamResponse(headers={"Content-Length": str(SIZE)})
            await resp.prepare(request)
            await resp.write(self.data[:1000])
            await asyncio.sleep(30)
            return resp
        return web.Response(status=404)

    @staticmethod
    async def cut(request: web.Request, data: bytes, upto: int) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await resp.prepare(request)
        await resp.write(data[:upto])
        assert request.transport is not None
        request.transport.close()  # the link breaks
        return resp


def serve(
    data: bytes, served: Path, body: Callable[[Server, str, aiohttp.ClientSession], Awaitable[Any]]
) -> tuple[Any, Server]:
    server = Server(data, served)

    async def main() -> Any:
        srv = TestServer(server.app(), host="127.0.0.1")
        await srv.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                return await body(server, str(srv.make_url("")), session)
        finally:
            await srv.close()

    return asyncio.run(main()), server


def resumed_from(range_header: str | None) -> int:
    assert range_header is not None and range_header.startswith("bytes=")
    return int(range_header.removeprefix("bytes=").rstrip("-"))


def offer(url: str, data: bytes, size: int | None = None) -> UpdateOffer:
    return UpdateOffer(
        "2026.12.1", url, size or len(data), hashlib.sha256(data).hexdigest(), COMPATIBLE, 0
    )


def test_a_bundle_is_fetched_verified_and_kept(tmp_path, bundle) -> None:
    dest = tmp_path / "updates"
    got, server = serve(
        bundle,
        tmp_path / "served.raucb",
        lambda s, base, session: download(offer(base + "/bundle", bundle), dest, session=session),
    )
    assert got.read_bytes() == bundle and got.name.endswith(".raucb")
    assert [p.name for p in dest.iterdir()] == [got.name]  # no .part left
    # asked again (e.g. after a restart): the kept bundle is checked, nothing fetched
    again, server = serve(
        bundle,
        tmp_path / "served.raucb",
        lambda s, base, session: download(offer(base + "/bundle", bundle), dest, session=session),
    )
    assert again == got and server.seen == []


def test_a_broken_download_goes_on_with_a_range_from_the_bytes_kept(tmp_path, bundle) -> None:
    dest = tmp_path / "updates"
    got, server = serve(
        bundle,
        tmp_path / "served.raucb",
        lambda s, base, session: download(
            offer(base + "/breaks", bundle), dest, session=session, backoff=0.01
        ),
    )
    assert got.read_bytes() == bundle
    [first, second] = server.seen
    assert first == ("breaks", None) and second[1] is not None
    # exactly where the first answer broke off: what aiohttp had received but not yet handed out
    # when it learnt of the break is kept (it raises the break first), no byte is fetched twice
    assert resumed_from(second[1]) == CUT


def test_a_part_left_by_a_power_cut_is_continued_not_fetched_again(tmp_path, bundle) -> None:
    dest = tmp_path / "updates"
    dest.mkdir()
    the_offer_sha = hashlib.sha256(bundle).hexdigest()
    (dest / f"{the_offer_sha}.raucb.part").write_bytes(bundle[:100_000])
    (dest / ("0" * 64 + ".raucb")).write_bytes(b"an older offer's bundle")
    got, server = serve(
        bundle,
        tmp_path / "served.raucb",
        lambda s, base, session: download(offer(base + "/bundle", bundle), dest, session=session),
    )
    assert got.read_bytes() == bundle
    assert server.seen == [("bundle", "bytes=100000-")]
    assert [p.name for p in dest.iterdir()] == [got.name]  # the older bundle was removed


def test_a_server_that_ignores_ranges_gets_the_download_started_over(tmp_path, bundle) -> None:
    got, server = serve(
        bundle,
        tmp_path / "served.raucb",
        lambda s, base, session: download(
            offer(base + "/norange", bundle), tmp_path / "u", session=session, backoff=0.01
        ),
    )
    assert got.read_bytes() == bundle
    # broken off, asked for the rest, got the whole file (200): emptied, and fetched from 0
    [first, second, third] = server.seen
    assert first == third == ("norange", None) and resumed_from(second[1]) > 0


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("other", "does not match the offer's SHA-256"),
        ("more", "more bytes than the offer's size"),
        ("missing", "does not serve the update (404)"),
    ],
)
def test_wrong_bytes_are_discarded_with_a_clear_error(tmp_path, bundle, path, words) -> None:
    dest = tmp_path / "updates"

    async def body(s: Server, base: str, session: aiohttp.ClientSession) -> None:
        with pytest.raises(UpdateError, match=re.escape(words)):
            await download(offer(f"{base}/{path}", bundle), dest, session=session)

    serve(bundle, tmp_path / "served.raucb", body)
    assert not any(p.name.endswith(".raucb") for p in dest.iterdir())
    assert all(p.stat().st_size == 0 for p in dest.iterdir())


def test_a_stalled_download_is_given_up_with_the_bytes_kept(tmp_path, bundle) -> None:
    dest = tmp_path / "updates"

    async def body(s: Server, base: str, session: aiohttp.ClientSession) -> None:
        with pytest.raises(UpdateError, match="broke off 2 times") as info:
            await download(
                offer(base + "/stalls", bundle), dest, session=session, attempts=2,
                stall_timeout=0.5, backoff=0.01,
            )  # fmt: skip
        assert "kept" in str(info.value) and "next offer" in (info.value.hint or "")

    _, server = serve(bundle, tmp_path / "served.raucb", body)
    # the second attempt asked for the rest of what the first one kept
    # it asked for the rest of what it kept; this server ignores ranges (200): from 0 again
    assert server.seen == [("stalls", None), ("stalls", "bytes=1000-"), ("stalls", None)]
    [part] = dest.iterdir()
    assert part.read_bytes() == bundle[:1000]


def test_a_full_disk_refuses_before_the_first_byte(small_disk, bundle, tmp_path) -> None:
    big = offer("http://127.0.0.1:9/none", bundle, size=8 * 2**20)

    async def body(s: Server, base: str, session: aiohttp.ClientSession) -> None:
        with pytest.raises(StorageError, match="not enough space for the update") as info:
            await download(big, small_disk / "updates", session=session)
        assert "Remove old packages" in (info.value.hint or "")

    _, server = serve(bundle, tmp_path / "served.raucb", body)
    assert server.seen == []


# -- the offer -----------------------------------------------------------------------------------
@pytest.fixture
def portal_key() -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    return key, {"test-portal": key.public_key()}


def signed(key: Ed25519PrivateKey, **over: Any) -> str:
    fields: dict[str, Any] = {
        "device": DEVICE, "version": "2026.12.1", "url": "https://portal.example/b.raucb",
        "size": SIZE, "sha256": "ab" * 32, "compatible": COMPATIBLE,
    }  # fmt: skip
    fields.update(over)
    return sign_offer(key, "test-portal", **fields)


def test_an_offer_signed_for_this_box_is_taken(portal_key) -> None:
    key, keys = portal_key
    got = parse_offer(signed(key), keys, device=DEVICE, compatible=COMPATIBLE, installed="2026.11")
    assert (got.version, got.size, got.sha256) == ("2026.12.1", SIZE, "ab" * 32)


@pytest.mark.parametrize(
    ("over", "installed", "words"),
    [
        ({"device": "vci-other"}, "2026.11", "for another box"),
        ({"compatible": "vci-box-arm64"}, "2026.11", "this box is 'vci-box-amd64'"),
        ({}, "2026.12.1", "not newer than the installed"),
        ({"version": "2026.2"}, "2026.11", "not newer than the installed"),
        ({"version": "1.0-rc1"}, "2026.11", "is not a release version"),
        ({"url": "file:///etc/shadow"}, "2026.11", "not an http(s) URL"),
        ({"size": 0}, "2026.11", "a bundle of 0 bytes"),
        ({"size": 2**40}, "2026.11", "refused"),
        ({"sha256": "AB" * 32}, "2026.11", "malformed"),
        ({"size": True}, "2026.11", "malformed"),
    ],
)
def test_offers_the_box_must_not_take_are_refused(portal_key, over, installed, words) -> None:
    key, keys = portal_key
    with pytest.raises(UpdateError, match=re.escape(words)):
        parse_offer(
            signed(key, **over), keys, device=DEVICE, compatible=COMPATIBLE, installed=installed
        )


def test_an_offer_not_signed_by_the_portal_is_refused(portal_key) -> None:
    _, keys = portal_key
    forged = signed(Ed25519PrivateKey.generate())
    with pytest.raises(UpdateError, match="signature is not valid") as info:
        parse_offer(forged, keys, device=DEVICE, compatible=COMPATIBLE, installed="2026.11")
    assert "nothing was downloaded" in (info.value.hint or "")
    ticket_shaped = "vt1." + signed(portal_key[0]).split(".", 1)[1]
    with pytest.raises(UpdateError, match="refused"):
        parse_offer(ticket_shaped, keys, device=DEVICE, compatible=COMPATIBLE, installed="2026.11")
