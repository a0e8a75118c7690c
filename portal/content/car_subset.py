"""One car's part of the current content, as the box caches it (docs/content-format.md, "On the
box"): the repair instructions and bulletins for its ECUs and stored DTCs, the technical campaigns
that concern its VIN with their state, and its part groups, with the content version they come
from. Plain JSON, so it can travel as the box<->portal messages do.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.content import store
from portal.content.vehicle import normal_dtc, normal_vin, type_code
from portal.db.content_models import InfoDocument

MAX_DTCS = 64
MAX_ECUS = 64


def car_subset(
    session: Session, vin: str, ecus: list[str] | None, dtcs: list[str], this_year: int
) -> dict[str, Any]:
    """The subset for ``vin`` whose ECUs are ``ecus`` (None: every instruction and bulletin for
    its type code) and whose fault memory holds ``dtcs`` (any form :func:`normal_dtc` takes;
    others are ignored). Raises ValueError for a bad VIN."""
    car = normal_vin(vin)
    if car is None:
        raise ValueError(f"{vin[:40]!r} is not a VIN")
    current = store.current(session)
    codes = sorted({c for d in dtcs[:MAX_DTCS] if (c := normal_dtc(d))})
    docs: dict[tuple[str, str], store.Document] = {}
    for code in codes:
        docs.update(((d.kind, d.ref), d) for d in store.linked(session, "dtc", code, car))
    if ecus is None:
        every = select(InfoDocument).where(InfoDocument.kind.in_(("instruction", "bulletin")))
        for row in session.scalars(store._for_vehicle(every, type_code(car))):
            doc = store._doc(row)
            docs[(doc.kind, doc.ref)] = doc
    for ecu in sorted(set((ecus or [])[:MAX_ECUS])):
        docs.update(((d.kind, d.ref), d) for d in store.linked(session, "ecu", ecu, car))
    by_dtc: dict[str, list[str]] = {}  # every DTC an instruction names: stored now or later
    for (kind, ref), d in sorted(docs.items()):
        for code in d.data.get("dtcs", []) if kind == "instruction" else []:
            by_dtc.setdefault(code, []).append(ref)
    campaigns = [
        {
            "id": d.ref,
            "title": d.title,
            "status": status,
            "text": d.data.get("text", ""),
            "i18n": d.data.get("i18n", {}),
        }  # the other languages' title and text: the tablet's
        for d, status in store.campaigns(session, car, this_year)
    ]
    scoped = select(InfoDocument).where(InfoDocument.kind == "group")
    groups = [
        {"id": g.ref, "title": g.title, "i18n": g.data.get("i18n", {})}
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


PIECE = 24 * 1024
"""characters of the subset's (ASCII) JSON text per ``info.piece``: escaped once more inside the
message, at most twice as long, under the protocol's 64 KiB"""


def pieces(subset: dict[str, Any], size: int = PIECE) -> list[dict[str, Any]]:
    """The ``info.piece`` bodies that carry ``subset`` to a box."""
    text = json.dumps(subset, separators=(",", ":"), ensure_ascii=True)
    parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    return [
        {
            "vin": subset["vin"],
            "content_version": subset["content_version"],
            "index": n,
            "count": len(parts),
            "data": part,
        }  # fmt: skip
        for n, part in enumerate(parts)
    ]


def push(remote: Any, box: str, subset: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send ``subset`` to ``box`` over the broker link (``remote``: a
    :class:`portal.remote.RemoteSession`), piece by piece; the box's last answer."""
    from firmware_py.cloud.schema import Message
    from portal.remote import RemoteError

    answer: dict[str, Any] = {}
    for body in pieces(subset):
        reply = remote.exchange(box, Message("info.piece", body), timeout)
        if reply.type != "info.stored":
            raise RemoteError(f"box {box} refused the repair information: {reply.body}")
        answer = reply.body
    return answer
