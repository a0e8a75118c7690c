"""The report PDF route: a finished report job's PDF for a paired tablet (its text is the report),
404 for an unknown job and for a job that is not a report; unpaired clients are refused with
every other route (test_http_security.py, ROUTES)."""

from __future__ import annotations

import asyncio
import io
import time

from pypdf import PdfReader

from tests.web.conftest import pair, run, tablet


async def _finished(s, base: str, csrf: str, kind: str) -> dict:
    async with s.post(base + "/api/jobs", json={"kind": kind}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 202, await r.text()
        job = await r.json()
    deadline = time.monotonic() + 30
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)
        async with s.get(base + f"/api/jobs/{job['id']}") as r:
            job = await r.json()
    assert job["state"] == "done", job
    return job


def test_report_pdf_of_a_finished_job(server, sim_process) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            csrf = await pair(s, base, pairing, clock)
            job = await _finished(s, base, csrf, "emissions_data")
            async with s.get(base + f"/api/jobs/{job['id']}/report.pdf") as r:
                assert r.status == 200 and r.content_type == "application/pdf"
                vin = sim_process.state()["vin"]
                assert f'filename="emissions-{vin}-' in r.headers["Content-Disposition"]
                pages = PdfReader(io.BytesIO(await r.read())).pages
                text = "\n".join(p.extract_text() for p in pages)
            assert "READY for the emissions check" in text and vin in text
            # the OBD data file's and the limit values' names, in English
            for english in ("Misfire", "Catalyst", "Engine speed", "Idle speed", "spark"):
                assert english in text, english
            async with s.get(base + f"/api/jobs/{job['id']}/report.pdf?lang=de") as r:
                pages = PdfReader(io.BytesIO(await r.read())).pages
                de = "\n".join(p.extract_text() for p in pages)
            assert "Abgasprüfung (OBD)" in de and "BEREIT für die Abgasuntersuchung" in de, de
            assert "Fahrzeugidentität (OBD Mode 09)" in de and vin in de
            # ... and in German: readiness monitors, values, limit values, the ignition type
            for german in ("Verbrennungsaussetzer", "Katalysator", "Motordrehzahl",
                           "Leerlaufdrehzahl", "Fremdzündung"):  # fmt: skip
                assert german in de, (german, de)
            assert "Misfire" not in de and "Idle speed" not in de
            other = await _finished(s, base, csrf, "read_vin")
            for jid in (other["id"], "no-such-job"):
                async with s.get(base + f"/api/jobs/{jid}/report.pdf") as r:
                    assert r.status == 404 and (await r.json())["error"] == "no_report"

    run(server, go)


def test_the_vehicle_test_report_in_the_language_asked_for_at_print_time(
    server, sim_process
) -> None:
    """One finished vehicle test, printed twice: in German with ``?lang=de`` (labels, the data
    file's fault texts, 13,60 V with a comma), in English with the tablet's Accept-Language."""

    async def go(base, pairing, clock):
        async with tablet() as s:
            csrf = await pair(s, base, pairing, clock)
            job = await _finished(s, base, csrf, "vehicle_test_report")
            texts = {}
            for query, header in (("?lang=de", "en-US"), ("", "en-US,en;q=0.9")):
                url = base + f"/api/jobs/{job['id']}/report.pdf{query}"
                async with s.get(url, headers={"Accept-Language": header}) as r:
                    assert r.status == 200, await r.text()
                    pdf = PdfReader(io.BytesIO(await r.read()))
                    texts[query] = "\n".join(p.extract_text() for p in pdf.pages)
            de, en = texts["?lang=de"], texts[""]
            assert "Fahrzeugprüfbericht" in de and "Batteriespannung" in de, de
            assert "Ladedruck zu niedrig" in de and "Fehlerspeicher" in de, de
            volts = job["result"]["data"]["battery_volts"]  # what the car reported
            assert f"{volts:.2f}".replace(".", ",") + " V" in de, de
            assert "Vehicle test report" in en and "Boost pressure too low" in en, en
            assert "Fahrzeugprüfbericht" not in en

    run(server, go)
