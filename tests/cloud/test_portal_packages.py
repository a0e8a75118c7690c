"""Remote programming with a package of the portal's package store, end to end: the real
gateway on the simulated car, real mosquitto, the portal's package files served over loopback.
The box is offered the package, downloads it into its package store (checked), and the
programming job runs with it under the workshop's ticket."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from firmware_py.keys import load_private_key, load_public_keys
from firmware_py.uds.flash.package import SequenceParams, build_package
from portal import credit, keys
from portal.db.models import RemoteJob
from portal.packages import PackageStore
from portal.sessions import SessionService, jobs_of, open_session
from portal.web.app import make_app
from portal.web.guard import WebConfig
from portal.web.session_packages import car_ecus, store_section
from tests.cloud.conftest import BOX, HAVE_MOSQUITTO, USER, gateway_env, wait_online
from tests.flash.conftest import image

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")


def test_a_package_of_the_store_is_programmed_remotely(
    box: Any, broker: dict[str, Any], shop: dict[str, Any], start_sim: Any, tmp_path: Path
) -> None:
    from portal.remote import RemoteSession
    from tests.conftest import start_gateway_process

    keys.generate(tmp_path / "publisher", "test-publisher")  # TEST publisher key, made here
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(tmp_path / "publisher" / "test-publisher.pub", trust)
    kid, key = load_private_key(tmp_path / "publisher" / "test-publisher.key")
    raw = build_package(
        ecu_name="EGS", ecu_address=0x18, version="12.05.00",
        segments=[(0x80000, image("12.05.00", 256 * 1024))], key=key, kid=kid,
        sequence=SequenceParams(max_block_length=0x402),
    )  # fmt: skip
    factory, owner = shop["factory"], shop["owner"]
    store = PackageStore(
        factory, tmp_path / "portal-store", load_public_keys(trust), shop["signer"].kid,
        shop["signer"].key,
    )  # fmt: skip
    sha = store.add(io.BytesIO(raw), "egs-12.05.00.vcipkg").sha256
    assert [p.sha256 for p in store.list({"EGS": 0x18})] == [sha]

    sim = start_sim("--battery", "13.6")
    env = gateway_env(box, broker)
    env["VCI_SECURITY_PUBLISHER_KEYS_DIR"] = str(trust)
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    remote = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(remote, BOX)
        with factory() as db, db.begin():  # the shop's workshop owns BOX
            sid = open_session(db, owner, BOX).id
        credit.buy_ticket(factory, owner, owner.workshop_id, tariff="basic-1d", device=BOX,
                          signer=shop["signer"], seller=shop["seller"])  # fmt: skip

        async def run() -> int:
            cfg = WebConfig(factory, shop["signer"], shop["seller"])
            server = TestServer(make_app(cfg, packages=store), host="127.0.0.1")
            await server.start_server()
            try:
                service = SessionService(factory, remote, packages=store,
                                         package_url=str(server.make_url("/")))  # fmt: skip
                identify = service.start(owner, BOX, sid, "identify", None, {})
                await asyncio.to_thread(service.wait, identify, 120)
                with factory() as db:  # the session page lists the store's package for the EGS
                    jobs = jobs_of(db, sid)
                assert car_ecus(jobs) is not None and car_ecus(jobs)["EGS"] == 0x18  # type: ignore[index]
                listed = store_section(service, jobs, "/base", "csrf")
                assert sha[:16] in listed and 'action="/base/store-packages"' in listed
                job_id = service.program_from_store(owner, BOX, sid, sha)
                await asyncio.to_thread(service.wait, job_id, 300)
                return job_id
            finally:
                await server.close()

        job_id = asyncio.run(run())
        with factory() as db:
            job = db.get(RemoteJob, job_id)
            assert job is not None
            assert (job.state, job.kind, job.ecu) == ("done", "programming", "EGS"), job.summary
            assert job.purchase_id is not None  # the workshop's ticket, chosen as for every job
            assert json.loads(job.params) == {"package": f"egs-12.05.00-{sha[:12]}.vcipkg"}
        kept = box.root / "state" / "packages" / f"egs-12.05.00-{sha[:12]}.vcipkg"
        assert kept.read_bytes() == raw
        egs = sim.state()["ecus"]["EGS"]
        assert egs["region"]["valid"] and egs["sw_version"] == "12.05.00"
    finally:
        remote.close()
        gateway.stop()
