"""The gateway's updater (firmware_py/gateway/updates.py) with a real Gateway and job runner and a
real HTTP server on 127.0.0.1: the install is never asked for while a job runs, and an offer taken
before a restart goes on after it (a kept bundle is checked, not fetched again; once that version
runs, the offer is forgotten). TEST keys and random bundle bytes, made here."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import firmware_py.gateway.updates as updates
from firmware_py.config import UpdateConfig
from firmware_py.gateway.jobs import Caller, JobRequest, JobState
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.gateway.update_offer import sign_offer

DEVICE, COMPATIBLE = "box-test-0001", "vci-box-test"


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.02)


def test_the_install_waits_for_the_running_job_and_an_offer_survives_a_restart(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(updates, "IDLE_POLL", 0.05)
    data = os.urandom(1 << 20)
    requests: list[str | None] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        requests.append(request.headers.get("Range"))
        return web.Response(body=data)

    key = Ed25519PrivateKey.generate()
    release = tmp_path / "release"
    release.write_text("2026.11.0\n")
    cfg = UpdateConfig(
        compatible=COMPATIBLE, release_file=release, request_file=tmp_path / "run" / "request"
    )
    release_job = threading.Event()

    def hold(vehicle: Any, ctx: Any) -> dict[str, Any]:
        release_job.wait(20)  # a job on the car (e.g. programming) still running
        return {}

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/bundle.raucb", serve)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        token = sign_offer(
            key, "k", device=DEVICE, version="2026.12.1", url=str(server.make_url("/bundle.raucb")),
            size=len(data), sha256=hashlib.sha256(data).hexdigest(), compatible=COMPATIBLE,
        )  # fmt: skip
        gateway = Gateway(
            Store(tmp_path / "state"), open_vehicle=object, handlers={"identify": hold}
        )
        await gateway.start()
        keys = {"k": key.public_key()}
        updater = updates.Updater(cfg, tmp_path / "state", keys, DEVICE, gateway)
        job = gateway.runner.submit(JobRequest("identify", {}), Caller("tablet", "t"))
        await until(lambda: job.state == JobState.RUNNING, 10, "running job")
        updater.offered(token)
        await until(lambda: updater.status["state"] == "downloaded", 20, "download")
        for _ in range(10):  # many looks for an idle moment: none while the job runs
            await asyncio.sleep(updates.IDLE_POLL)
            assert not cfg.request_file.exists()
        release_job.set()
        await until(cfg.request_file.exists, 10, "install request after the job")
        bundle = Path(cfg.request_file.read_text().strip())
        assert bundle.read_bytes() == data and requests == [None]
        await updater.stop()

        # the gateway restarts before the install (a power cut): the kept offer goes on
        cfg.request_file.unlink()
        again = updates.Updater(cfg, tmp_path / "state", keys, DEVICE, gateway)
        await again.start()
        await until(cfg.request_file.exists, 10, "install request after a restart")
        assert requests == [None]  # the kept bundle was checked, not fetched again
        await again.stop()

        # installed: that version runs now, the kept offer is done with
        release.write_text("2026.12.1\n")
        after = updates.Updater(cfg, tmp_path / "state", keys, DEVICE, gateway)
        await after.start()
        assert after.status["state"] == "idle"
        assert list((tmp_path / "state" / "updates").iterdir()) == []  # token and bundle gone
        await gateway.stop()
        await server.close()

    asyncio.run(main())
