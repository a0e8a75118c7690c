"""A labour-value job sheet: operations chosen from the content's labour values for one series,
with their work units, the time they stand for (``work_units_per_hour`` of the content set) and
the price at the workshop's hourly rate; rendered as a PDF (reportlab) to print."""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from firmware_py.i18n import Language
from portal.i18n import portal_language


@dataclass(frozen=True)
class Line:
    code: str
    description: str
    work_units: int


@dataclass(frozen=True)
class JobSheet:
    workshop: str
    vehicle: str
    """the VIN and model, or the series"""
    lines: tuple[Line, ...]
    units_per_hour: int
    rate_cents: int
    """the workshop's hourly rate, net"""
    content: str
    """the content set's name and version, printed at the foot"""

    @property
    def units(self) -> int:
        return sum(line.work_units for line in self.lines)

    def price_cents(self, units: int) -> int:
        exact = Decimal(units) * self.rate_cents / self.units_per_hour
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def hours(self, units: int, lang: Language | None = None) -> str:
        return (lang or portal_language(None)).unit(Decimal(units) / self.units_per_hour, "h", 2)


def render_pdf(sheet: JobSheet, lang: Language | None = None) -> bytes:
    """The sheet as a PDF in ``lang`` (the language asked for when it is printed)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    lang = lang or portal_language(None)
    _ = lang.gettext

    buffer = io.BytesIO()
    pdf = Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle(_("Job sheet {vehicle}", vehicle=sheet.vehicle))
    width, height = A4
    y = height - 60

    def text(x: float, s: str, size: int = 10, bold: bool = False, right: bool = False) -> None:
        pdf.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        (pdf.drawRightString if right else pdf.drawString)(x, y, s)

    text(50, _("Job sheet (labour values)"), 16, bold=True)
    y -= 24
    text(50, sheet.workshop)
    y -= 14
    text(50, _("Vehicle: {vehicle}", vehicle=sheet.vehicle))
    y -= 14
    text(50, _("Hourly rate: {rate} net; {units} work units = 1 h",
               rate=lang.money(sheet.rate_cents), units=sheet.units_per_hour))  # fmt: skip
    y -= 28
    for x, head, right in ((50, _("Operation"), False), (130, _("Description"), False),
                           (420, _("Units"), True), (480, _("Time"), True),
                           (545, _("Net"), True)):  # fmt: skip
        text(x, head, bold=True, right=right)
    for line in sheet.lines:
        y -= 16
        if y < 80:
            pdf.showPage()
            y = height - 60
        text(50, line.code)
        text(130, line.description[:52])
        text(420, str(line.work_units), right=True)
        text(480, sheet.hours(line.work_units, lang), right=True)
        text(545, lang.money(sheet.price_cents(line.work_units)), right=True)
    y -= 24
    text(50, _("Total"), bold=True)
    text(420, str(sheet.units), bold=True, right=True)
    text(480, sheet.hours(sheet.units, lang), bold=True, right=True)
    text(545, lang.money(sheet.price_cents(sheet.units)), bold=True, right=True)
    y -= 40
    text(50, _("Labour values from the content set {content}.", content=sheet.content), 8)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
