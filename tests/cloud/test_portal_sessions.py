"""A technician's remote session through the portal's pages, against a real ``vci gateway`` on
the simulated car through real mosquitto: the car identified, its fault memory read with its
details, live data plotted under a ticket the portal chose from the workshop's purchases (and
refused with what to do before one was bought); every session and job recorded in the
database, and the job's progress shown by a second ``vci-portal serve`` process on the same
database."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from portal import credit
from portal.db.models import RemoteJob, RemoteSessionRecord
from portal.web.guard import WebConfig
from tests.cloud.conftest import BOX, HAVE_MOSQUITTO
from tests.portal.conftest import FAST_HASHER, PASSWORD
from tests.portal.web_client import CSRF, Browser, portal, served

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto not installed")
VIN = "WBAJA71090B123456"
OWNER = "owner1@example.com"


async def _start(browser: Browser, base: str, kind: str, **fields: str) -> tuple[int, str]:
    page = await browser.get(base)
    assert page.status == 200, page.text[:300]
    token = CSRF.search(page.text)[1]  # type: ignore[index]
    answer = await browser.post(f"{base}/jobs", {"kind": kind, **fields}, csrf=token)
    return answer.status, answer.location or answer.text


async def _until_final(browser: Browser, job_url: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await browser.get(f"{job_url}.json")
        assert answer.status == 200, answer.text[:300]
        data = json.loads(answer.text)
        if data["final"]:
            return data  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{job_url} did not end within {timeout:.0f} s")


@pytest.mark.parametrize("portal_db", ["sqlite", "postgresql"], indirect=True)
def test_identify_fault_memory_and_live_data_remotely_recorded_and_seen_by_a_second_portal(
    remote_shop: dict[str, Any], tmp_path: Path
) -> None:
    factory = remote_shop["factory"]
    cfg = WebConfig(factory, remote_shop["signer"], remote_shop["seller"], hasher=FAST_HASHER)

    async def run() -> None:
        async with portal(cfg, sessions=remote_shop["sessions"]) as (server, browsers):
            tech = Browser(server)
            browsers.append(tech)
            assert (await tech.log_in(OWNER, PASSWORD)).status == 303
            opened = await tech.post(f"/boxes/{BOX}/sessions", {},
                                     csrf=await tech.csrf(f"/boxes/{BOX}/sessions"))  # fmt: skip
            assert opened.status == 303, opened.text[:300]
            base = opened.location
            sid = int(base.rsplit("/", 1)[1])

            # the car and its ECUs: free, no ticket used
            status, job_url = await _start(tech, base, "identify")
            assert status == 303, job_url
            identified = await _until_final(tech, job_url)
            assert identified["state"] == "done", identified
            assert VIN in identified["summary"] and VIN in identified["html"]
            assert VIN in (await tech.get(base)).text  # the session knows its car now

            # the fault memory with details: status bits, snapshot and extended data
            status, job_url = await _start(tech, base, "read_fault_memory", ecu="DME",
                                           **{"b.details": "1", "p.details": "on"})  # fmt: skip
            faults = await _until_final(tech, job_url)
            assert faults["state"] == "done" and faults["summary"] == "2 faults in 1 ECUs"
            assert "Snapshot data" in faults["html"] and "Extended data" in faults["html"]
            assert '<details class="fault">' in faults["html"] and "&lt;" not in faults["html"]
            assert re.search(r"status 0x[0-9A-F]{2}: [a-z]", faults["html"]), faults["html"][:500]
            assert 'data-testid="dtc-info"' not in faults["html"]  # no repair information bought
            faults_url = job_url

            # live data needs diagnosis: refused with what to do, nothing sent or recorded
            live = {"p.interval": "0.2", "p.duration": "4", "p.values": "DME:4001, DME:4002"}
            status, text = await _start(tech, base, "read_live_data", **live)
            assert status == 400 and "Buy a ticket for this box" in text, text[:400]
            owner = remote_shop["owner"]
            bought = credit.buy_ticket(factory, owner, owner.workshop_id, tariff="basic-1d",
                                       device=BOX, signer=remote_shop["signer"],
                                       seller=remote_shop["seller"])  # fmt: skip
            # Basic includes repair information: each DTC now links to what names it, for the car
            linked = json.loads((await tech.get(f"{faults_url}.json")).text)["html"]
            assert re.search(
                r'href="/info/dtc\?code=P[0-9A-F]{4}-[0-9A-F]{2}&amp;vin=' + VIN, linked
            ), linked[:800]

            # a second portal process on the same database shows the job's progress live
            (tmp_path / "second").mkdir()
            with served(tmp_path / "second", "--db", remote_shop["url"]) as url:
                second = Browser(url)
                try:
                    assert (await second.log_in(OWNER, PASSWORD)).status == 303
                    status, job_url = await _start(tech, base, "read_live_data", **live)
                    assert status == 303, job_url
                    deadline = time.monotonic() + 30
                    while True:
                        seen = json.loads((await second.get(f"{job_url}.json")).text)
                        if any(e["type"] == "job.event" and "values" in e["body"]
                               for e in seen["events"]) or seen["final"]:  # fmt: skip
                            break
                        assert time.monotonic() < deadline, seen
                        await asyncio.sleep(0.2)
                    assert seen["state"] == "running" and not seen["final"], seen["state"]
                    done = await _until_final(second, job_url)
                finally:
                    await second.close()
            assert done["state"] == "done" and "<svg" in done["html"], done["summary"]
            assert "DME:4001" in done["html"]
            # coding with named parameters (the form the session page offers for the BDC)
            assert 'name="nv.changes.daytime_running_lights"' in (await tech.get(base)).text
            status, job_url = await _start(tech, base, "coding", ecu="BDC", **{
                "p.action": "set", "nv.changes.daytime_running_lights": "off"})  # fmt: skip
            coded = await _until_final(tech, job_url)
            assert coded["state"] == "done", coded["summary"]
            # a long live data job stopped from its page: the box ends it at once
            status, job_url = await _start(tech, base, "read_live_data", **{
                "p.interval": "0.5", "p.duration": "300"})  # fmt: skip
            deadline = time.monotonic() + 30
            while (
                "Stop the job" not in (job_page := await tech.get(job_url)).text
                or json.loads((await tech.get(f"{job_url}.json")).text)["state"] != "running"
            ):
                assert time.monotonic() < deadline, job_page.text[:300]
                await asyncio.sleep(0.2)
            stopped = await tech.post(f"{job_url}/cancel", {}, csrf=CSRF.search(job_page.text)[1])  # type: ignore[index]
            assert stopped.status == 303, stopped.text[:300]
            ended = await _until_final(tech, job_url, timeout=30)
            assert ended["state"] == "done" and " rounds in " in ended["summary"], ended["summary"]
            assert float(ended["summary"].split(" in ")[1].split()[0]) < 60
            trace = json.loads((await tech.get(f"{base}/trace.json")).text)
            assert [j["kind"] for j in trace["jobs"]] == [
                "identify", "read_fault_memory", "read_live_data", "coding", "read_live_data",
            ]  # fmt: skip
            assert len(trace["jobs"][2]["events"]) >= 5
            listed = await tech.get("/sessions")
            assert (
                VIN in listed.text and "Live data: done" in listed.text
            )  # the job kind by its name
            # the same session read in German: the portal's words, the box's data file texts
            german = await tech.get(f"{faults_url}?lang=de")
            for text in ("Fehlerspeicher lesen an DME:", "erledigt", "2 Fehler in 1 Steuergeräten",
                         "Umweltbedingungen", "Erweiterte Daten", "Ladedruck zu niedrig",
                         "Reparaturinformationen zu", "Zurück zur Sitzung"):  # fmt: skip
                assert text in german.text, (text, german.text[-3000:])
            assert "Snapshot data" not in german.text
            forms = (await tech.get(base)).text  # the choice is remembered
            for text in ("Ausführen: Fahrzeug und Steuergeräte identifizieren", "Tagfahrlicht",
                         ">aus</option>", "(unverändert)", "BDC codieren", "Intervall (s)"):  # fmt: skip
                assert text in forms, text
            assert "Fehlerspeicher lesen: erledigt" in (await tech.get("/sessions")).text
            assert '<option value="off">aus</option>' in forms  # the value's name is what is sent
            refused = await _start(tech, base, "read_live_data", **{"p.interval": "bald"})
            shown = "Intervall (s): &#x27;bald&#x27; ist keine Zahl. Sekunden zwischen den Messungen; 0,2 bis 60"
            assert refused[0] == 400 and shown in refused[1], refused[1][-700:]
            await tech.get(f"{base}?lang=en")
            return_value.extend([sid, bought.id])

    return_value: list[int] = []
    asyncio.run(run())
    sid, purchase_id = return_value
    with factory() as db:
        session = db.get(RemoteSessionRecord, sid)
        assert session is not None and (session.device, session.vin) == (BOX, VIN)
        assert session.user_id == remote_shop["owner"].user_id
        jobs = db.query(RemoteJob).filter_by(session_id=sid).order_by(RemoteJob.id).all()
        assert [(j.kind, j.state, j.purchase_id) for j in jobs] == [
            ("identify", "done", None), ("read_fault_memory", "done", None),
            ("read_live_data", "done", purchase_id), ("coding", "done", purchase_id),
            ("read_live_data", "done", purchase_id),
        ]  # fmt: skip
        assert json.loads(jobs[2].params)["values"] == ["DME:4001", "DME:4002"]
        assert all(j.ended_at and j.box_job for j in jobs)
    sim_state = remote_shop["sim"].state()["ecus"]["DME"]
    assert [d for d in sim_state["dtcs"]]  # reading cleared nothing
