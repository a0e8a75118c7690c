"""Data protection on the web (docs/data-protection.md): one vehicle's data exported or erased on
its owner's request (portal/vehicle_data.py: the workshop's owner for its own rows, the operator
for every workshop's), a workshop's whole data as one archive, and the deletion of its account
(portal/workshop_data.py: its owner with the password typed again, or the operator with the
workshop's VAT id typed again). Thin over those modules; who may call each route is declared
with ``@requires`` and enforced by portal/web/guard.py."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware_py.errors import NotPermitted, PortalError, SecondFactorNeeded, VciError
from firmware_py.i18n import N_
from portal import accounts, login, vehicle_data, workshop_data
from portal.db.models import User, Workshop
from portal.web.guard import (
    SESSION_COOKIE,
    Need,
    actor,
    config,
    csrf,
    hasher_kw,
    in_db,
    lang,
    object_id,
    page,
    requires,
    status_of,
    text_of,
)
from portal.web.html import Markup, field, join, post_form, render, table

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
TITLE = N_("Data protection")


def _vehicle_forms(request: web.Request) -> Markup:
    token, _ = csrf(request), lang(request).gettext
    vin = field(_("VIN"), "vin", minlength="17", maxlength="17", autocomplete="off")
    return render(
        "<h2>{h}</h2><p>{scope} {kept}</p>{export}{erase}",
        h=_("A vehicle's data, on its owner's request"),
        scope=_("Your workshop's records of the car: remote sessions, their jobs and results.")
        if not actor(request).is_operator else _("Every workshop's records of the car."),
        kept=_("Purchases and invoices that name the VIN are kept for 10 years (§147 AO, §14b "
               "UStG). What the box keeps is erased on the box (vci privacy)."),
        export=post_form("/privacy/vehicle/export", token, vin, _("Export (zip)")),
        erase=post_form("/privacy/vehicle/erase", token,
                        join([vin, field(_("Asked for by"), "asked_by", required="required")]),
                        _("Erase, and record the erasure")),
    )  # fmt: skip


def _workshop_part(request: web.Request, workshop: Workshop) -> Markup:
    token, _ = csrf(request), lang(request).gettext
    if actor(request).is_operator:
        confirm = field(_("Its VAT id, to confirm"), "confirm", autocomplete="off")
    else:
        confirm = field(_("Your password"), "password", "password",
                        autocomplete="current-password")  # fmt: skip
    return render(
        '<p><a href="/privacy/workshops/{id}/export.zip">{t}</a></p>{form}',
        id=workshop.id, t=_("All data of {name} (zip)", name=workshop.name),
        form=post_form(f"/privacy/workshops/{workshop.id}/delete", token, confirm,
                       _("Delete the account")),
    )  # fmt: skip


def _body(request: web.Request, session: Session) -> Markup:
    who, _ = actor(request), lang(request).gettext
    parts = [_vehicle_forms(request)]
    if who.is_operator:
        rows = [(w.id, w.name, w.vat_id, _workshop_part(request, w))
                for w in accounts.workshops(session, who) if w.deleted_at is None]  # fmt: skip
        parts.append(render("<h2>{h}</h2><p>{kept}</p>{t}", h=_("Workshops' data and accounts"),
                            kept=_(workshop_data.KEPT_BY_LAW),
                            t=table((_("No."), _("Workshop"), _("VAT id"), ""), rows)))  # fmt: skip
    else:
        workshop = accounts.workshop_for(session, who, who.workshop_id or 0)
        parts.append(render(
            "<h2>{h}</h2>{part}<p>{t} {kept}</p>", h=_("Your workshop's data"),
            t=_("Deleting the account ends every login of the workshop's users, revokes its boxes "
                "and deletes its remote sessions."),
            part=_workshop_part(request, workshop), kept=_(workshop_data.KEPT_BY_LAW),
        ))  # fmt: skip
    return join(parts)


async def _page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    body = await in_db(request, lambda session: _body(request, session))
    return page(request, TITLE, body, message=message, status=status)


@routes.get("/privacy")
@requires(Need.OWNER_OR_OPERATOR)
async def privacy_page(request: web.Request) -> web.Response:
    return await _page(request)


def _scope(request: web.Request) -> int | None:
    """The workshop whose rows the acting user exports or erases (None: every workshop's)."""
    who = actor(request)
    return None if who.is_operator else who.workshop_id


@routes.post("/privacy/vehicle/export")
@requires(Need.OWNER_OR_OPERATOR)
async def vehicle_export(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        data = await in_db(request, lambda session: vehicle_data.export(
            session, text_of(form, "vin"), _scope(request), time.time()))  # fmt: skip
    except VciError as err:
        return await _page(request, err.localized(lang(request)), 400)
    return web.Response(
        body=json.dumps(data, indent=1, default=str).encode(), content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="vehicle-data-{data["vin"]}.json"'},
    )  # fmt: skip


@routes.post("/privacy/vehicle/erase")
@requires(Need.OWNER_OR_OPERATOR)
async def vehicle_erase(request: web.Request) -> web.Response:
    form = await request.post()
    asked_by = text_of(form, "asked_by").strip()
    if not asked_by:
        return await _page(request, N_("Write down who asked for the erasure."), 400)

    who = actor(request)
    done_by = await in_db(
        request, lambda session: session.scalar(select(User.login).where(User.id == who.user_id))
    )
    try:  # its own transactions, and on SQLite VACUUM: outside any session of ours
        result = await asyncio.to_thread(
            lambda: vehicle_data.erase(
                config(request).factory, text_of(form, "vin"), asked_by=asked_by,
                done_by=done_by or str(who.user_id), workshop_id=_scope(request),
            )
        )  # fmt: skip
    except VciError as err:
        return await _page(request, err.localized(lang(request)), 400)
    _ = lang(request).gettext
    deleted = result["deleted"]
    assert isinstance(deleted, dict)
    done = ", ".join(f"{n} {k}" for k, n in deleted.items() if n) or _("nothing was found")
    if result["remaining"]:
        tables = ", ".join(result["remaining"])  # type: ignore[arg-type]
        return await _page(request, _("Erased {done}, but the VIN is still named in {tables}: "
                                      "tell the portal's operator.", done=done, tables=tables),
                           500)  # fmt: skip
    return await _page(request, _("Erased: {done}. The erasure is recorded (without the VIN). "
                                  "Purchases and invoices that name it are kept for 10 years.",
                                  done=done))  # fmt: skip


def _workshop(request: web.Request, session: Session) -> Workshop:
    """The path's workshop if the acting user may act on it, else 404 (the same for none)."""
    try:
        workshop = accounts.workshop_for(session, actor(request), object_id(request))
    except NotPermitted:
        raise web.HTTPNotFound() from None
    if workshop.deleted_at is not None:
        raise web.HTTPNotFound()
    return workshop


@routes.get("/privacy/workshops/{id}/export.zip")
@requires(Need.OWNER_OR_OPERATOR)
async def workshop_export(request: web.Request) -> web.Response:
    def export(session: Session) -> bytes:
        workshop = _workshop(request, session)
        return workshop_data.export(session, actor(request), workshop.id, time.time())

    blob = await in_db(request, export)
    name = f"workshop-data-{object_id(request)}.zip"
    return web.Response(body=blob, content_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


@routes.post("/privacy/workshops/{id}/delete")
@requires(Need.OWNER_OR_OPERATOR)
async def workshop_delete(request: web.Request) -> web.Response:
    form = await request.post()
    who, cfg = actor(request), config(request)

    def check(session: Session) -> int:
        workshop = _workshop(request, session)
        if who.is_operator:
            if text_of(form, "confirm").replace(" ", "").upper() != workshop.vat_id:
                raise NotPermitted(N_("the VAT id typed does not match the workshop's"),
                                   hint=N_("Type the workshop's VAT id to confirm"))  # fmt: skip
            return workshop.id
        login_name = session.scalar(select(User.login).where(User.id == who.user_id))
        session.rollback()  # authenticate runs its own transactions
        try:  # a wrong password counts against the login's lock-out, as at the login
            login.authenticate(session, login_name or "", text_of(form, "password"),
                               **hasher_kw(request))  # fmt: skip
        except SecondFactorNeeded:
            pass  # the password is right; the session already passed the second factor
        return workshop.id

    try:
        workshop_id = await in_db(request, check)
        done = await asyncio.to_thread(
            workshop_data.delete_account, cfg.factory, who, workshop_id,
            revoke_box=workshop_data.pki_revoker(cfg.factory, cfg.pki),
        )  # fmt: skip
    except PortalError as err:
        return await _page(request, err.localized(lang(request)), status_of(err))
    except VciError as err:  # a remote job still running
        return await _page(request, err.localized(lang(request)), 409)
    if done["boxes_revoked"] and cfg.broker_reload is not None:
        try:
            await asyncio.to_thread(cfg.broker_reload)
        except Exception as err:  # the deletion is done; the operator reloads the broker
            log.error("the broker was not told of the revoked boxes: %s", err)
    log.info("workshop %d deleted by user %d", workshop_id, who.user_id)
    _ = lang(request).gettext
    message = _("The workshop's account is deleted. {kept}", kept=_(workshop_data.KEPT_BY_LAW))
    if done["unlisted"]:
        message += " " + _("Its boxes' certificates are still to be put on the broker's "
                           "revocation list by the portal's operator: {devices}",
                           devices=", ".join(done["unlisted"]))  # fmt: skip
    if who.is_operator:
        return await _page(request, message)
    out = page(request, TITLE, render("<p>{m}</p>", m=message))
    out.del_cookie(SESSION_COOKIE, path="/")
    return out
