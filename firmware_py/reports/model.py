"""The report as data: what the PDF (:mod:`.pdf`), the tablet page and the JSON all show.

A report is a dict (JSON-ready)::

    {"kind": "emissions", "title": "...", "created": "2026-11-28T12:00:00Z",
     "vehicle": {"vin": ..., "model": ..., "mileage_km": ...},
     "verdict": {"ok": bool, "headline": "...", "reasons": [...], "notes": [...]},  # optional
     "sections": [Section, ...], "data": {...}}

where a Section is ``{"title": ..., "rows": [[label, value], ...]}`` (a list of facts) or
``{"title": ..., "header": [...], "table": [[cell, ...], ...]}`` (a table), with an optional
``"note"``. ``data`` holds the readings the sections were made from, for machines (the portal).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def now_iso(at: float | None = None) -> str:
    """UTC time as ISO 8601 with a Z (the box's trusted time if the caller has it)."""
    when = dt.datetime.fromtimestamp(at, dt.UTC) if at is not None else dt.datetime.now(dt.UTC)
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def facts(title: str, rows: list[tuple[str, Any]], note: str = "") -> dict[str, Any]:
    section: dict[str, Any] = {"title": title, "rows": [[k, _text(v)] for k, v in rows]}
    if note:
        section["note"] = note
    return section


def table(title: str, header: list[str], rows: list[list[Any]], note: str = "") -> dict[str, Any]:
    section: dict[str, Any] = {
        "title": title,
        "header": header,
        "table": [[_text(c) for c in r] for r in rows],
    }
    if note:
        section["note"] = note
    return section


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)
