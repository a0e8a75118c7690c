"""The tablet's report downloads: ``GET /api/jobs/{jid}/report.pdf`` gives the report of a
finished ``emissions_data`` or ``vehicle_test_report`` job as PDF (made from the job's result,
:mod:`firmware_py.reports.pdf`, off the event loop). The page shows the same report from the
job's JSON and prints it with its print stylesheet. The PDF is in the language asked for at
print time (``?lang=de``, else the tablet's: firmware_py/web/i18n_routes.py): the report is made
again from its readings in that language. Only a paired tablet reaches these (the
app's security middleware)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

REPORT_KINDS = {"emissions_data": "emissions", "vehicle_test_report": "vehicle-test"}


def add_report_routes(app: web.Application, gateway_key: web.AppKey[Any]) -> None:
    async def report_pdf(request: web.Request) -> web.Response:
        from firmware_py.reports import emissions, test_report
        from firmware_py.reports.pdf import render_pdf
        from firmware_py.web.i18n_routes import request_language

        job = request.app[gateway_key].runner.jobs.get(request.match_info["jid"])
        if job is None or job.request.kind not in REPORT_KINDS:
            return web.json_response(
                {"error": "no_report", "message": "no report job with this id", "hint": None},
                status=404,
            )
        if job.state.value != "done" or not job.result:
            return web.json_response(
                {"error": "no_report", "message": f"the report job is {job.state.value}",
                 "hint": "Wait until it is done, or run it again"},
                status=409,
            )  # fmt: skip
        # the customer's language, chosen at print time (?lang=, else the tablet's)
        lang = request_language(request)
        again = {"vehicle_test": test_report.in_language, "emissions": emissions.in_language}
        remake = again.get(str(job.result.get("kind")))
        report = remake(job.result, lang) if remake else job.result
        pdf = await asyncio.get_running_loop().run_in_executor(None, render_pdf, report, lang)
        # the VIN is what the car sent: only its letters and digits go into the header
        vin = (
            "".join(
                c
                for c in str((job.result.get("vehicle") or {}).get("vin") or "")
                if c.isascii() and c.isalnum()
            )[:17]
            or "vehicle"
        )
        name = f"{REPORT_KINDS[job.request.kind]}-{vin}-{job.id[:8]}.pdf"
        return web.Response(
            body=pdf,
            content_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    app.router.add_get("/api/jobs/{jid}/report.pdf", report_pdf)
