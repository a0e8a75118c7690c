"""The current content set in the portal's database: loading a validated set (:func:`load`, one
transaction that replaces the previous content whole, or leaves it untouched when anything
fails), and what the pages ask of it: a document, what names a DTC, a vehicle's open technical
campaigns, labour values, drawings and software parts. Search is portal/content/search.py's.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from portal.content.format import FORMAT_VERSION, ContentSet
from portal.content.vehicle import display_dtc, model_year, serial, type_code
from portal.db.content_models import (
    InfoCampaignVin,
    InfoDocument,
    InfoDrawing,
    InfoImport,
    InfoLabour,
    InfoLink,
    InfoSoftware,
    InfoVehicle,
)
from portal.db.engine import write_transaction

SEARCHED = ("instruction", "wiring", "bulletin", "part")
"""the kinds of documents the full-text index holds (part groups are reached from their parts)"""
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
"""control characters are dropped from searched text: the search marks its hits with \\x02/\\x03"""
CHUNK = 5000
ALL_VEHICLES = "allvehicles"
"""the vehicles column of a document for every vehicle (no type codes)"""


@dataclass(frozen=True)
class Document:
    kind: str
    ref: str
    title: str
    """in English (the content set's source language); :meth:`title_in` for a reader's"""
    data: dict[str, Any]

    def title_in(self, language: str) -> str:
        return translated(self.data, "description" if self.kind == "part" else "title", language)


def translated(record: dict[str, Any], key: str, language: str) -> str:
    """A record's text in ``language`` where the content set has it (docs/content-format.md,
    ``{ en = "...", de = "..." }``), else its English text."""
    return str(record.get("i18n", {}).get(language, {}).get(key) or record.get(key) or "")


def _every(record: dict[str, Any], key: str) -> list[str]:
    """A text in every language the record has: all of them are searched."""
    return [record[key], *(t[key] for t in record.get("i18n", {}).values() if key in t)]


def _doc(row: InfoDocument) -> Document:
    return Document(row.kind, row.ref, row.title, json.loads(row.data))


def _documents(
    content: ContentSet,
) -> list[tuple[str, str, str, str, dict[str, Any], dict[str, list[str]]]]:
    """(kind, ref, title, searched text, record, links) of every document."""
    group_titles = {g["id"]: _every(g, "title") for g in content.groups}
    out = []
    for i in content.instructions:
        body = "\n".join([*_every(i, "title")[1:], *_every(i, "summary"),
                          *(t for s in i["steps"] for t in _every(s, "text")), *i["tools"],
                          *(f"{d} {display_dtc(d)}" for d in i["dtcs"]), *i["ecus"]])  # fmt: skip
        links = {"dtc": i["dtcs"], "ecu": i["ecus"], "type": i["type_codes"] or ["*"],
                 "part": i["parts"], "wiring": i["wiring"], "labour": i["labour"]}  # fmt: skip
        out.append(("instruction", i["id"], i["title"], body, i, links))
    for w in content.wiring:
        body = "\n".join([*_every(w, "title")[1:],
                          *(f"{c['name']} {t}" for c in w["connectors"] for t in _every(c, "description")),
                          *w["ecus"]])  # fmt: skip
        out.append(("wiring", w["id"], w["title"], body, w,
                    {"ecu": w["ecus"], "type": w["type_codes"] or ["*"]}))  # fmt: skip
    for b in content.bulletins:
        body = "\n".join([*_every(b, "title")[1:], *_every(b, "text"),
                          *(f"{d} {display_dtc(d)}" for d in b["dtcs"]), *b["ecus"]])  # fmt: skip
        record = {k: v for k, v in b.items() if k != "vehicles"}
        out.append(("bulletin", b["id"], b["title"], body, record,
                    {"dtc": b["dtcs"], "ecu": b["ecus"], "type": b["type_codes"] or ["*"],
                     "labour": b["labour"]}))  # fmt: skip
    for g in content.groups:
        out.append(("group", g["id"], g["title"], "", g, {"type": g["type_codes"] or ["*"]}))
    for p in content.parts:
        body = "\n".join([*_every(p, "description")[1:], p["number"], *group_titles.get(p["group"], []),
                          *p["supersedes"]])  # fmt: skip
        out.append(("part", p["number"], p["description"], body, p,
                    {"type": p["type_codes"] or ["*"], "supersedes": p["supersedes"],
                     "group": [p["group"]]}))  # fmt: skip
    return out


def load(factory: sessionmaker[Session], content: ContentSet, now: int | None = None) -> InfoImport:
    """Replace the current content with ``content`` in one transaction."""
    with write_transaction(factory) as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        if not sqlite:  # one import at a time; readers go on reading the previous content
            session.execute(text("LOCK TABLE info_imports IN EXCLUSIVE MODE"))
        for model in (InfoLink, InfoCampaignVin, InfoDocument, InfoLabour, InfoDrawing,
                      InfoSoftware, InfoVehicle):  # fmt: skip
            session.execute(delete(model))
        if sqlite:
            session.execute(text("DELETE FROM info_search"))
        session.execute(insert(InfoVehicle), content.vehicles) if content.vehicles else None
        drawings = [{"name": n, "svg": d.svg} for n, d in content.drawings.items()]
        _many(session, InfoDrawing, drawings)
        _many(session, InfoLabour, [
            {"code": op["code"], "series": s, "description": op["description"], "work_units": u,
             "translations": json.dumps({c: t["description"] for c, t in op.get("i18n", {}).items()})}
            for op in content.labour for s, u in op["units"].items()
        ])  # fmt: skip
        _many(session, InfoSoftware, [
            {"ecu": s["ecu"], "part_number": s["part_number"], "process_class": s["process_class"],
             "sgbm_id": s["id"], "version": s["version"]} for s in content.software
        ])  # fmt: skip
        docs: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        search: list[dict[str, Any]] = []
        vins: list[dict[str, Any]] = []
        for n, (kind, ref, title, body, record, named) in enumerate(_documents(content), 1):
            body = CONTROL.sub(" ", body)
            title = CONTROL.sub(" ", title)
            vehicles = " ".join(c for c in named["type"] if c != "*") or ALL_VEHICLES
            docs.append({"id": n, "kind": kind, "ref": ref, "title": title, "body": body,
                         "vehicles": vehicles,
                         "data": json.dumps(record, separators=(",", ":"))})  # fmt: skip
            links.extend({"document_id": n, "kind": k, "value": v}
                         for k, values in named.items() for v in values)  # fmt: skip
            if kind in SEARCHED:
                search.append({"id": n, "title": title, "body": body, "vehicles": vehicles})
            if kind == "bulletin":
                vins.extend({"document_id": n, **v} for v in _vehicles(content, ref))
        _many(session, InfoDocument, docs)
        _many(session, InfoLink, links)
        _many(session, InfoCampaignVin, vins)
        if sqlite:
            for start in range(0, len(search), CHUNK):
                session.execute(
                    text(
                        "INSERT INTO info_search (rowid, title, body, vehicles) "
                        "VALUES (:id, :title, :body, :vehicles)"
                    ),  # fmt: skip
                    search[start : start + CHUNK],
                )
        done = InfoImport(
            name=content.name, content_version=content.content_version,
            format_version=FORMAT_VERSION, work_units_per_hour=content.work_units_per_hour,
            documents=len(docs), imported_at=int(time.time()) if now is None else now,
        )  # fmt: skip
        session.add(done)
        session.flush()
        return done


def _vehicles(content: ContentSet, ref: str) -> list[dict[str, str]]:
    return next(b["vehicles"] for b in content.bulletins if b["id"] == ref)


def _many(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(model), rows[start : start + CHUNK])


def current(session: Session) -> InfoImport | None:
    return session.scalars(select(InfoImport).order_by(InfoImport.id.desc()).limit(1)).first()


def document(session: Session, kind: str, ref: str) -> Document | None:
    row = session.scalars(
        select(InfoDocument).where(InfoDocument.kind == kind, InfoDocument.ref == ref)
    ).first()
    return _doc(row) if row is not None else None


def superseding(session: Session, number: str) -> Document | None:
    """The part that supersedes the part ``number``, if the content names one."""
    row = session.scalars(
        select(InfoDocument).join(InfoLink, InfoLink.document_id == InfoDocument.id)
        .where(InfoLink.kind == "supersedes", InfoLink.value == number).limit(1)
    ).first()  # fmt: skip
    return _doc(row) if row is not None else None


def _for_vehicle(query: Any, code: str | None) -> Any:
    if code is None:
        return query
    scoped = select(InfoLink.document_id).where(InfoLink.kind == "type",
                                                InfoLink.value.in_(("*", code)))  # fmt: skip
    return query.where(InfoDocument.id.in_(scoped))


def linked(session: Session, kind: str, value: str, vin: str | None = None,
           kinds: tuple[str, ...] = ("instruction", "bulletin")) -> list[Document]:  # fmt: skip
    """The documents (of ``kinds``) that name a DTC, an ECU, a part (``kind``), for one vehicle
    when ``vin`` is given."""
    query = (
        select(InfoDocument).join(InfoLink, InfoLink.document_id == InfoDocument.id)
        .where(InfoLink.kind == kind, InfoLink.value == value, InfoDocument.kind.in_(kinds))
        .order_by(InfoDocument.kind.desc(), InfoDocument.ref)
    )  # fmt: skip
    return [_doc(row) for row in session.scalars(_for_vehicle(query, vin and type_code(vin)))]


def vehicle(session: Session, vin: str) -> InfoVehicle | None:
    return session.get(InfoVehicle, type_code(vin))


def campaigns(session: Session, vin: str, this_year: int) -> list[tuple[Document, str]]:
    """The technical campaigns that concern ``vin`` with their state for it: ``open`` or
    ``done`` as the campaign lists the vehicle, else ``open`` when the vehicle is in the
    campaign's scope (type code, model years when the VIN has a year, serial ranges)."""
    states = dict(session.execute(
        select(InfoCampaignVin.document_id, InfoCampaignVin.status)
        .where(InfoCampaignVin.vin == vin)
    ).all())  # fmt: skip
    query = select(InfoDocument).where(InfoDocument.kind == "bulletin")
    query = _for_vehicle(query, type_code(vin)).where(
        or_(InfoDocument.id.in_(states), InfoDocument.data.contains('"kind":"campaign"'))
    )
    year, number = model_year(vin, this_year), serial(vin)
    found = []
    for row in session.scalars(query.order_by(InfoDocument.ref)):
        doc = _doc(row)
        if doc.data["kind"] != "campaign":
            continue
        if row.id in states:
            found.append((doc, states[row.id]))
            continue
        years, ranges = doc.data["model_years"], doc.data["vin_ranges"]
        if years and year is not None and not years[0] <= year <= years[1]:
            continue
        if ranges and not any(low <= number <= high for low, high in ranges):
            continue
        found.append((doc, "open"))
    return found


def labour_description(op: InfoLabour, language: str) -> str:
    """A labour operation's description in ``language`` where the content set has it."""
    return str(json.loads(op.translations or "{}").get(language) or op.description)


def labour(session: Session, series: str) -> list[InfoLabour]:
    return list(session.scalars(
        select(InfoLabour).where(InfoLabour.series == series).order_by(InfoLabour.code)
    ))  # fmt: skip


def drawing(session: Session, name: str) -> str | None:
    found = session.get(InfoDrawing, name)
    return found.svg if found is not None else None


def software(session: Session, part_number: str) -> list[InfoSoftware]:
    return list(session.scalars(
        select(InfoSoftware).where(InfoSoftware.part_number == part_number)
        .order_by(InfoSoftware.process_class, InfoSoftware.sgbm_id)
    ))  # fmt: skip


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
