"""Prices with VAT, invoice numbers, and the invoice PDF of a purchase.

The tariff table (firmware_py/gateway/tariffs.py) gives each price in EUR as the workshop pays
it, VAT included, except tariffs marked ``net`` (the help desk request) whose price is net. VAT is
19 % (German standard rate). Amounts are integer cents, rounded half up once (net from gross, or
VAT from net); net + VAT = gross exactly.

Invoice numbers run per calendar year (UTC) without gaps: ``2026-000001``, ``2026-000002`` ...
The counter moves in the purchase's own transaction, so a refused or failed purchase uses no
number. The PDF is made once with reportlab and kept in the database as issued.
"""

from __future__ import annotations

import io
import time
import tomllib
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from firmware_py.errors import ConfigError
from firmware_py.gateway.tariffs import Tariff
from firmware_py.i18n import Language
from portal.db.models import InvoiceCounter
from portal.i18n import portal_language as language

VAT_PERCENT = 19


@dataclass(frozen=True)
class Price:
    net_cents: int
    vat_cents: int

    @property
    def gross_cents(self) -> int:
        return self.net_cents + self.vat_cents


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_of(tariff: Tariff) -> Price:
    """The tariff's price split into net and VAT, in cents."""
    cents = _half_up(Decimal(str(tariff.price_eur)) * 100)
    if tariff.net:
        return Price(cents, _half_up(Decimal(cents) * VAT_PERCENT / 100))
    net = _half_up(Decimal(cents) * 100 / (100 + VAT_PERCENT))
    return Price(net, cents - net)


def euro(cents: int) -> str:
    """``1,234.50 EUR``: an amount as the CLI and the English texts write it (the one format,
    firmware_py/i18n.py ``Language.money``; a page or a document uses its reader's language)."""
    return language(None).money(cents)


@dataclass(frozen=True)
class Party:
    """Seller or buyer as the invoice names them."""

    name: str
    street: str
    postcode: str
    city: str
    country: str
    vat_id: str


@dataclass(frozen=True)
class Seller(Party):
    """The portal's operator, who sells the tickets: ``[seller]`` in the portal's config file
    (``<state dir>/portal.toml`` or ``--config``)."""

    email: str = ""
    iban: str = ""
    """where workshops transfer their top-ups to (printed on every invoice)"""

    @classmethod
    def load(cls, path: Path) -> Seller:
        try:
            table = tomllib.loads(path.read_text())["seller"]
        except FileNotFoundError as err:
            raise ConfigError(
                f"{path} does not exist: invoices need the seller's data",
                hint="Write a [seller] table with name, street, postcode, city, country, vat_id "
                "(and email, iban) there (docs/portal.md)",
            ) from err
        except (KeyError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(
                f"{path} has no valid [seller] table ({err})", hint="See docs/portal.md"
            ) from err
        names = {f.name for f in fields(cls)}
        missing = [
            n
            for n in ("name", "street", "postcode", "city", "country", "vat_id")
            if not table.get(n)
        ]
        unknown = sorted(set(table) - names)
        if missing or unknown:
            raise ConfigError(
                f"{path} [seller]: missing {', '.join(missing) or 'nothing'}, unknown "
                f"{', '.join(unknown) or 'nothing'}",
                hint="See docs/portal.md for the fields",
            )
        return cls(**{k: str(v) for k, v in table.items()})


@dataclass(frozen=True)
class InvoiceLine:
    tariff: Tariff
    device: str
    vin: str | None
    starts_at: int | None
    ends_at: int | None


def next_invoice_number(session: Session, year: int) -> int:
    """The next number of ``year``, inside the caller's transaction (the counter's row stays
    locked until it ends, so concurrent purchases take consecutive numbers)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(InvoiceCounter)
        .values(year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    return session.execute(
        update(InvoiceCounter)
        .where(InvoiceCounter.year == year)
        .values(last_number=InvoiceCounter.last_number + 1)
        .returning(InvoiceCounter.last_number)
    ).scalar_one()


def _validity(tariff: Tariff, lang: Language) -> str:
    if tariff.duration is None:
        return lang.ngettext("{n} use", "{n} uses", tariff.uses or 0)
    hours = tariff.duration // 3600
    if hours % 24 == 0 and hours >= 24:
        return lang.ngettext("{n} day", "{n} days", hours // 24)
    return lang.ngettext("{n} hour", "{n} hours", hours)


def render_pdf(
    seller: Seller,
    buyer: Party,
    label: str,
    issued_at: int,
    line: InvoiceLine,
    price: Price,
    lang: Language | None = None,
) -> bytes:
    """The invoice as a one-page A4 PDF in ``lang`` (German by default), amounts as the language
    writes them (1.234,56 €), times in UTC."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    lang = lang or language("de")
    _ = lang.gettext

    def when(t: int) -> str:
        return _("{time} UTC", time=lang.datetime(datetime.fromtimestamp(t, UTC), "short"))

    out = io.BytesIO()
    pdf = Canvas(out, pagesize=A4, invariant=True)
    pdf.setTitle(_("Invoice {number}", number=label))
    pdf.setAuthor(seller.name)
    width, height = A4
    y = height - 25 * mm

    def text(x: float, s: str, size: int = 10, bold: bool = False) -> None:
        pdf.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        pdf.drawString(x, y, s)

    def party(x: float, title: str, p: Party) -> None:
        nonlocal y
        top = y
        lines = (title, p.name, p.street, f"{p.postcode} {p.city}", p.country,
                 _("VAT id: {vat_id}", vat_id=p.vat_id))  # fmt: skip
        for i, s in enumerate(lines):
            text(x, s, bold=i == 0)
            y -= 5 * mm
        y = top

    party(20 * mm, _("Seller"), seller)
    party(110 * mm, _("Buyer"), buyer)
    y -= 38 * mm
    text(20 * mm, _("Invoice {number}", number=label), 16, bold=True)
    y -= 8 * mm
    issued = lang.date(datetime.fromtimestamp(issued_at, UTC).date(), "medium")
    text(20 * mm, _("Invoice date: {date}", date=issued))
    y -= 12 * mm
    period = (
        _("{start} to {end}", start=when(line.starts_at), end=when(line.ends_at))
        if line.starts_at is not None and line.ends_at is not None
        else _("from activation on the box")
    )
    rows = [
        (_("Item"), f"{_(line.tariff.name)} ({line.tariff.id})"),
        (_("Validity"), _validity(line.tariff, lang)),
        (_("Box"), line.device),
        (_("Vehicle (VIN)"), line.vin or _("any")),
        (_("Period of service"), period),
    ]
    for name, value in rows:
        text(20 * mm, name, bold=True)
        text(60 * mm, value)
        y -= 6 * mm
    y -= 6 * mm
    for name, value, bold in (
        (_("Net amount"), lang.money(price.net_cents), False),
        (_("VAT {percent} %", percent=VAT_PERCENT), lang.money(price.vat_cents), False),
        (_("Gross amount"), lang.money(price.gross_cents), True),
    ):
        text(110 * mm, name, bold=bold)
        pdf.setFont("Helvetica-Bold" if bold else "Helvetica", 10)
        pdf.drawRightString(width - 20 * mm, y, value)
        y -= 6 * mm
    y -= 8 * mm
    text(20 * mm, _("Paid from the prepaid credit account. Amounts in EUR."))
    if seller.iban or seller.email:
        y -= 6 * mm
        text(
            20 * mm,
            "  ".join(s for s in (seller.email, seller.iban and f"IBAN {seller.iban}") if s),
        )
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def invoice_year(now: float | None = None) -> int:
    return datetime.fromtimestamp(now if now is not None else time.time(), UTC).year
