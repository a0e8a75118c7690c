"""Shared set-up of the page's tests: a gateway with its page on a free loopback port (the
simulator in its own process), and pairing a client session with it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from firmware_py.config import TransportConfig
from firmware_py.gateway.job_handlers import HANDLERS
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.uds.vehicle import VehicleSession
from firmware_py.web.app import COOKIE, create_app
from firmware_py.web.pairing import Pairing

CODE = "TESTCODE7"  # test material


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def tick(self) -> None:
        pass

    def persist(self) -> None:
        pass


@dataclass
class Page:
    """A running page: unpacks as (loop, base url, pairing, clock); ``gateway`` for its state."""

    loop: asyncio.AbstractEventLoop
    base: str
    pairing: Pairing
    clock: Clock
    gateway: Gateway

    def __iter__(self) -> Iterator[Any]:
        return iter((self.loop, self.base, self.pairing, self.clock))


@pytest.fixture
def server(tmp_path, sim_process):
    """(base url, pairing, clock) of a gateway on a free loopback port."""
    yield from _page(tmp_path, sim_process)


@pytest.fixture
def small_disk_server(small_disk, sim_process):
    """Like ``server``, with its state directory on ``small_disk``."""
    yield from _page(small_disk, sim_process)


def _page(state_dir: Path, sim_process: Any) -> Iterator[Page]:
    clock = Clock()
    store = Store(state_dir)
    cfg = TransportConfig(doip_host=sim_process.doip_host, doip_port=sim_process.doip_port)
    trace = state_dir / "traces" / "session-doip.pcap"
    gateway = Gateway(
        store,
        open_vehicle=lambda: VehicleSession.open(cfg, "doip", trace_path=trace),
        handlers=HANDLERS,
        clock=clock,
        min_free_bytes=512 * 1024,
    )
    pairing = Pairing(store, CODE, window=60, max_code_attempts=3)
    loop = asyncio.new_event_loop()
    srv = TestServer(create_app(gateway, pairing), host="127.0.0.1")

    async def start() -> None:
        await gateway.start()
        await srv.start_server()

    loop.run_until_complete(start())
    yield Page(loop, str(srv.make_url("")), pairing, clock, gateway)

    async def stop() -> None:
        await srv.close()
        await gateway.stop()

    loop.run_until_complete(stop())
    loop.close()


def tablet(address: str | None = None) -> aiohttp.ClientSession:
    """A client of the page that keeps the box's cookies (the page is reached by IP address);
    ``address``: another loopback address, i.e. another client on the Wi-Fi."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(address, 0)) if address else None,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def pair(session: aiohttp.ClientSession, base: str, pairing: Pairing, clock: Clock) -> str:
    async with session.post(base + "/api/pair", json={"name": "t"}) as r:
        req = await r.json()
    async with session.post(
        base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
    ) as r:
        assert r.status == 202  # the page waits for the button
    pairing.press_button(clock.now())
    async with session.post(
        base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
    ) as r:
        assert r.status == 200
        cookie = r.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    async with session.get(base + "/api/session") as r:
        return (await r.json())["csrf"]


def run(server, coro_fn):
    loop, base, pairing, clock = server
    return loop.run_until_complete(coro_fn(base, pairing, clock))
