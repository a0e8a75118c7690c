"""Shared set-up of the page's tests: a gateway with its page on a free loopback port (the
simulator in its own process), and pairing a client session with it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
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
    clock = Clock()
    store = Store(tmp_path)
    cfg = TransportConfig(doip_host=sim_process.doip_host, doip_port=sim_process.doip_port)
    trace = tmp_path / "traces" / "session-doip.pcap"
    gateway = Gateway(
        store,
        open_vehicle=lambda: VehicleSession.open(cfg, "doip", trace_path=trace),
        handlers=HANDLERS,
        clock=clock,
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
