"""Who may read the repair information on the portal's pages: a workshop's users (owner or
technician) while their workshop holds a bought ticket whose tariff includes the
``repair_information`` scope (Informationssuche 1 month or 1 year, Basic), valid now (its window
has started and not ended) and not on the revocation list (``revoked_tickets``). The box it was bought for does not matter: the
information is the workshop's to read, the ticket is the proof it paid for it.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from firmware_py.errors import NotEntitled
from firmware_py.gateway.tariffs import TARIFFS, Scope
from firmware_py.i18n import N_
from portal.db.models import Purchase, RevokedTicket

INFORMATION_TARIFFS = tuple(t.id for t in TARIFFS.values() if Scope.REPAIR_INFORMATION in t.scopes)


def entitled_until(session: Session, workshop_id: int, now: int) -> int | None:
    """The end of the latest valid ticket with repair information, or None when there is none."""
    revoked = exists().where(RevokedTicket.ticket_id == Purchase.ticket_id)
    ends = session.scalars(
        select(Purchase.ends_at).where(
            Purchase.workshop_id == workshop_id, Purchase.tariff.in_(INFORMATION_TARIFFS),
            Purchase.starts_at <= now, Purchase.ends_at > now, ~revoked,
        ).order_by(Purchase.ends_at.desc()).limit(1)
    ).first()  # fmt: skip
    return int(ends) if ends is not None else None


def check(session: Session, workshop_id: int, now: int) -> int:
    """The end of the entitlement, or :class:`NotEntitled`."""
    until = entitled_until(session, workshop_id, now)
    if until is None:
        names = ", ".join(TARIFFS[t].name for t in INFORMATION_TARIFFS)
        raise NotEntitled(
            N_("the workshop holds no valid ticket with repair information ({names})"),
            values={"names": names},
        )
    return until
