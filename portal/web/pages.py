"""The workshop's shop pages: credit and purchases, buying a ticket, a purchase with its ticket,
the invoice PDF (and the stylesheet). Each handler parses its form, calls one service
(portal/credit.py) and renders the answer; who may call it is declared with ``@requires`` and
enforced by portal/web/guard.py."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from firmware_py.errors import NotPermitted, PortalError
from firmware_py.gateway.tariffs import TARIFFS
from firmware_py.i18n import N_
from portal import accounts, boxes, credit, delivery
from portal.db.models import BookingKind, WorkshopBox
from portal.invoices import price_of
from portal.web.guard import (
    Need,
    actor,
    config,
    csrf,
    in_db,
    lang,
    object_id,
    own_workshop,
    page,
    requires,
    status_of,
    text_of,
)
from portal.web.html import Markup, field, join, post_form, render, table, utc

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
CSS = (Path(__file__).parent / "static" / "portal.css").read_bytes()
BOOKING_KINDS = {
    BookingKind.TOP_UP.value: N_("top-up"),
    BookingKind.PURCHASE.value: N_("purchase"),
    BookingKind.REFUND.value: N_("refund"),
}
"""a booking's kind as the statement shows it"""


@routes.get("/static/portal.css")
@requires(Need.PUBLIC)
async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(
        body=CSS, content_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


@routes.get("/healthz")
@requires(Need.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    """For a load balancer's health check: 200 while this process reaches the database, else
    503 (the process holds no other state a request needs: docs/scaling.md)."""
    try:
        await in_db(request, lambda session: session.execute(text("SELECT 1")))
    except SQLAlchemyError as err:
        log.warning("health check: the database does not answer: %s", err)
        return web.Response(status=503, text="the database does not answer\n")
    return web.Response(text="ok\n")


@routes.get("/")
@requires(Need.USER)
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/operator/workshops" if actor(request).is_operator else "/dashboard")


@routes.get("/dashboard")
@requires(Need.WORKSHOP)
async def dashboard(request: web.Request) -> web.Response:
    who, workshop_id = actor(request), own_workshop(request)

    reader = lang(request)
    _ = reader.gettext

    def read(session: Session) -> Markup:
        workshop = accounts.workshop_for(session, who, workshop_id)
        bookings = credit.statement(session, who, workshop_id)
        bought = credit.purchases(session, who, workshop_id)
        sent = delivery.states(session, [p.id for p in bought])
        seller = config(request).seller
        return render(
            '<p>{facts}</p><p class="balance">{balance}</p><p>{top_up}</p>'
            "<h2>{h_bought}</h2>{bought}<h2>{h_bookings}</h2>{bookings}",
            facts=_("{name}, {city} (VAT id {vat})", name=workshop.name, city=workshop.city,
                    vat=workshop.vat_id),
            balance=_("Credit: {amount}",
                      amount=reader.money(credit.balance(session, who, workshop_id))),
            top_up=_("Top up by bank transfer to the portal's account {iban}; the operator books "
                     "it when it arrives.", iban=seller.iban)
            if seller and seller.iban
            else _("Top up by bank transfer to the portal's account; the operator books it when "
                   "it arrives."),
            h_bought=_("Purchases"), h_bookings=_("Bookings"),
            bought=table(
                (_("Bought"), _("Tariff"), _("Box"), _("VIN"), _("Valid"), _("Invoice"),
                 _("Delivery")),
                ((utc(p.created_at), _(TARIFFS[p.tariff].name), p.device, p.vin or "-",
                  f"{utc(p.starts_at)} - {utc(p.ends_at)}" if p.starts_at else _("one use"),
                  render('<a href="/purchases/{id}">{label}</a>', id=p.id, label=p.invoice.label),
                  "; ".join(delivery.describe(d, reader) for d in sent.get(p.id, [])) or "-")
                 for p in bought),
            ),
            bookings=table(
                (_("Booked"), _("Kind"), _("Amount"), _("Reference")),
                ((utc(b.created_at), _(BOOKING_KINDS.get(b.kind, b.kind)), reader.money(b.amount_cents),
                  b.reference)
                 for b in bookings),
            ),
        )  # fmt: skip

    return page(request, "Credit and purchases", await in_db(request, read))


def _buy_form(request: web.Request, values: dict[str, str], usable: list[WorkshopBox]) -> Markup:
    """The order form; the box is one of ``usable`` (the workshop's claimed boxes that are not
    revoked), chosen, not typed; the server checks it again (portal/credit.py)."""
    reader = lang(request)
    _ = reader.gettext
    options = join(
        render('<option value="{id}"{sel}>{text}</option>', id=t.id,
               sel=Markup(" selected") if values.get("tariff") == t.id else Markup(""),
               text=_("{tariff}: {price} + VAT", tariff=_(t.name),
                      price=reader.money(price_of(t).gross_cents)) if t.net
               else _("{tariff}: {price} incl. VAT", tariff=_(t.name),
                      price=reader.money(price_of(t).gross_cents)))
        for t in TARIFFS.values()
    )  # fmt: skip
    if not usable:
        return render('<p>{text} <a href="/boxes">{link}</a></p>',
                      text=_("The workshop has no box to buy a ticket for yet: claim one with the "
                             "device id and code on its label."),
                      link=_("Claim a box"))  # fmt: skip
    devices = join(
        render('<option value="{id}"{sel}>{id}{label}</option>', id=b.device,
               sel=Markup(" selected") if values.get("device") == b.device else Markup(""),
               label=f" ({b.label})" if b.label else "")
        for b in usable
    )  # fmt: skip
    fields = join([
        render('<label>{t} <select name="tariff">{o}</select></label>', t=_("Tariff"), o=options),
        render('<label>{t} <select name="device">{o}</select></label>', t=_("Box"), o=devices),
        field(_("VIN (optional: bind the ticket to one vehicle)"), "vin",
              value=values.get("vin", "")),
        field(_("Valid from (UTC; empty: now)"), "start", "datetime-local",
              values.get("start", "")),
    ])  # fmt: skip
    return post_form("/buy", csrf(request), fields, _("Buy from the credit"))


async def _usable_boxes(request: web.Request) -> list[WorkshopBox]:
    who, workshop_id = actor(request), own_workshop(request)

    def read(session: Session) -> list[WorkshopBox]:
        found = boxes.owned(session, who, workshop_id)
        session.expunge_all()
        return [b for b in found if b.revoked_at is None]

    return await in_db(request, read)


@routes.get("/buy")
@requires(Need.WORKSHOP)
async def buy_page(request: web.Request) -> web.Response:
    return page(request, "Buy a ticket", _buy_form(request, {}, await _usable_boxes(request)))


@routes.post("/buy")
@requires(Need.WORKSHOP)
async def buy(request: web.Request) -> web.Response:
    form = await request.post()
    values = {name: text_of(form, name).strip() for name in ("tariff", "device", "vin", "start")}
    cfg = config(request)
    seller = cfg.seller
    if seller is None:  # a fresh portal: sign-up and login work, sales wait for the seller's data
        return page(request, "Buy a ticket", _buy_form(request, values, await _usable_boxes(request)), status=503,
                    message=N_("Tickets cannot be sold yet: the portal has no seller data for "
                    "invoices. The portal's operator writes the [seller] table into portal.toml "
                    "(docs/portal.md) and restarts the portal."))  # fmt: skip
    try:
        start = None
        if values["start"]:
            try:
                start = int(datetime.fromisoformat(values["start"]).replace(tzinfo=UTC).timestamp())
            except ValueError as err:
                raise NotPermitted(N_("the start is not a date and time"),
                                   hint=N_("Give it as YYYY-MM-DDTHH:MM (UTC)")) from err  # fmt: skip
        bought = await asyncio.to_thread(
            lambda: credit.buy_ticket(
                cfg.factory, actor(request), own_workshop(request), tariff=values["tariff"],
                device=values["device"], vin=values["vin"] or None, start=start,
                signer=cfg.signer, seller=seller, language=lang(request).code,
            )
        )  # fmt: skip
    except PortalError as err:
        return page(request, "Buy a ticket", _buy_form(request, values, await _usable_boxes(request)),
                    message=err.localized(lang(request)), status=status_of(err))  # fmt: skip
    raise web.HTTPSeeOther(f"/purchases/{bought.id}")


def _object_id(request: web.Request) -> int:
    return object_id(request)


@routes.get("/purchases/{id}")
@requires(Need.WORKSHOP)
async def purchase_page(request: web.Request) -> web.Response:
    purchase_id, who, reader = _object_id(request), actor(request), lang(request)
    _ = reader.gettext

    def read(session: Session) -> Markup:
        p = credit.purchase(session, who, purchase_id)
        tariff = _(TARIFFS[p.tariff].name)
        if p.starts_at:
            valid = _("valid {start} to {end}", start=utc(p.starts_at), end=utc(p.ends_at))
        else:
            valid = _("valid for one use from its activation")
        what = (
            _("{tariff} for the box {device} and the vehicle {vin}, {valid}.", tariff=tariff,
              device=p.device, vin=p.vin, valid=valid)
            if p.vin
            else _("{tariff} for the box {device}, {valid}.", tariff=tariff, device=p.device,
                   valid=valid)
        )  # fmt: skip
        sent = delivery.states(session, [p.id]).get(p.id, [])
        return render(
            "<p>{what}</p><p>{sent}</p><p>{about}</p><p class=\"ticket\">{ticket}</p>"
            '<p><a href="/invoices/{invoice_id}.pdf">{invoice}</a></p>',
            what=what,
            sent=_("Delivery: {state}",
                   state="; ".join(delivery.describe(d, reader) for d in sent) or "-"),
            about=_("The ticket (it goes to the box over its portal link; a box without one "
                    "takes it pasted on its tickets page):"),
            ticket=p.ticket, invoice_id=p.invoice.id,
            invoice=_("Invoice {label} (PDF)", label=p.invoice.label),
        )  # fmt: skip

    try:
        body = await in_db(request, read)
    except NotPermitted:  # another workshop's or none: the same answer
        raise web.HTTPNotFound() from None
    return page(request, _("Purchase {id}", id=purchase_id), body)


@routes.get("/invoices/{id}.pdf")
@requires(Need.USER)
async def invoice_pdf(request: web.Request) -> web.Response:
    invoice_id, who = _object_id(request), actor(request)

    def read(session: Session) -> tuple[str, bytes]:
        found = credit.invoice(session, who, invoice_id)
        return found.label, found.pdf

    try:
        label, pdf = await in_db(request, read)
    except NotPermitted:
        raise web.HTTPNotFound() from None
    return web.Response(
        body=pdf, content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{label}.pdf"'},
    )  # fmt: skip
