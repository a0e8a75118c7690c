"""Which boxes belong to which workshop, and who may use them.

Plain functions over a SQLAlchemy session, like portal/accounts.py: each takes the acting user as
an :class:`~portal.accounts.Actor` and refuses (:class:`NotPermitted`) a box of another workshop.
Claiming (the label code, the certificate) is portal/enrolment.py's; :func:`record_claim` is
called within that claim's transaction, :func:`record_revocation` within a revocation's. The
boxes' last state on the broker (online, version, car) is stored by portal/box_status.py with
:func:`store_state`.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from firmware_py.cloud.box_state import BoxState
from firmware_py.errors import NotPermitted
from firmware_py.i18n import N_
from portal.accounts import Actor, require_operator, workshop_for
from portal.db.models import Role, User, Workshop, WorkshopBox

LABEL = re.compile(r"[^\x00-\x1f\x7f]{0,100}")
"""the workshop's own name for a box: up to 100 characters, no control characters"""


def record_claim(
    session: Session, actor: Actor, workshop_id: int, device: str, label: str = ""
) -> WorkshopBox:
    """Note that ``workshop_id`` claimed ``device`` (after portal/enrolment.py signed it)."""
    workshop_for(session, actor, workshop_id)
    label = label.strip()
    if not LABEL.fullmatch(label):
        raise NotPermitted(
            N_("the box's name is longer than 100 characters or has control characters"),
            hint=N_("Give a short name such as Bay 3"),
        )
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
            N_("no box {value} in this workshop"),
            values={"value": repr(device[:64])},
            hint=N_("Claim the box first with the device id and code on its label"),
        )
    if usable and box.revoked_at is not None:
        raise NotPermitted(
            N_("box {device} was revoked"),
            values={"device": device},
            hint=N_("A revoked box cannot connect; ask the portal's operator"),
        )
    return box


def every_box(session: Session, actor: Actor) -> list[tuple[WorkshopBox, str]]:
    """Every claimed box with its workshop's name, by device id (the operator's)."""
    require_operator(actor)
    rows = session.execute(
        select(WorkshopBox, Workshop.name)
        .join(Workshop, Workshop.id == WorkshopBox.workshop_id)
        .order_by(WorkshopBox.device)
    )
    return [(box, name) for box, name in rows]


def claimed_by(session: Session, boxes: list[WorkshopBox]) -> dict[int, str]:
    """The login of each user who claimed one of ``boxes``, by user id."""
    ids = {b.claimed_by for b in boxes if b.claimed_by is not None}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.login).where(User.id.in_(ids)))
    return {user_id: login for user_id, login in rows}


def record_revocation(
    session: Session, actor: Actor, device: str, now: float | None = None
) -> WorkshopBox:
    """Note that ``device``'s certificate was revoked (portal/enrolment.py revokes it): by its
    workshop's owner, or an operator."""
    box = require(session, actor, device, usable=False)
    if not (actor.is_operator or actor.role is Role.OWNER):
        raise NotPermitted(
            N_("only the workshop's owner may revoke a box"), hint=N_("Ask your owner")
        )
    if box.revoked_at is None:
        box.revoked_at = int(time.time() if now is None else now)
    session.flush()
    return box


def store_state(session: Session, device: str, state: BoxState, now: float) -> bool:
    """The box's last state as its retained message says (portal/box_status.py); False when
    no workshop has claimed ``device``. A state without a version keeps the one known."""
    values: dict[str, object] = {
        "online": state.online, "seen_at": int(now), "vin": state.vin, "vehicle": state.vehicle,
    }  # fmt: skip
    if state.version is not None:
        values["version"] = state.version
    done = session.execute(update(WorkshopBox).where(WorkshopBox.device == device).values(values))
    return bool(done.rowcount)  # type: ignore[attr-defined]
