"""The local page over HTTP on loopback against a real gateway (vci sim in its own process):
every API route refuses an unpaired client, a request without the CSRF token, and a forged or
expired session cookie; pairing is refused after its window and after too many wrong codes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from firmware_py.web.app import COOKIE
from tests.web.conftest import CODE, pair, run, tablet

ROUTES = [
    ("GET", "/api/trace"),
    ("GET", "/api/packages"),
    ("POST", "/api/packages"),
    ("GET", "/api/coding"),
    ("POST", "/api/jobs/x/cancel"),
    ("GET", "/api/session"),
    ("GET", "/api/tablets"),
    ("DELETE", "/api/tablets/abc"),
    ("GET", "/api/vehicle"),
    ("GET", "/api/jobs"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs/x"),
    ("GET", "/api/jobs/x/report.pdf"),
    ("GET", "/api/tickets"),
    ("POST", "/api/tickets"),
    ("GET", "/api/events"),
    ("GET", "/api/bridge"),
    ("POST", "/api/bridge/open"),
    ("POST", "/api/bridge/close"),
]
CHANGING = [(m, p) for m, p in ROUTES if m in ("POST", "DELETE")]


def test_unpaired_clients_get_only_the_pairing_page(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            async with s.get(base + "/") as r:
                assert r.status == 200 and "Pair this tablet" in await r.text()
            for method, path in ROUTES:
                async with s.request(method, base + path, json={}) as r:
                    assert r.status == 401, (method, path)
                    assert (await r.json())["error"] == "not_paired"

    run(server, go)


def test_forged_and_expired_cookies_are_refused(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            await pair(s, base, pairing, clock)
            async with s.get(base + "/api/vehicle") as r:
                assert r.status == 200
        for cookie in ("forged-" + "x" * 40, ""):
            async with aiohttp.ClientSession(
                cookies={COOKIE: cookie}, cookie_jar=aiohttp.CookieJar(unsafe=True)
            ) as s:
                for method, path in ROUTES:
                    async with s.request(method, base + path, json={}) as r:
                        assert r.status == 401, (method, path, cookie)
        async with tablet() as s:
            await pair(s, base, pairing, clock)
            clock.t += 91 * 86400  # unused for longer than a session lives
            async with s.get(base + "/api/vehicle") as r:
                assert r.status == 401

    run(server, go)


def test_changing_requests_need_the_csrf_token(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            csrf = await pair(s, base, pairing, clock)
            for method, path in CHANGING:
                for headers in ({}, {"X-CSRF-Token": "wrong"}):
                    async with s.request(
                        method, base + path, json={"kind": "identify"}, headers=headers
                    ) as r:
                        assert r.status == 403 and (await r.json())["error"] == "csrf", (
                            method,
                            path,
                        )
            async with s.post(
                base + "/api/jobs", json={"kind": "identify"}, headers={"X-CSRF-Token": csrf}
            ) as r:
                assert r.status == 202

    run(server, go)


def test_pairing_is_refused_after_the_window_and_after_too_many_codes(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            async with s.post(base + "/api/pair", json={"name": "late"}) as r:
                req = await r.json()
            clock.t += 61
            async with s.post(
                base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
            ) as r:
                assert r.status == 403 and "expired" in (await r.json())["message"]
            async with s.post(base + "/api/pair", json={"name": "guesser"}) as r:
                req = await r.json()
            for _ in range(3):
                async with s.post(
                    base + f"/api/pair/{req['id']}/code", json={"code": "000000"}
                ) as r:
                    assert r.status == 403
            async with s.post(base + f"/api/pair/{req['id']}/code", json={"code": CODE}) as r:
                body = await r.json()
                assert r.status == 403 and "too many wrong codes" in body["message"]

    run(server, go)


def test_events_arrive_over_the_websocket_and_a_new_socket_gets_the_true_state(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            csrf = await pair(s, base, pairing, clock)
            async with s.ws_connect(base + "/api/events") as ws:
                hello = json.loads((await ws.receive(timeout=5)).data)
                assert hello["kind"] == "hello" and hello["vehicle"]["vin"] is None
                async with s.post(
                    base + "/api/jobs", json={"kind": "identify"}, headers={"X-CSRF-Token": csrf}
                ) as r:
                    job_id = (await r.json())["id"]
                kinds = []
                while "job.done" not in kinds:
                    event = json.loads((await ws.receive(timeout=20)).data)
                    if event.get("job_id") == job_id:
                        kinds.append(event["kind"])
                assert kinds[:2] == ["job.accepted", "job.started"]
            # the page lost its socket; the new one's first message carries the state as it is now
            async with s.ws_connect(base + "/api/events") as ws:
                hello = json.loads((await ws.receive(timeout=5)).data)
                assert hello["vehicle"]["vin"] == "WBAJA71090B123456"
                assert any(j["id"] == job_id and j["state"] == "done" for j in hello["jobs"])

    run(server, go)


def test_the_session_trace_downloads_as_pcap_that_scapy_reads(server) -> None:
    from scapy.contrib.automotive.doip import DoIP
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    async def go(base, pairing, clock):
        async with tablet() as s:
            csrf = await pair(s, base, pairing, clock)
            async with s.get(base + "/api/trace") as r:
                assert r.status == 404  # nothing recorded before the first job
            async with s.post(
                base + "/api/jobs", json={"kind": "identify"}, headers={"X-CSRF-Token": csrf}
            ) as r:
                job_id = (await r.json())["id"]
            for _ in range(100):
                async with s.get(base + f"/api/jobs/{job_id}") as r:
                    if (await r.json())["state"] == "done":
                        break
                await asyncio.sleep(0.1)
            async with s.get(base + "/api/trace") as r:
                assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
                return await r.read()

    raw = run(server, go)
    loop, base, pairing, clock = server
    path = pairing.store.state_dir / "downloaded.pcap"
    path.write_bytes(raw)
    packets = rdpcap(str(path))
    # Scapy reads the IPv4/TCP framing; the simulator's port is not 13400, so DoIP is decoded here
    doip = [
        DoIP(bytes(p[TCP].payload)) for p in packets if p.haslayer(TCP) and bytes(p[TCP].payload)
    ]
    assert len(doip) > 20
    assert any(b"WBAJA71090B123456" in bytes(m.payload) for m in doip if m.payload_type == 0x8001)


def test_pairing_status_is_a_long_poll_answered_when_the_button_is_pressed(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            async with s.post(base + "/api/pair", json={"name": "t"}) as r:
                req = await r.json()

            waiting = asyncio.create_task(collect(s, base, req))
            await until_polling(pairing, req["id"])
            await asyncio.sleep(0.5)
            assert not waiting.done()  # the request is held open, not answered "not yet" at once
            pairing.press_button(clock.now())
            assert await asyncio.wait_for(waiting, 3) == 200

    run(server, go)


async def collect(session: aiohttp.ClientSession, base: str, req: dict[str, str]) -> int:
    """The tablet's poll for its pairing, held open by the page for up to 10 s; its status."""
    async with session.post(
        base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"], "wait": 10}
    ) as r:
        return r.status


async def until_polling(pairing: Any, rid: str, timeout: float = 5) -> None:
    """Until the page has the tablet's poll (the button approves only a tablet that polls)."""
    deadline = time.monotonic() + timeout
    while pairing.pending(rid).last_poll == float("-inf"):
        assert time.monotonic() < deadline, "the tablet's poll did not reach the page"
        await asyncio.sleep(0.01)


def test_attackers_pairing_requests_do_not_stop_a_tablet_pairing_by_button_or_code(
    server,
) -> None:
    async def go(base, pairing, clock):
        # 100 requests from 100 other clients, and many from one of them
        for i in range(100):
            async with tablet(f"127.0.1.{i + 1}") as s:
                for _ in range(1 if i else 20):
                    async with s.post(base + "/api/pair", json={"name": f"x{i}"}) as r:
                        assert r.status == 200
        async with tablet() as s:
            async with s.post(base + "/api/pair", json={"name": "mine"}) as r:
                assert r.status == 200
                req = await r.json()
                assert len(req["short_code"]) == 4

            waiting = asyncio.create_task(collect(s, base, req))
            await until_polling(pairing, req["id"])
            assert pairing.press_button(clock.now()).startswith("mine")
            assert await asyncio.wait_for(waiting, 5) == 200
        # an attacker who polls too makes the button ambiguous: the tablet is told to type the
        # label code, and the code works, however many wrong codes the attacker sends
        async with tablet("127.0.2.1") as attacker:
            async with attacker.post(base + "/api/pair", json={"name": "evil"}) as r:
                evil = await r.json()
            for _ in range(10):
                async with attacker.post(
                    base + f"/api/pair/{evil['id']}/code", json={"code": "WRONG1"}
                ) as r:
                    assert r.status == 403
            async with tablet() as s:
                async with s.post(base + "/api/pair", json={"name": "second"}) as r:
                    req = await r.json()
                for who, rid, claim in (
                    (attacker, evil["id"], evil["claim"]),
                    (s, req["id"], req["claim"]),
                ):
                    async with who.post(
                        base + f"/api/pair/{rid}/collect", json={"claim": claim}
                    ) as r:
                        assert r.status == 202
                with pytest.raises(Exception, match="cannot tell which"):
                    pairing.press_button(clock.now())
                async with s.post(
                    base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
                ) as r:
                    assert r.status == 202 and (await r.json())["use_code"] is True
                async with s.post(base + f"/api/pair/{req['id']}/code", json={"code": CODE}) as r:
                    assert r.status == 200
                async with s.post(
                    base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
                ) as r:
                    assert r.status == 200
            async with attacker.post(
                base + f"/api/pair/{evil['id']}/collect", json={"claim": evil["claim"]}
            ) as r:
                assert r.status == 202  # the attacker was never paired
        assert sorted(t.name for t in pairing.tablets()) == ["mine", "second"]

    run(server, go)


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Host": "evil.example"}, 421),  # DNS rebinding: the page under another name
        ({"Host": "evil.example", "Origin": "http://evil.example"}, 421),
    ],
)
def test_foreign_origins_and_hosts_are_refused(server, headers, status) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            csrf = await pair(s, base, pairing, clock)
            before = len(pairing.tablets())
            async with s.post(base + "/api/pair", json={"name": "x"}, headers=headers) as r:
                assert r.status == status
            async with s.post(
                base + "/api/jobs",
                json={"kind": "identify"},
                headers={"X-CSRF-Token": csrf, **headers},
            ) as r:
                assert r.status == status
                assert (await r.json())["error"] in ("foreign_origin", "wrong_host")
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                async with s.ws_connect(base + "/api/events", headers=headers):
                    pass
            assert err.value.status == status
            assert len(pairing.tablets()) == before
            assert pairing.store.connection().execute("SELECT 1").fetchone()
            # the page's own origin is fine
            own = {"Origin": base.rstrip("/"), "X-CSRF-Token": csrf}
            async with s.post(base + "/api/jobs", json={"kind": "identify"}, headers=own) as r:
                assert r.status == 202
            async with s.ws_connect(base + "/api/events", headers={"Origin": base.rstrip("/")}):
                pass

    run(server, go)
