"""One car's part of the current content, as the box caches it (docs/content-format.md, "On the
box"): the repair instructions and bulletins for its ECUs and stored DTCs, the technical campaigns
that concern its VIN with their state, and its part groups, with the content version they come
from. Plain JSON, so it can travel as the box<->portal messages do.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.content import store
from portal.content.vehicle import normal_dtc, normal_vin, type_code
from portal.db.content_models import InfoDocument

MAX_DTCS = 64
MAX_ECUS = 64


def car_subset(
    session: Session, vin: str, ecus: list[str], dtcs: list[str], this_year: int
) -> dict[str, Any]:
    """The subset for ``vin`` whose ECUs are ``ecus`` and whose fault memory holds ``dtcs``
    (any form :func:`normal_dtc` takes; others are ignored). Raises ValueError for a bad VIN."""
    car = normal_vin(vin)
    if car is None:
        raise ValueError(f"{vin[:40]!r} is not a VIN")
    current = store.current(session)
    codes = sorted({c for d in dtcs[:MAX_DTCS] if (c := normal_dtc(d))})
    docs: dict[tuple[str, str], store.Document] = {}
    by_dtc: dict[str, list[str]] = {}
    for code in codes:
        found = store.linked(session, "dtc", code, car)
        by_dtc[code] = [d.ref for d in found if d.kind == "instruction"]
        docs.update(((d.kind, d.ref), d) for d in found)
    for ecu in sorted(set(ecus[:MAX_ECUS])):
        docs.update(((d.kind, d.ref), d) for d in store.linked(session, "ecu", ecu, car))
    campaigns = [
        {"id": d.ref, "title": d.title, "status": status, "text": d.data.get("text", "")}
        for d, status in store.campaigns(session, car, this_year)
    ]
    scoped = select(InfoDocument).where(InfoDocument.kind == "group")
    groups = [
        {"id": g.ref, "title": g.title}
        for g in (
            store._doc(row)
            for row in session.scalars(
                store._for_vehicle(scoped, type_code(car)).order_by(InfoDocument.ref)
            )
        )  # fmt: skip
    ]
    return {
        "vin": car,
        "content_version": current.content_version if current is not None else "",
        "instructions": [
            {"id": d.ref, "kind": d.kind, "title": d.title, "record": d.data}
            for d in sorted(docs.values(), key=lambda d: (d.kind, d.ref))
        ],
        "dtcs": by_dtc,
        "campaigns": campaigns,
        "groups": groups,
    }
