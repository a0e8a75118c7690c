"""The labour-value job sheet of the repair information (``/info/jobsheet``): a form of a
vehicle's labour operations with the workshop's hourly rate, and its PDF in the language asked for
at print time (``?lang=``, else the reader's). Only for workshops whose ticket includes repair
information (portal/content/access.py)."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from firmware_py.errors import NotEntitled, NotPermitted
from firmware_py.i18n import N_
from portal import accounts
from portal.content import access, jobsheet, store
from portal.web.guard import Need, actor, in_db, lang, own_workshop, page, requires
from portal.web.html import Markup, join, render
from portal.web.info_pages import read_page, vin_of

routes = web.RouteTableDef()


def _sheet(request: web.Request, session: Session, workshop_id: int) -> tuple[Markup, Any]:
    """The job sheet form and, when operations are chosen, the sheet."""
    vin = vin_of(request)
    current = store.current(session)
    model = store.vehicle(session, vin) if vin else None
    series = model.series if model else request.query.get("series", "")
    ops = store.labour(session, series) if series else []
    chosen = set(request.query.getall("op", []))
    try:
        rate = Decimal(request.query.get("rate", "").strip().replace(",", ".") or "0")  # 95,00 too
        if not 0 <= rate <= 10_000:
            raise InvalidOperation
    except InvalidOperation:
        raise NotPermitted(
            N_("the hourly rate is not an amount"), hint=N_("Give it as 95.00")
        ) from None
    rate_cents = int(rate * 100)
    reader = lang(request)
    _ = reader.gettext
    options = join(
        render('<label class="check"><input type="checkbox" name="op" value="{c}"{sel}> {t}'
               "</label>", c=o.code, t=_("{code} {description} ({units} units)", code=o.code,
                                        description=store.labour_description(o, reader.code),
                                        units=o.work_units),
               sel=Markup(" checked") if o.code in chosen else Markup(""))
        for o in ops
    )  # fmt: skip
    form = render(
        '<form method="get" action="/info/jobsheet.pdf"><input type="hidden" name="vin" '
        'value="{vin}"><input type="hidden" name="series" value="{series}">{options}'
        '<label>{rate_label} <input name="rate" value="{rate}"></label>'
        '<button type="submit">{pdf}</button></form>',
        vin=vin or "", series=series, options=options, rate=f"{rate:.2f}" if rate else "",
        rate_label=_("Hourly rate (EUR, net)"), pdf=_("Job sheet as PDF"),
    )  # fmt: skip
    if not series:
        form = render("<p>{t}</p>", t=_("Open the job sheet from a vehicle page (a VIN)."))
    lines = tuple(
        jobsheet.Line(o.code, store.labour_description(o, reader.code), o.work_units)
        for o in ops
        if o.code in chosen
    )
    with_who = accounts.workshop_for(session, actor(request), workshop_id)
    sheet = jobsheet.JobSheet(
        workshop=f"{with_who.name}, {with_who.city}",
        vehicle=f"{vin} ({model.name})" if vin and model else series,
        lines=lines, units_per_hour=current.work_units_per_hour if current else 12,
        rate_cents=rate_cents, content=f"{current.name} {current.content_version}" if current else "-",
    )  # fmt: skip
    return form, sheet


@routes.get("/info/jobsheet")
@requires(Need.WORKSHOP)
async def jobsheet_page(request: web.Request) -> web.Response:
    workshop_id = own_workshop(request)
    return await read_page(request, "Job sheet", lambda s: _sheet(request, s, workshop_id)[0])


@routes.get("/info/jobsheet.pdf")
@requires(Need.WORKSHOP)
async def jobsheet_pdf(request: web.Request) -> web.Response:
    workshop_id, now = own_workshop(request), int(time.time())

    def make(session: Session) -> bytes:
        access.check(session, workshop_id, now)
        sheet = _sheet(request, session, workshop_id)[1]
        if not sheet.lines:
            raise NotPermitted(N_("no operation chosen"), hint=N_("Tick the operations of the job"))
        return jobsheet.render_pdf(sheet, lang(request))  # ?lang= at print time, else the reader's

    try:
        pdf = await in_db(request, make)
    except NotEntitled as err:
        return page(request, "Job sheet", render("<p>{m}</p>", m=err.localized(lang(request))),
                    status=403)  # fmt: skip
    except NotPermitted as err:
        return page(request, "Job sheet", render("<p>{m}</p>", m=err.localized(lang(request))),
                    status=400)  # fmt: skip
    return web.Response(body=pdf, content_type="application/pdf",
                        headers={"Content-Disposition": 'attachment; filename="job-sheet.pdf"'})  # fmt: skip
