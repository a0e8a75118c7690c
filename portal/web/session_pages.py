"""The remote-session pages: a workshop's technician opens a session on one of its boxes, runs
jobs from forms built from each job kind's typed description, follows their progress live, and
reads the results, the session log and its download; and the workshop's list of recorded
sessions. Each handler parses its input, calls portal/sessions.py and renders the answer (the
HTML is portal/web/session_view.py's); access is declared with ``@requires``.

Progress is polled: the job page's small script (static/session.js, no inline script: the CSP)
asks the job's JSON every second until the job ends; the JSON comes from the database, so any
portal process answers it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session
from yarl import URL

from firmware_py.errors import NotPermitted, PortalError
from firmware_py.gateway.job_params import JOB_KINDS
from firmware_py.i18n import N_, Language
from firmware_py.strict_json import StrictJsonError
from portal import boxes, sessions
from portal.content import access
from portal.db.models import RemoteJob, RemoteJobState, RemoteSessionRecord, User
from portal.sessions import PORTAL_KINDS, STATES, SessionService, shown_summary
from portal.web.guard import Need, actor, csrf, in_db, lang, object_id, page, requires, status_of
from portal.web.html import Markup, join, post_form, render, table, utc
from portal.web.session_packages import store_section
from portal.web.session_view import (
    coding_forms,
    ecu_from_form,
    job_form,
    params_from_form,
    result_html,
)

routes = web.RouteTableDef()
SERVICE = web.AppKey("sessions", SessionService)
SCRIPT = (Path(__file__).parent / "static" / "session.js").read_bytes()
DEVICE = r"{device:[A-Za-z0-9][A-Za-z0-9._-]{0,63}}"
ID = r"{sid:[0-9]{1,18}}"
JOB = r"{jid:[0-9]{1,18}}"
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (N_("Vehicle and ECUs"), ("identify",)),
    (N_("Fault memory"), ("read_fault_memory", "clear_fault_memory")),
    (N_("Live data"), ("read_live_data", "read_did")),
    (N_("Coding"), ("coding",)),
    (N_("Service functions"), ("service_reset", "service_history")),
    (N_("Programming"), ("programming",)),
    (N_("Reports and raw requests"), ("emissions_data", "vehicle_test_report", "raw_uds")),
)
"""the session page's sections, in the order a technician works"""


@routes.get("/static/session.js")
@requires(Need.PUBLIC)
async def script(request: web.Request) -> web.Response:
    return web.Response(body=SCRIPT, content_type="text/javascript",
                        headers={"Cache-Control": "max-age=3600"})  # fmt: skip


def _ids(request: web.Request, *names: str) -> tuple[int, ...]:
    return tuple(object_id(request, n) for n in names)


def _base(device: str, sid: int) -> str:
    return f"/boxes/{device}/sessions/{sid}"


async def _guarded(request: web.Request, work: Any) -> Any:
    """``work`` in the database; another workshop's box, session or job is a 404 (the same
    answer as none)."""
    try:
        return await in_db(request, work)
    except NotPermitted as err:
        raise web.HTTPNotFound(text=err.localized(lang(request))) from None


@routes.get("/sessions")
@requires(Need.WORKSHOP)
async def all_sessions(request: web.Request) -> web.Response:
    who = actor(request)
    _ = lang(request).gettext

    def read(db: Session) -> Markup:
        rows = []
        for s in sessions.sessions_of(db, who):
            user = db.get(User, s.user_id)
            jobs = sessions.jobs_of(db, s.id)
            rows.append((
                render('<a href="{u}">{id}</a>', u=_base(s.device, s.id), id=s.id),
                utc(s.started_at), user.name if user else "-", s.device, s.vin or "-",
                "; ".join(_("{job}: {state}", job=_(JOB_KINDS[j.kind].label), state=_(STATES[j.state]))
                          for j in jobs[-5:]) or _("no jobs"),
            ))  # fmt: skip
        return table((_("Session"), _("Started"), _("Technician"), _("Box"), _("VIN"),
                      _("Last jobs")), rows)  # fmt: skip

    return page(request, "Remote sessions", await in_db(request, read))


@routes.get(f"/boxes/{DEVICE}/sessions")
@requires(Need.WORKSHOP)
async def box_sessions(request: web.Request) -> web.Response:
    device, who = request.match_info["device"], actor(request)
    _ = lang(request).gettext

    def read(db: Session) -> Markup:
        boxes.require(db, who, device, usable=False)
        mine = [s for s in sessions.sessions_of(db, who) if s.device == device]
        rows = ((render('<a href="{u}">{id}</a>', u=_base(device, s.id), id=s.id),
                 utc(s.started_at), s.vin or "-") for s in mine)  # fmt: skip
        start = post_form(f"/boxes/{device}/sessions", csrf(request), Markup(""),
                          _("Start a remote session"))  # fmt: skip
        return join([start, table((_("Session"), _("Started"), _("VIN")), rows)])

    return page(request, _("Remote sessions on {device}", device=device),
                await _guarded(request, read))  # fmt: skip


@routes.post(f"/boxes/{DEVICE}/sessions")
@requires(Need.WORKSHOP)
async def start_session(request: web.Request) -> web.Response:
    device, who = request.match_info["device"], actor(request)

    def create(db: Session) -> int:
        return sessions.open_session(db, who, device).id

    sid = await _guarded(request, create)
    raise web.HTTPSeeOther(_base(device, sid))


def _job_rows(device: str, sid: int, jobs: list[RemoteJob], reader: Language) -> Markup:
    _ = reader.gettext
    return table((_("Job"), _("Started"), _("What"), _("ECU"), _("State"), _("Summary")), (
        (render('<a href="{u}/jobs/{id}">{id}</a>', u=_base(device, sid), id=j.id),
         utc(j.created_at), _(JOB_KINDS[j.kind].label), j.ecu or "-", _(STATES[j.state]),
         shown_summary(j, reader))
        for j in reversed(jobs)
    ))  # fmt: skip


@routes.get(f"/boxes/{DEVICE}/sessions/{ID}")
@requires(Need.WORKSHOP)
async def session_page(request: web.Request) -> web.Response:
    device, who, reader = request.match_info["device"], actor(request), lang(request)
    _ = reader.gettext
    (sid,) = _ids(request, "sid")

    def read(db: Session) -> Markup:
        s = sessions.get_session(db, who, device, sid)
        jobs = sessions.jobs_of(db, s.id)
        sessions.settle_overdue(db, jobs, time.time())
        action = f"{_base(device, sid)}/jobs"
        sections = join(
            render('<section><h2>{title}</h2>{forms}{more}</section>', title=_(title), forms=join(
                job_form(JOB_KINDS[k], action, csrf(request), reader)
                for k in kinds if k in PORTAL_KINDS),
                more=coding_forms(action, csrf(request), reader) if "coding" in kinds else "")
            for title, kinds in GROUPS
        )  # fmt: skip
        return render(
            '<p>{facts} <a href="{base}/trace.json">{log}</a>, <a href="{base}/box-trace.pcap">'
            "{trace}</a></p><h2>{h_jobs}</h2>{jobs}{sections}{store}",
            facts=_("Box {device}, vehicle {vin}; started {at}.", device=device,
                    vin=s.vin or _("not identified yet"), at=utc(s.started_at)),
            log=_("Download the session log"), trace=_("the box's vehicle trace (pcap)"),
            h_jobs=_("Jobs"),
            base=_base(device, sid), jobs=_job_rows(device, sid, jobs, reader), sections=sections,
            store=store_section(request.app[SERVICE], jobs, _base(device, sid), csrf(request),
                                reader),
        )  # fmt: skip

    return page(request, _("Remote session {id}", id=sid), await _guarded(request, read))


@routes.post(f"/boxes/{DEVICE}/sessions/{ID}/jobs")
@requires(Need.WORKSHOP)
async def start_job(request: web.Request) -> web.Response:
    device, who, reader = request.match_info["device"], actor(request), lang(request)
    (sid,) = _ids(request, "sid")
    form = await request.post()
    kind = form.get("kind")
    if not isinstance(kind, str) or kind not in PORTAL_KINDS:
        raise web.HTTPBadRequest(text=reader.gettext("choose a job of the session page"))
    service = request.app[SERVICE]
    try:
        params = params_from_form(JOB_KINDS[kind], form, reader)
        ecu = ecu_from_form(form)

        def begin(db: Session) -> None:  # 404 for another workshop's box or session first
            boxes.require(db, who, device)
            sessions.get_session(db, who, device, sid)

        await _guarded(request, begin)
        jid = await asyncio.to_thread(service.start, who, device, sid, kind, ecu, params)
    except (PortalError, StrictJsonError) as err:
        status = status_of(err) if isinstance(err, PortalError) else 400
        back = render('<p><a href="{u}">{t}</a></p>', u=_base(device, sid),
                      t=reader.gettext("Back to the session"))  # fmt: skip
        return page(
            request,
            "The job was not started",
            back,
            message=err.localized(reader),
            status=status,
        )
    raise web.HTTPSeeOther(f"{_base(device, sid)}/jobs/{jid}")


def _job_json(db: Session, job: RemoteJob, after: int, reader: Language) -> dict[str, Any]:
    events = sessions.events_of(db, job.id, after)
    final = job.state not in (RemoteJobState.SENT.value, RemoteJobState.RUNNING.value)
    bodies = [json.loads(e.body) for e in sessions.events_of(db, job.id, 0, sessions.MAX_EVENTS)
              if e.type == "job.event"]  # fmt: skip
    result = json.loads(job.result) if job.result else None
    box_job = result if isinstance(result, dict) and "state" in result else None
    dtc_info = None
    if job.kind == "read_fault_memory" and access.entitled_until(
        db, job.workshop_id, int(time.time())
    ):  # a DTC links to what names it, for this car, when the workshop may read it
        vin = db.get(RemoteSessionRecord, job.session_id)
        query = {"vin": vin.vin} if vin is not None and vin.vin else {}
        dtc_info = lambda code: str(URL("/info/dtc").with_query({"code": code, **query}))  # noqa: E731
    return {
        "id": job.id, "kind": job.kind, "state": job.state, "progress": job.progress,
        "summary": shown_summary(job, reader), "final": final,
        "state_text": reader.gettext(STATES[job.state]),
        "events": [{"id": e.id, "at": e.at, "type": e.type, "body": json.loads(e.body)}
                   for e in events],
        "html": str(result_html(job.kind, box_job, bodies, reader, dtc_info)),
    }  # fmt: skip


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


@routes.get(f"/boxes/{DEVICE}/sessions/{ID}/jobs/{JOB}")
@requires(Need.WORKSHOP)
async def job_page(request: web.Request) -> web.Response:
    device, who, reader = request.match_info["device"], actor(request), lang(request)
    _ = reader.gettext
    sid, jid = _ids(request, "sid", "jid")

    def read(db: Session) -> Markup:
        sessions.get_session(db, who, device, sid)
        job = sessions.get_job(db, who, device, jid)
        if job.session_id != sid:
            raise NotPermitted(N_("not a job of this session"))
        view = _job_json(db, job, 0, reader)
        log_rows = ((_clock(e["at"]), e["type"], json.dumps(e["body"])[:300])
                    for e in view["events"])  # fmt: skip
        return render(
            '<p><a href="{base}">{back}</a></p>'
            '<div id="job" data-url="{base}/jobs/{id}.json" data-final="{final}">'
            '<p>{what} <strong id="job-state">{state}</strong> '
            '<progress id="job-progress" max="100" value="{progress}"></progress> '
            '<span id="job-summary">{summary}</span></p>{stop}<div id="job-result">{result}</div>'
            "</div><h2>{h_log}</h2>{log}"
            '<script src="/static/session.js"></script>',
            base=_base(device, sid), id=job.id, final="1" if view["final"] else "0",
            back=_("Back to the session"), h_log=_("Log"),
            what=_("{job} on {ecu}:", job=_(JOB_KINDS[job.kind].label), ecu=job.ecu)
            if job.ecu else _("{job} on the vehicle:", job=_(JOB_KINDS[job.kind].label)),
            state=view["state_text"], progress=job.progress or 0, summary=view["summary"],
            result=Markup(view["html"]),
            log=table((_("At"), _("Message"), _("Body")), log_rows),
            stop=render('<div id="job-stop">{f}</div>', f=post_form(
                f"{_base(device, sid)}/jobs/{job.id}/cancel", csrf(request), Markup(""),
                _("Stop the job"), "inline")) if not view["final"] else "",
        )  # fmt: skip

    return page(request, _("Job {id}", id=jid), await _guarded(request, read))


@routes.post(f"/boxes/{DEVICE}/sessions/{ID}/jobs/{JOB}/cancel")
@requires(Need.WORKSHOP)
async def cancel_job(request: web.Request) -> web.Response:
    device, who, reader = request.match_info["device"], actor(request), lang(request)
    sid, jid = _ids(request, "sid", "jid")
    service = request.app[SERVICE]

    def owned(db: Session) -> None:  # 404 for another workshop's job, as for none
        sessions.get_session(db, who, device, sid)
        if sessions.get_job(db, who, device, jid).session_id != sid:
            raise NotPermitted(N_("not a job of this session"))

    await _guarded(request, owned)
    try:
        await asyncio.to_thread(service.cancel, who, device, sid, jid)
    except NotPermitted as err:
        back = render('<p><a href="{u}/jobs/{j}">{t}</a></p>', u=_base(device, sid), j=jid,
                      t=reader.gettext("Back to the job"))  # fmt: skip
        return page(
            request,
            "The job was not stopped",
            back,
            message=err.localized(reader),
            status=409,
        )
    raise web.HTTPSeeOther(f"{_base(device, sid)}/jobs/{jid}")


@routes.get(f"/boxes/{DEVICE}/sessions/{ID}/jobs/{JOB}.json")
@requires(Need.WORKSHOP)
async def job_json(request: web.Request) -> web.Response:
    device, who = request.match_info["device"], actor(request)
    sid, jid = _ids(request, "sid", "jid")
    after_text = request.query.get("after", "0")
    after = int(after_text) if re.fullmatch(r"[0-9]{1,17}", after_text) else 0

    def read(db: Session) -> dict[str, Any]:
        sessions.get_session(db, who, device, sid)
        job = sessions.get_job(db, who, device, jid)
        if job.session_id != sid:
            raise NotPermitted(N_("not a job of this session"))
        return _job_json(db, job, after, lang(request))

    return web.json_response(await _guarded(request, read))


@routes.get(f"/boxes/{DEVICE}/sessions/{ID}/trace.json")
@requires(Need.WORKSHOP)
async def trace(request: web.Request) -> web.Response:
    device, who = request.match_info["device"], actor(request)
    (sid,) = _ids(request, "sid")
    log = await _guarded(request, lambda db: sessions.trace_of(db, who, device, sid))
    return web.Response(
        text=json.dumps(log, indent=1), content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="session-{device}-{sid}.json"'},
    )  # fmt: skip
