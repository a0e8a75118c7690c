"""Which boxes belong to which workshop, and who may use them.

Plain functions over a SQLAlchemy session, like portal/accounts.py: each takes the acting user as
an :class:`~portal.accounts.Actor` and refuses (:class:`NotPermitted`) a box of another workshop.
Claiming (the label code, the certificate) is portal/enrolment.py's; :func:`record_claim` is
called once that claim has succeeded.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware_py.errors import NotPermitted
from portal.accounts import Actor, workshop_for
from portal.db.models import WorkshopBox


def record_claim(
    session: Session, actor: Actor, workshop_id: int, device: str, label: str = ""
) -> WorkshopBox:
    """Note that ``workshop_id`` claimed ``device`` (after portal/enrolment.py signed it)."""
    workshop_for(session, actor, workshop_id)
    box = WorkshopBox(
        device=device,
        workshop_id=workshop_id,
        label=label,
        claimed_by=None if actor.is_operator else actor.user_id,
        claimed_at=int(time.time()),
    )
    session.add(box)
    session.flush()
    return box


def owned(session: Session, actor: Actor, workshop_id: int) -> list[WorkshopBox]:
    """The workshop's boxes, revoked ones included, by device id."""
    workshop_for(session, actor, workshop_id)
    return list(
        session.scalars(
            select(WorkshopBox)
            .where(WorkshopBox.workshop_id == workshop_id)
            .order_by(WorkshopBox.device)
        )
    )


def require(session: Session, actor: Actor, device: str, usable: bool = True) -> WorkshopBox:
    """The box ``device`` if ``actor`` may see it (its workshop's users, operators); with
    ``usable``, also refused when its certificate was revoked."""
    box = session.scalar(select(WorkshopBox).where(WorkshopBox.device == device))
    if box is None or (not actor.is_operator and box.workshop_id != actor.workshop_id):
        # the same answer for "no such box" and "another workshop's": ids are not disclosed
        raise NotPermitted(
            f"no box {device[:64]!r} in this workshop",
            hint="Claim the box first with the device id and code on its label",
        )
    if usable and box.revoked_at is not None:
        raise NotPermitted(
            f"box {device} was revoked",
            hint="A revoked box cannot connect; ask the portal's operator",
        )
    return box
