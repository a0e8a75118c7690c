"""The portal's package store (portal/packages.py, portal/web/package_files.py) and a box's
download of a package offered from it (firmware_py/gateway/package_offer.py), over loopback:
uploads checked with the publisher keys, files served with ranges to the box the URL was signed
for, a download cut and resumed."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import PackageError
from firmware_py.gateway import package_offer
from firmware_py.uds.flash.package import build_package
from portal.db.models import StoredPackage
from portal.packages import PackageStore
from portal.web.app import make_app
from portal.web.guard import WebConfig

PUBLISHER = Ed25519PrivateKey.generate()
PORTAL = Ed25519PrivateKey.generate()
BOX = "vci-0001"


def package(version: str = "2.0", size: int = 300_000) -> bytes:
    return build_package(
        ecu_name="ENGINE", ecu_address=0x10, version=version,
        segments=[(0x8000, os.urandom(size))], key=PUBLISHER, kid="pub1",
        image_format="bin", sw_versions=("1.0",),
    )  # fmt: skip


def tampered(raw: bytes) -> bytes:
    """The same package with one byte of its image changed (the archive still valid)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename not in ("manifest.json", "signature"):
                data = bytes([data[0] ^ 1]) + data[1:]
            dst.writestr(item, data)
    return out.getvalue()


@pytest.fixture
def store(factory: sessionmaker[Session], tmp_path: Path) -> PackageStore:
    return PackageStore(factory, tmp_path / "store", {"pub1": PUBLISHER.public_key()}, "p1", PORTAL)


def rows(factory: sessionmaker[Session]) -> int:
    with factory() as db:
        return int(db.scalar(select(func.count()).select_from(StoredPackage)) or 0)


def test_an_upload_is_listed_with_what_it_holds(store: PackageStore) -> None:
    raw = package()
    info = store.add(io.BytesIO(raw), "engine 2.0.vcipkg")
    assert (info.ecu, info.ecu_address, info.version, info.sw_versions) == (
        "ENGINE",
        16,
        "2.0",
        ("1.0",),
    )
    assert info.size == len(raw) and info.publisher == "pub1" and info.name == "engine_2.0"
    assert store.path_of(info.sha256).read_bytes() == raw
    assert store.list() == [info] == store.list({"ENGINE": 0x10})
    assert store.list({"ENGINE": 0x11}) == [] == store.list({"ABS": 0x10})
    assert store.add(io.BytesIO(raw), "again") == info  # the same package is one row
    store.path_of(info.sha256).unlink()  # its file lost (a disk restored without it)
    assert (
        store.add(io.BytesIO(raw), "again") == info
        and store.path_of(info.sha256).read_bytes() == raw
    )


@pytest.mark.parametrize("make", [tampered, lambda raw: raw[:-40], lambda raw: b"not a zip"])
def test_a_tampered_package_is_refused_on_upload(store, factory, make) -> None:
    with pytest.raises(PackageError):
        store.add(io.BytesIO(make(package())), "engine.vcipkg")
    assert rows(factory) == 0 and list(store.directory.iterdir()) == []


def test_a_package_of_an_untrusted_publisher_is_refused(store, factory) -> None:
    raw = build_package(ecu_name="ENGINE", ecu_address=0x10, version="1",
                        segments=[(0, b"x" * 64)], key=Ed25519PrivateKey.generate(), kid="pub1")  # fmt: skip
    with pytest.raises(PackageError, match="signature"):
        store.add(io.BytesIO(raw), "engine")
    assert rows(factory) == 0


@asynccontextmanager
async def portal(cfg: WebConfig, store: PackageStore) -> AsyncIterator[str]:
    server = TestServer(make_app(cfg, packages=store), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/")).rstrip("/")
    finally:
        await server.close()


def test_the_file_is_served_with_ranges_only_on_a_valid_url(store, factory, signer, seller) -> None:
    raw = package()
    sha = store.add(io.BytesIO(raw), "engine").sha256

    async def run() -> list[tuple[int, bytes]]:
        async with portal(WebConfig(factory, signer, seller), store) as base:
            offer = package_offer.parse_offer(
                store.offer(BOX, sha, base), {"p1": PORTAL.public_key()}, device=BOX
            )
            wrong = offer.url.replace(sha, "0" * 64)
            expired = f"{base}/packages/{sha}.vcipkg?t={store.token(BOX, sha, 1)}"
            forged = f"{base}/packages/{sha}.vcipkg?t=" + PackageStore(
                factory, store.directory, {}, "p1", Ed25519PrivateKey.generate()
            ).token(BOX, sha, 2**33)
            got = []
            async with aiohttp.ClientSession() as http:
                for url, headers in [(offer.url, {"Range": "bytes=100-"}), (offer.url, {}),
                                     (wrong, {}), (expired, {}), (forged, {}),
                                     (offer.url.split("?")[0], {})]:  # fmt: skip
                    async with http.get(url, headers=headers) as r:
                        got.append((r.status, await r.read()))
            return got

    ranged, whole, *refused = asyncio.run(run())
    assert ranged == (206, raw[100:]) and whole == (200, raw)
    assert [status for status, _ in refused] == [403, 403, 403, 403]


class CuttingProxy:
    """A TCP proxy on loopback in front of the portal: its first connection is closed after
    ``cut_at`` bytes of the answer (the link lost mid-download); it keeps each request's head."""

    def __init__(self, upstream_port: int, cut_at: int) -> None:
        self.upstream_port, self.cut_at, self.requests = upstream_port, cut_at, list[bytes]()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = not self.requests
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_w.write(head)
        await up_w.drain()
        sent = 0
        while block := await up_r.read(16384):
            if first and sent + len(block) > self.cut_at:
                writer.write(block[: self.cut_at - sent])
                break
            writer.write(block)
            await writer.drain()
            sent += len(block)
        await writer.drain()
        writer.close()
        up_w.close()


def test_a_download_cut_is_resumed_and_kept_only_verified(
    store, factory, signer, seller, tmp_path
) -> None:
    raw = package(size=600_000)
    sha = store.add(io.BytesIO(raw), "engine").sha256
    box_store = tmp_path / "box-packages"

    async def run() -> tuple[Path, CuttingProxy]:
        async with portal(WebConfig(factory, signer, seller), store) as base:
            proxy = CuttingProxy(int(base.rsplit(":", 1)[1]), cut_at=200_000)
            port = await proxy.start()
            token = store.offer(BOX, sha, f"http://127.0.0.1:{port}")
            offer = package_offer.parse_offer(token, {"p1": PORTAL.public_key()}, device=BOX)
            async with aiohttp.ClientSession(auto_decompress=False) as http:
                path = await package_offer.download(
                    offer, box_store, {"pub1": PUBLISHER.public_key()},
                    session=http, backoff=0.01, stall_timeout=10,
                )  # fmt: skip
            proxy.server.close()
            return path, proxy

    path, proxy = asyncio.run(run())
    assert path.read_bytes() == raw and path.name == f"engine-{sha[:12]}.vcipkg"
    assert len(proxy.requests) == 2 and b"range" not in proxy.requests[0].lower()
    start = int(proxy.requests[1].lower().split(b"range: bytes=")[1].split(b"-")[0])
    assert 0 < start < 200_000  # went on from the bytes kept, not from the start
    assert sorted(p.name for p in box_store.iterdir()) == [path.name]


def test_offers_the_box_must_not_take_are_refused(store) -> None:
    sha = store.add(io.BytesIO(package()), "engine").sha256
    keys = {"p1": PORTAL.public_key()}
    token = store.offer(BOX, sha, "http://127.0.0.1:1", now=1000)
    with pytest.raises(PackageError, match="another box"):
        package_offer.parse_offer(token, keys, device="vci-0002", now=1000)
    with pytest.raises(PackageError, match="expired"):
        package_offer.parse_offer(token, keys, device=BOX, now=10**9)
    with pytest.raises(PackageError, match="at most"):
        package_offer.parse_offer(token, keys, device=BOX, now=1000, max_bytes=1000)
    with pytest.raises(PackageError, match="refused"):
        package_offer.parse_offer(
            token, {"p1": Ed25519PrivateKey.generate().public_key()}, device=BOX, now=1000
        )


def test_the_operator_adds_and_lists_packages_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    from portal.cli import main

    monkeypatch.setenv("VCI_PORTAL_STATE_DIR", str(tmp_path / "state"))
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "pub1.pub").write_bytes(
        PUBLISHER.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    raw = package()
    (tmp_path / "good.vcipkg").write_bytes(raw)
    (tmp_path / "bad.vcipkg").write_bytes(tampered(raw))
    db = f"sqlite:///{tmp_path / 'portal.sqlite'}"
    assert (
        main(
            [
                "packages",
                "add",
                str(tmp_path / "bad.vcipkg"),
                "--publisher-keys",
                str(trust),
                "--db",
                db,
            ]
        )
        == 1
    )
    assert "refused" in capsys.readouterr().err
    assert (
        main(
            [
                "packages",
                "add",
                str(tmp_path / "good.vcipkg"),
                "--publisher-keys",
                str(trust),
                "--db",
                db,
            ]
        )
        == 0
    )
    assert main(["packages", "list", "--db", db]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "ENGINE" in listed[1] and str(len(raw)) in listed[1]


def test_two_offers_of_one_package_at_once_keep_it_whole(
    store, factory, signer, seller, tmp_path
) -> None:
    raw = package(size=2_000_000)
    sha = store.add(io.BytesIO(raw), "engine").sha256
    box_store = tmp_path / "box-packages"

    async def run() -> list[Path]:
        async with portal(WebConfig(factory, signer, seller), store) as base:
            keys = {"p1": PORTAL.public_key()}
            offers = [
                package_offer.parse_offer(store.offer(BOX, sha, base), keys, device=BOX)
                for _ in range(2)
            ]
            async with aiohttp.ClientSession() as http:
                return list(await asyncio.gather(*(
                    package_offer.download(o, box_store, {"pub1": PUBLISHER.public_key()}, session=http, attempts=1)
                    for o in offers
                )))  # fmt: skip

    first, second = asyncio.run(run())
    assert first == second and first.read_bytes() == raw
