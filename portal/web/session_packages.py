"""Programming from the portal's package store in a remote session (portal/packages.py): the
session page's list of the store's packages that fit the car's ECUs (as the session's last
identification found them), and the form's route, which has the box download the package and
program it (:meth:`portal.sessions.SessionService.program_from_store`)."""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp import web
from sqlalchemy.orm import Session

from firmware_py.errors import PortalError
from firmware_py.i18n import Language
from portal import boxes, sessions
from portal.db.models import RemoteJob, RemoteJobState
from portal.i18n import portal_language
from portal.sessions import SessionService
from portal.web.guard import Need, actor, lang, page, requires, status_of
from portal.web.html import Markup, post_form, render, table

routes = web.RouteTableDef()
DEVICE = r"{device:[A-Za-z0-9][A-Za-z0-9._-]{0,63}}"
ID = r"{sid:[0-9]{1,18}}"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def car_ecus(jobs: list[RemoteJob]) -> dict[str, int] | None:
    """The ECUs (name -> address) that answered the session's last identification; None before
    the car was identified."""
    for job in reversed(jobs):
        if job.kind == "identify" and job.state == RemoteJobState.DONE.value and job.result:
            result = json.loads(job.result).get("result") or {}
            return {
                str(e["name"]): int(e["address"])
                for e in result.get("ecus") or []
                if isinstance(e, dict) and e.get("present") and "name" in e and "address" in e
            }
    return None


def store_section(
    service: SessionService,
    jobs: list[RemoteJob],
    base: str,
    token: str,
    reader: Language | None = None,
) -> Markup:
    """The session page's "from the package store" section (empty without a store), in the
    reader's language (the packages' names, versions and hashes stay as the store keeps them)."""
    if service.packages is None:
        return Markup("")
    reader = reader or portal_language(None)
    _ = reader.gettext
    ecus = car_ecus(jobs)
    if ecus is None:
        body = render(
            "<p>{t}</p>", t=_("Identify the car first: the store's packages for its ECUs are "
                             "listed then.")
        )  # fmt: skip
    else:
        fitting = service.packages.list(ecus)
        rows = (
            (p.ecu, p.version, ", ".join(p.sw_versions) or "-", reader.number(p.size), p.sha256[:16],
             post_form(f"{base}/store-packages", token,
                       render('<input type="hidden" name="sha256" value="{s}">', s=p.sha256),
                       _("Program"), "job"))
            for p in fitting
        )  # fmt: skip
        body = (
            table((_("ECU"), _("Version"), _("Expects"), _("Bytes"), "SHA-256", ""), rows)
            if fitting
            else render("<p>{t}</p>", t=_("The store has no package for this car's ECUs."))
        )
    return render(
        "<section><h2>{h}</h2>{b}</section>",
        h=_("Programming with a package from the store"),
        b=body,
    )


@routes.post(f"/boxes/{DEVICE}/sessions/{ID}/store-packages")
@requires(Need.WORKSHOP)
async def program_from_store(request: web.Request) -> web.Response:
    from portal.web.session_pages import SERVICE, _base, _guarded, _ids

    device, who = request.match_info["device"], actor(request)
    (sid,) = _ids(request, "sid")
    sha256 = (await request.post()).get("sha256")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise web.HTTPBadRequest(text=lang(request).gettext("choose a package of the session page"))
    service = request.app[SERVICE]

    def begin(db: Session) -> None:  # 404 for another workshop's box or session first
        boxes.require(db, who, device)
        sessions.get_session(db, who, device, sid)

    try:
        await _guarded(request, begin)
        jid = await asyncio.to_thread(service.program_from_store, who, device, sid, sha256)
    except PortalError as err:
        back = render('<p><a href="{u}">{t}</a></p>', u=_base(device, sid),
                      t=lang(request).gettext("Back to the session"))  # fmt: skip
        return page(
            request,
            "The job was not started",
            back,
            message=err.localized(lang(request)),
            status=status_of(err),
        )
    raise web.HTTPSeeOther(f"{_base(device, sid)}/jobs/{jid}")
