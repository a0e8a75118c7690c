"""What one client on the Wi-Fi can take of the page, against a real ``vci gateway`` process:
half-sent requests (slowloris) are closed after the header timeout and capped per client address,
so the page still answers and the gateway's file descriptors stay bounded; package uploads stream
to disk (the gateway's peak memory stays far below the upload's size) and oversized ones are
refused with nothing left behind.

Other clients are other loopback addresses (127.0.0.2, 127.0.0.3 ... are all loopback on Linux)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_gateway_process, vci

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
PER_CLIENT = 32  # the default of [web] max_connections_per_client


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in kB (VmHWM, VmRSS)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))  # type: ignore[union-attr]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def gateway(box: Any, sim_process: Any) -> Any:
    """(process, base url, state dir) of a ``vci gateway`` with a short header timeout."""
    env = {
        **os.environ,
        "VCI_CONFIG": str(box.config),
        "VCI_WEB_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "VCI_WEB_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "VCI_STORAGE_MAX_PACKAGE_BYTES": str(120 * 1024 * 1024),
    }
    with start_gateway_process(sim_process.cli_args("doip"), env) as gateway:
        yield gateway.process, gateway.url, box.root / "state"


def _get(url: str, timeout: float = 5) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return int(resp.status)


def test_half_sent_requests_are_capped_per_client_and_closed_after_the_header_timeout(
    gateway,
) -> None:
    proc, base, _ = gateway
    port = int(base.rsplit(":", 1)[1])
    assert _get(base + "/") == 200
    before = _fds(proc.pid)
    attackers = [f"127.0.0.{i}" for i in range(2, 6)]
    socks = []
    try:
        for i in range(1100):
            s = socket.socket()
            s.bind((attackers[i % len(attackers)], 0))
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
            except OSError:
                s.close()
                continue
            socks.append(s)
        # the page still answers a real client while they hang
        started = time.monotonic()
        assert _get(base + "/") == 200
        assert time.monotonic() - started < HEADER_TIMEOUT
        held = _fds(proc.pid) - before
        print(f"{len(socks)} half-sent requests: the gateway holds {held} more descriptors")
        assert held <= PER_CLIENT * len(attackers) + 8, held
        # every half-sent request is closed by the box once the header timeout has passed
        deadline = time.monotonic() + HEADER_TIMEOUT + 10
        open_ = list(socks)
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                s.settimeout(0.01)
                try:
                    if s.recv(1024) == b"":
                        continue  # closed by the box
                except TimeoutError:
                    still.append(s)
                    continue
                except OSError:
                    continue  # reset by the box
            open_ = still
        assert not open_, f"{len(open_)} half-sent requests are still open"
        assert _fds(proc.pid) <= before + 8
    finally:
        for s in socks:
            s.close()


def test_a_package_upload_streams_to_disk_and_an_oversized_one_leaves_nothing(gateway) -> None:
    import aiohttp

    proc, base, state = gateway
    packages = state / "packages"

    async def go() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as s:
            async with s.post(base + "/api/pair", json={"name": "t"}) as r:
                req = await r.json()
            async with s.post(
                base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
            ) as r:
                assert r.status == 202  # waiting for the button
            approved = vci("pair", "--approve", "--state-dir", str(state))
            assert approved.returncode == 0, approved.stderr
            async with s.post(
                base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
            ) as r:
                assert r.status == 200, await r.text()
            async with s.get(base + "/api/session") as r:
                csrf = (await r.json())["csrf"]
            hwm_before = _status(proc.pid, "VmHWM")
            size = 100 * 1024 * 1024

            async def body(total: int):
                chunk = os.urandom(1 << 20)
                for _ in range(total // len(chunk)):
                    yield chunk

            async with s.post(
                base + "/api/packages?name=big.vcipkg",
                data=body(size),
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 400, await r.text()  # random bytes: not a package
                assert (await r.json())["error"] == "package_invalid"
            growth_mb = (_status(proc.pid, "VmHWM") - hwm_before) / 1024
            print(f"peak RSS growth for a {size >> 20} MiB upload: {growth_mb:.1f} MiB")
            assert growth_mb < 30, growth_mb
            async with s.post(
                base + "/api/packages?name=huge.vcipkg",
                data=body(130 * 1024 * 1024),
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 413
                assert (await r.json())["error"] == "too_large"
            assert sorted(p.name for p in packages.iterdir()) == []

    asyncio.run(go())


def test_connections_are_capped_in_total_and_per_client_address(tmp_path) -> None:
    """The guard on its own, in-process, with small caps: a client beyond its share or beyond the
    total is closed at once; a closed connection frees its place."""
    from aiohttp import web

    from firmware_py.web.limits import ConnectionCounter, handler_args, start_site

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", lambda request: web.Response(text="ok"))
        runner = web.AppRunner(app, **handler_args(5.0))
        await runner.setup()
        counter = ConnectionCounter(max_total=4, max_per_client=2)
        server = await start_site(runner, "127.0.0.1", 0, counter)
        port = server.sockets[0].getsockname()[1]

        async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))

        async def closed_at_once(reader: asyncio.StreamReader) -> bool:
            try:
                return await asyncio.wait_for(reader.read(1), 2) == b""
            except (ConnectionResetError, TimeoutError):
                return False

        a1, a2 = await connect("127.0.0.2"), await connect("127.0.0.2")
        a3 = await connect("127.0.0.2")
        assert await closed_at_once(a3[0])  # a third from the same address
        b1, b2 = await connect("127.0.0.3"), await connect("127.0.0.3")
        c1 = await connect("127.0.0.4")
        assert await closed_at_once(c1[0])  # the box is full
        assert counter.total == 4 and counter.refused == 2
        a1[1].close()
        for _ in range(100):
            if counter.total == 3:
                break
            await asyncio.sleep(0.01)
        c2 = await connect("127.0.0.4")  # a place was freed
        c2[1].write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.wait_for(c2[0].readline(), 5)).startswith(b"HTTP/1.1 200")
        for _, w in (a2, b1, b2, c2):
            w.close()
        server.close()
        await runner.cleanup()

    asyncio.run(main())


def test_a_body_that_does_not_arrive_is_refused_after_the_body_timeout(gateway) -> None:
    proc, base, _ = gateway
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            b"POST /api/pair HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answer = s.recv(4096)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"did not arrive in time" in answer
    assert BODY_TIMEOUT - 0.5 < took < BODY_TIMEOUT + 5, took
