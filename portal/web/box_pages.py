"""The workshop's boxes: the list (online, the car connected, software version, claimed when
and by whom, revoked), claiming a box with the device id and label code on its label, a box's
page, and revoking a box's certificate. Thin over portal/enrolment.py (the certificate, the
claim's checks and limits) and portal/boxes.py (which workshop owns a box); who may call each
route is declared with ``@requires`` and enforced by portal/web/guard.py. The remote session
pages under ``/boxes/<device>/sessions`` are portal/web/session_pages.py's."""

from __future__ import annotations

import asyncio
import logging
import subprocess

from aiohttp import web
from sqlalchemy.orm import Session

from firmware_py.errors import EnrolmentError, NotPermitted, PortalError, VciError
from firmware_py.i18n import N_, Language
from portal import boxes
from portal.db.models import Role, WorkshopBox
from portal.enrolment import Enrolment
from portal.web.guard import (
    Need,
    actor,
    config,
    csrf,
    in_db,
    lang,
    own_workshop,
    page,
    requires,
    status_of,
    text_of,
)
from portal.web.html import Markup, field, join, post_form, render, table, utc

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
NOT_SET_UP = N_(
    "Boxes cannot be claimed or revoked here yet: the portal was started without its CA. The "
    "portal's operator starts it with --pki DIR (docs/portal.md)."
)


def _status(box: WorkshopBox, reader: Language) -> str:
    _ = reader.gettext
    if box.revoked_at is not None:
        return _("revoked {time}", time=utc(box.revoked_at))
    if box.online is None:
        return _("not seen yet")
    if box.online:
        return _("online")
    return _("offline since {time}", time=utc(box.seen_at)) if box.seen_at else _("offline")


def _car(box: WorkshopBox) -> str:
    if not box.online or box.vin is None:
        return "-"
    return f"{box.vin} ({box.vehicle})" if box.vehicle else box.vin


def _claimed(reader: Language, at: int, login: str | None) -> str:
    if login is None:
        return reader.gettext("{time} by the operator", time=utc(at))
    return reader.gettext("{time} by {login}", time=utc(at), login=login)


def _claim_form(request: web.Request, values: dict[str, str]) -> Markup:
    _ = lang(request).gettext
    fields = join([
        field(_("Device id (on the box's label)"), "device", value=values.get("device", ""),
              autocomplete="off", spellcheck="false", autocapitalize="none"),
        field(_("Label code (on the box's label)"), "code", autocomplete="off",
              spellcheck="false", autocapitalize="characters"),
        field(_("Your name for the box (e.g. Bay 3)"), "label", value=values.get("label", ""),
              maxlength="100"),
    ])  # fmt: skip
    return post_form("/boxes/claim", csrf(request), fields, _("Claim the box"))


async def _list_page(
    request: web.Request, values: dict[str, str] | None = None, message: str = "",
    status: int = 200,
) -> web.Response:  # fmt: skip
    who, workshop_id = actor(request), own_workshop(request)
    reader = lang(request)
    _ = reader.gettext

    def read(session: Session) -> Markup:
        owned = boxes.owned(session, who, workshop_id)
        logins = boxes.claimed_by(session, owned)
        rows = [
            (render('<a href="/boxes/{d}">{label}</a>', d=b.device, label=b.label or b.device),
             b.device, _status(b, reader), _car(b), b.version or "-",
             _claimed(reader, b.claimed_at, logins.get(b.claimed_by or 0)))
            for b in owned
        ]  # fmt: skip
        listing = (
            table((_("Box"), _("Device id"), _("State"), _("Car"), _("Software"), _("Claimed")),
                  rows)
            if rows
            else render("<p>{t}</p>", t=_("No box yet: claim one below."))
        )  # fmt: skip
        return render("{listing}<h2>{h}</h2>{form}", listing=listing, h=_("Claim a box"),
                      form=_claim_form(request, values or {}))  # fmt: skip

    body = await in_db(request, read)
    return page(request, "Boxes", body, message=message, status=status)


@routes.get("/boxes")
@requires(Need.WORKSHOP)
async def boxes_page(request: web.Request) -> web.Response:
    return await _list_page(request)


@routes.get("/operator/boxes")
@requires(Need.OPERATOR)
async def all_boxes_page(request: web.Request) -> web.Response:
    """Every claimed box with its workshop, for the operator (who revokes from a box's page)."""
    who, reader = actor(request), lang(request)
    _ = reader.gettext

    def read(session: Session) -> Markup:
        rows = [
            (render('<a href="/boxes/{d}">{d}</a>', d=b.device), name, b.label,
             _status(b, reader), _car(b), b.version or "-", utc(b.claimed_at))
            for b, name in boxes.every_box(session, who)
        ]  # fmt: skip
        return table((_("Box"), _("Workshop"), _("Its name"), _("State"), _("Car"), _("Software"),
                      _("Claimed")), rows)  # fmt: skip

    return page(request, "Boxes of all workshops", await in_db(request, read))


@routes.get("/boxes/claim")
@requires(Need.WORKSHOP)
async def claim_page(request: web.Request) -> web.Response:
    return page(request, "Claim a box", _claim_form(request, {}))


@routes.post("/boxes/claim")
@requires(Need.WORKSHOP)
async def claim(request: web.Request) -> web.Response:
    form = await request.post()
    values = {name: text_of(form, name).strip() for name in ("device", "label")}
    code = text_of(form, "code")
    cfg, who, workshop_id = config(request), actor(request), own_workshop(request)
    if cfg.pki is None:
        return await _list_page(request, values, lang(request).gettext(NOT_SET_UP), 503)
    device = values["device"]
    enrolment = Enrolment(cfg.factory, cfg.pki)

    def record(session: Session, _cert: object) -> None:
        boxes.record_claim(session, who, workshop_id, device, values["label"])

    try:
        await asyncio.to_thread(
            lambda: enrolment.claim(device[:200], code[:200], workshop_id=workshop_id, then=record)
        )
    except EnrolmentError as err:
        return await _list_page(request, values, err.localized(lang(request)), err.status)
    except PortalError as err:
        return await _list_page(request, values, err.localized(lang(request)), status_of(err))
    log.info("box %s claimed by workshop %d", device, workshop_id)
    raise web.HTTPSeeOther(f"/boxes/{device}")


def _device(request: web.Request) -> str:
    device = request.match_info["device"]
    if len(device) > 64:
        raise web.HTTPNotFound()
    return device


@routes.get("/boxes/{device}")
@requires(Need.USER)
async def box_page(request: web.Request) -> web.Response:
    device, who, reader = _device(request), actor(request), lang(request)
    _ = reader.gettext

    def read(session: Session) -> Markup:
        box = boxes.require(session, who, device, usable=False)
        logins = boxes.claimed_by(session, [box])
        facts = table(("", ""), [
            (_("Device id"), box.device), (_("State"), _status(box, reader)), (_("Car"), _car(box)),
            (_("Software"), box.version or "-"),
            (_("Last heard of"), utc(box.seen_at)),
            (_("Claimed"), _claimed(reader, box.claimed_at, logins.get(box.claimed_by or 0))),
        ])  # fmt: skip
        actions = Markup("")
        if box.revoked_at is None:
            actions = render('<p><a href="/boxes/{d}/sessions">{t}</a></p>', d=device,
                             t=_("Remote session"))  # fmt: skip
            if who.role in (Role.OWNER, Role.OPERATOR):
                actions = join([actions, render(
                    "<h2>{h}</h2><p>{t}</p>{form}", h=_("Revoke"),
                    t=_("The box's certificate goes on the revocation list: the broker refuses "
                        "the box from then on, and it cannot be claimed again."),
                    form=post_form(f"/boxes/{device}/revoke", csrf(request),
                                   field(_("Type the device id to confirm"), "confirm",
                                         autocomplete="off"), _("Revoke the box")),
                )])  # fmt: skip
        return join([facts, actions])

    try:
        body = await in_db(request, read)
    except NotPermitted:  # another workshop's or none: the same answer
        raise web.HTTPNotFound() from None
    return page(request, _("Box {device}", device=device), body)


@routes.post("/boxes/{device}/revoke")
@requires(Need.OWNER_OR_OPERATOR)
async def revoke(request: web.Request) -> web.Response:
    device, who, cfg = _device(request), actor(request), config(request)
    _ = lang(request).gettext
    title = _("Box {device}", device=device)
    form = await request.post()
    try:  # who may see the box at all: the others get the answer of a box that does not exist
        await in_db(request, lambda session: boxes.require(session, who, device, usable=False))
    except NotPermitted:
        raise web.HTTPNotFound() from None
    if cfg.pki is None:
        return page(request, title, render("<p>{m}</p>", m=_(NOT_SET_UP)), status=503)
    if text_of(form, "confirm").strip() != device:
        return page(request, title, render('<p><a href="/boxes/{d}">{t}</a></p>', d=device,
                                           t=_("Back to the box")),
                    message=_("Type the box's device id to confirm the revocation."), status=400)  # fmt: skip
    enrolment = Enrolment(cfg.factory, cfg.pki)
    try:
        serial = await asyncio.to_thread(
            lambda: enrolment.revoke(
                device, then=lambda session: boxes.record_revocation(session, who, device)
            )
        )
    except (EnrolmentError, PortalError) as err:
        status = err.status if isinstance(err, EnrolmentError) else status_of(err)
        return page(
            request,
            title,
            render(""),
            message=err.localized(lang(request)),
            status=status,
        )
    log.info("box %s revoked (certificate %x) by user %d", device, serial, who.user_id)
    message = _("The box is revoked; the broker refuses it from now on.")
    if cfg.broker_reload is None:
        message = _("The box is revoked. The broker refuses it once it has read the revocation "
                    "list again: the portal's operator reloads it (systemctl reload mosquitto).")  # fmt: skip
    else:
        try:
            await asyncio.to_thread(cfg.broker_reload)
        except (OSError, subprocess.SubprocessError, VciError) as err:
            log.error("the broker was not told of the revocation of %s: %s", device, err)
            message = _("The box is revoked, but the broker could not be told ({error}): the "
                        "portal's operator reloads it (systemctl reload mosquitto).", error=err)  # fmt: skip
    return page(request, title, render('<p><a href="/boxes/{d}">{t}</a></p>', d=device,
                                       t=_("Back to the box")), message=message)  # fmt: skip
