"""The box's vehicle-link trace downloaded from a remote session's page, piece by piece over the
box's link (``trace.read`` / ``trace.chunk``): the real gateway on the simulated car, real
mosquitto, the portal's pages served on loopback."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from portal.sessions import open_session
from portal.web.guard import WebConfig
from tests.cloud.conftest import BOX, HAVE_MOSQUITTO
from tests.portal.conftest import FAST_HASHER, PASSWORD
from tests.portal.web_client import Browser, portal

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")


def test_the_box_trace_of_a_session_is_downloaded_from_its_page(
    remote_shop: dict[str, Any], box: Any
) -> None:
    factory, owner, service = remote_shop["factory"], remote_shop["owner"], remote_shop["sessions"]
    with factory() as db, db.begin():
        sid = open_session(db, owner, BOX).id
    identify = service.start(owner, BOX, sid, "identify", None, {})
    service.wait(identify, 120)
    traces = sorted(
        (Path(box.root) / "state" / "traces").glob("*.pcap"), key=lambda p: p.stat().st_mtime
    )
    assert traces, "the gateway traces its vehicle link"
    # and an older session's longer trace kept beside it, the newest now: it takes several pieces
    longer = traces[-1].with_name("20261128-235959-doip.pcap")
    longer.write_bytes(traces[-1].read_bytes()[:24] + os.urandom(100_000))
    os.utime(longer, (time.time() + 60, time.time() + 60))
    traces.append(longer)
    cfg = WebConfig(factory, remote_shop["signer"], remote_shop["seller"], hasher=FAST_HASHER)

    async def run() -> tuple[int, str, bytes, int, int]:
        async with portal(cfg, sessions=service) as (server, browsers):
            tech, stranger = Browser(server), Browser(server)
            browsers += [tech, stranger]
            assert (await tech.log_in(owner_login(factory, owner), PASSWORD)).status == 303
            base = f"/boxes/{BOX}/sessions/{sid}"
            assert "box-trace.pcap" in (await tech.get(base)).text
            before = traces[-1].stat().st_size
            got = await tech.get(f"{base}/box-trace.pcap")
            other = await stranger.get(f"{base}/box-trace.pcap")
            return (
                got.status,
                got.headers.get("Content-Disposition", ""),
                got.body,
                before,
                other.status,
            )

    status, disposition, body, before, other = asyncio.run(run())
    assert status == 200 and traces[-1].name in disposition
    assert body[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x0a\x0d\x0d\x0a")  # pcap
    assert len(body) >= before and body == traces[-1].read_bytes()[: len(body)]
    assert len(body) == before == 100_024  # four pieces of 32 KiB
    assert other in (302, 303, 401)  # not logged in: nothing of the box's trace


def owner_login(factory: Any, owner: Any) -> str:
    from portal.db.models import User

    with factory() as db:
        user = db.get(User, owner.user_id)
        assert user is not None
        return str(user.login)
