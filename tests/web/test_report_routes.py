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
                text = PdfReader(io.BytesIO(await r.read())).pages[0].extract_text()
            assert "READY for the emissions check" in text and vin in text
            other = await _finished(s, base, csrf, "read_vin")
            for jid in (other["id"], "no-such-job"):
                async with s.get(base + f"/api/jobs/{jid}/report.pdf") as r:
                    assert r.status == 404 and (await r.json())["error"] == "no_report"

    run(server, go)
