"""A labour-value job sheet: operations chosen from the content's labour values for one series,
with their work units, the time they stand for (``work_units_per_hour`` of the content set) and
the price at the workshop's hourly rate; rendered as a PDF (reportlab) to print."""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from portal.invoices import euro


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

    def hours(self, units: int) -> str:
        return f"{Decimal(units) / self.units_per_hour:.2f} h"


def render_pdf(sheet: JobSheet) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    pdf = Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle(f"Job sheet {sheet.vehicle}")
    width, height = A4
    y = height - 60

    def text(x: float, s: str, size: int = 10, bold: bool = False, right: bool = False) -> None:
        pdf.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        (pdf.drawRightString if right else pdf.drawString)(x, y, s)

    text(50, "Job sheet (labour values)", 16, bold=True)
    y -= 24
    text(50, sheet.workshop)
    y -= 14
    text(50, f"Vehicle: {sheet.vehicle}")
    y -= 14
    text(50, f"Hourly rate: {euro(sheet.rate_cents)} net; {sheet.units_per_hour} work units = 1 h")
    y -= 28
    for x, head, right in ((50, "Operation", False), (130, "Description", False),
                           (420, "Units", True), (480, "Time", True), (545, "Net", True)):  # fmt: skip
        text(x, head, bold=True, right=right)
    for line in sheet.lines:
        y -= 16
        if y < 80:
            pdf.showPage()
            y = height - 60
        text(50, line.code)
        text(130, line.description[:52])
        text(420, str(line.work_units), right=True)
        text(480, sheet.hours(line.work_units), right=True)
        text(545, euro(sheet.price_cents(line.work_units)), right=True)
    y -= 24
    text(50, "Total", bold=True)
    text(420, str(sheet.units), bold=True, right=True)
    text(480, sheet.hours(sheet.units), bold=True, right=True)
    text(545, euro(sheet.price_cents(sheet.units)), bold=True, right=True)
    y -= 40
    text(50, f"Labour values from the content set {sheet.content}.", 8)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
