"""A report (:mod:`.model`) as PDF, with reportlab's platypus: title, vehicle, the verdict in a
coloured box, then each section as a fact list or a table (tables split across pages with their
header repeated). Fonts are reportlab's standard Helvetica (WinAnsi encoding: German umlauts, ß
and € print; no font files are shipped). Nothing here reads the car or the disk."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from firmware_py.i18n import Language, language

OK_COLOUR = colors.HexColor("#e3f4e6")
NOT_OK_COLOUR = colors.HexColor("#fbe4e2")
RULE = colors.HexColor("#9aa3ab")


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName="Helvetica", fontSize=9)
    return {
        "title": ParagraphStyle("title", parent=base["Title"], fontName="Helvetica-Bold"),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName="Helvetica-Bold", fontSize=12),
        "body": body,
        "cell": ParagraphStyle("cell", parent=body, fontSize=8.5, leading=10.5),
        "head": ParagraphStyle("head", parent=body, fontName="Helvetica-Bold", fontSize=8.5),
        "verdict": ParagraphStyle("verdict", parent=body, fontName="Helvetica-Bold", fontSize=12),
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, textColor=colors.grey),
    }


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(str(text)).replace("\n", "<br/>"), style)


def _grid(rows: list[list[Any]], widths: list[float], header: bool) -> Table:
    t = Table(rows, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef1f4")))
    t.setStyle(TableStyle(style))
    return t


def _verdict(verdict: dict[str, Any], s: dict[str, ParagraphStyle], width: float) -> Table:
    lines: list[Flowable] = [_p(verdict.get("headline", ""), s["verdict"])]
    lines += [_p(f"• {r}", s["body"]) for r in verdict.get("reasons", [])]
    lines += [_p(f"Note: {n}", s["body"]) for n in verdict.get("notes", [])]
    box = Table([[lines]], colWidths=[width])
    box.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), OK_COLOUR if verdict.get("ok") else NOT_OK_COLOUR),
                ("BOX", (0, 0), (-1, -1), 0.75, RULE),
                ("LEFTPADDING", (0, 0), (-1, -1), 6),
                ("TOPPADDING", (0, 0), (-1, -1), 5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    return box


def _created(value: str, lang: Language) -> str:
    """The report's ISO time as the reader writes it (UTC, said so)."""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return lang.gettext("{time} UTC", time=lang.datetime(moment, "medium"))


def render_pdf(report: dict[str, Any], lang: Language | None = None) -> bytes:
    """The report as PDF bytes (A4); the page's own labels in ``lang`` (the report's texts are
    the report's: :func:`firmware_py.reports.test_report.in_language` makes them in another)."""
    lang = lang or language(report.get("language"))
    _ = lang.gettext
    s = _styles()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=str(report.get("title") or _("Report")),
        author="VCI gateway",
        subject=str(report.get("vehicle", {}).get("vin", "")),
    )
    width = doc.width
    story: list[Flowable] = [_p(report.get("title") or _("Report"), s["title"])]
    vehicle = report.get("vehicle") or {}
    head = [
        (_("Vehicle (VIN)"), vehicle.get("vin") or _("not read")),
        (_("Model"), vehicle.get("model") or "-"),
        (_("Created"), _created(report.get("created", ""), lang)),
    ]
    if vehicle.get("mileage_km") is not None:
        head.insert(2, (_("Mileage"), f"{lang.number(vehicle['mileage_km'])} km"))
    story.append(
        _grid(
            [[_p(k, s["head"]), _p(v, s["cell"])] for k, v in head],
            [45 * mm, width - 45 * mm],
            False,
        )
    )
    story.append(Spacer(1, 5 * mm))
    if report.get("verdict"):
        story += [_verdict(report["verdict"], s, width), Spacer(1, 4 * mm)]
    for section in report.get("sections", []):
        title = _p(section.get("title", ""), s["h2"])
        if "table" in section:
            header = section.get("header") or []
            n = max([len(header), *(len(r) for r in section["table"])], default=1)
            rows = ([[_p(h, s["head"]) for h in header]] if header else []) + [
                [_p(c, s["cell"]) for c in r] + [""] * (n - len(r)) for r in section["table"]
            ]
            body: Flowable = (
                _grid(rows, [width / n] * n, bool(header))
                if section["table"]
                else _p(_("none"), s["body"])
            )
        else:
            body = _grid(
                [[_p(k, s["head"]), _p(v, s["cell"])] for k, v in section.get("rows", [])],
                [60 * mm, width - 60 * mm],
                False,
            )
        parts: list[Flowable] = [title, body]
        if section.get("note"):
            parts.append(_p(section["note"], s["small"]))
        story += [KeepTogether(parts)] if "rows" in section else parts  # a table may split
        story.append(Spacer(1, 3 * mm))

    def footer(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.grey)
        text = _(
            "{title} - {vin} - page {page}",
            title=report.get("title") or _("Report"),
            vin=vehicle.get("vin") or "",
            page=document.page,
        )
        canvas.drawString(doc.leftMargin, 10 * mm, text)
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
