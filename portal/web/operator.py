"""The portal operator's pages: every workshop with its credit, disabling and enabling one, and
booking a received bank transfer to its credit. Thin over portal/accounts.py and credit.py; the
operator's role is declared per route and enforced by portal/web/guard.py."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from aiohttp import web
from sqlalchemy.orm import Session

from firmware_py.errors import PaymentError, PortalError
from firmware_py.i18n import N_
from portal import accounts, credit
from portal.db.models import Workshop
from portal.web.guard import Need, actor, csrf, in_db, lang, object_id, page, requires, text_of
from portal.web.html import Markup, field, join, post_form, render, table

routes = web.RouteTableDef()


def _cents(text: str) -> int:
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation as err:
        raise _not_an_amount(text) from err
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise _not_an_amount(text)
    return int(value * 100)


def _not_an_amount(text: str) -> PaymentError:
    return PaymentError(N_("{text} is not an amount in EUR"), values={"text": repr(text[:20])},
                        hint=N_("e.g. 250.00"))  # fmt: skip


def _workshops(request: web.Request, session: Session) -> Markup:
    who, token = actor(request), csrf(request)
    reader = lang(request)
    _ = reader.gettext
    rows = []
    for w in accounts.workshops(session, who):
        switch = "disable" if w.enabled else "enable"
        top_up = join([
            field("EUR", "amount", inputmode="decimal", size="8"),
            field(_("Bank reference"), "reference", size="18"),
        ])  # fmt: skip
        rows.append((
            w.id, render("{name}<br>{street}, {postcode} {city}, {country}", name=w.name,
                         street=w.street, postcode=w.postcode, city=w.city, country=w.country),
            w.vat_id, _("enabled") if w.enabled else _("DISABLED"),
            reader.money(credit.balance(session, who, w.id)),
            join([
                post_form(f"/operator/workshops/{w.id}/{switch}", token, Markup(""),
                          _("Disable") if w.enabled else _("Enable"), "inline"),
                post_form(f"/operator/workshops/{w.id}/top-up", token, top_up,
                          _("Book bank transfer"), "inline"),
            ]),
        ))  # fmt: skip
    return table((_("No."), _("Workshop"), _("VAT id"), _("State"), _("Credit"), ""), rows)


async def _page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    body = await in_db(request, lambda session: _workshops(request, session))
    return page(request, "Workshops", body, message=message, status=status)


@routes.get("/operator/workshops")
@requires(Need.OPERATOR)
async def workshops(request: web.Request) -> web.Response:
    return await _page(request)


def _workshop_id(request: web.Request) -> int:
    return object_id(request)


class _NoWorkshop(Exception):
    pass


async def _act(
    request: web.Request, workshop_id: int, work: Callable[[Session], object], done: str
) -> web.Response:
    def checked(session: Session) -> None:
        if session.get(Workshop, workshop_id) is None:
            raise _NoWorkshop
        work(session)

    try:
        await in_db(request, checked)
    except _NoWorkshop:
        raise web.HTTPNotFound() from None
    except PortalError as err:
        return await _page(request, err.localized(lang(request)), 400)
    return await _page(request, done)


@routes.post("/operator/workshops/{id}/disable")
@requires(Need.OPERATOR)
async def disable(request: web.Request) -> web.Response:
    workshop_id = _workshop_id(request)
    return await _act(
        request, workshop_id, lambda s: accounts.set_enabled(s, actor(request), workshop_id, False),
        lang(request).gettext("Workshop {id} is disabled; its sessions have ended.", id=workshop_id),
    )  # fmt: skip


@routes.post("/operator/workshops/{id}/enable")
@requires(Need.OPERATOR)
async def enable(request: web.Request) -> web.Response:
    workshop_id = _workshop_id(request)
    return await _act(
        request, workshop_id, lambda s: accounts.set_enabled(s, actor(request), workshop_id, True),
        lang(request).gettext("Workshop {id} is enabled.", id=workshop_id),
    )  # fmt: skip


@routes.post("/operator/workshops/{id}/top-up")
@requires(Need.OPERATOR)
async def top_up(request: web.Request) -> web.Response:
    workshop_id = _workshop_id(request)
    form = await request.post()
    reference = text_of(form, "reference")
    try:
        cents = _cents(text_of(form, "amount"))
    except PaymentError as err:
        return await _page(request, err.localized(lang(request)), 400)
    return await _act(
        request,
        workshop_id,
        lambda s: credit.BankTransfer().book(s, actor(request), workshop_id, cents, reference),
        lang(request).gettext(
            "Booked {amount} for workshop {id}.", amount=lang(request).money(cents), id=workshop_id
        ),
    )
