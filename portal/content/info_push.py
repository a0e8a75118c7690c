"""The portal's side of the box's repair information cache (docs/content-format.md, "On the
box"): when a box's state reports a car it identified (portal/box_status.py), the portal sends
that car's subset of the current content to the box, once per box, VIN and content version (again after
:data:`RESEND_AFTER`),
while the workshop that owns the box holds a valid ticket with repair information
(portal/content/access.py). A new import (a new content version) is sent to every online box
whose car is still connected (:meth:`InfoPusher.refresh`, each round of the status watcher), and
to any other box the next time it reports its car.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal.content import access, store
from portal.content.car_subset import car_subset, push
from portal.db.models import WorkshopBox

log = logging.getLogger(__name__)
MAX_SENT = 10_000
"""(box, VIN) pairs whose sent version is remembered (the oldest forgotten first)"""
RESEND_AFTER = 600.0
"""seconds after which the same version is sent again when the box reports the car again (the
box may have evicted it from its bounded cache); sooner, a flapping link sends nothing twice"""


class InfoPusher:
    def __init__(
        self, factory: sessionmaker[Session], remote: Any, clock: Callable[[], float] = time.time
    ) -> None:
        self.factory, self.remote, self.clock = factory, remote, clock
        self.sent: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self.version: str | None = None
        """the content version :meth:`refresh` saw last (None: not looked yet)"""

    def refresh(self) -> int:
        """When the portal's content version changed since the last look (a new import, by this
        process or another on the same database), send the new subset to every online, unrevoked
        box whose state names a car (the car still connected); returns how many were sent."""
        with self.factory() as db:
            current = store.current(db)
            if current is None or current.content_version == self.version:
                return 0
            first, self.version = self.version is None, current.content_version
            if first:  # the portal (re)started: the boxes' retained states, arriving now, send
                # each connected car's subset through vehicle_seen
                return 0
            cars = db.execute(
                select(WorkshopBox.device, WorkshopBox.vin).where(
                    WorkshopBox.online.is_(True), WorkshopBox.vin.is_not(None),
                    WorkshopBox.revoked_at.is_(None),
                )
            ).all()  # fmt: skip
        sent = 0
        for device, vin in cars:
            try:
                sent += vin is not None and self.vehicle_seen(device, vin) is not None
            except Exception:  # one box away or refusing must not stop the others
                log.exception("refreshing the repair information of %s failed", device)
        log.info("content %s: sent to %d connected car(s)", self.version, sent)
        return sent

    def vehicle_seen(self, box: str, vin: str) -> dict[str, Any] | None:
        """Send ``vin``'s subset to ``box`` unless it has this version already or the box's
        workshop is not entitled; the box's last answer, or None when nothing was sent."""
        now = self.clock()
        with self.factory() as db:
            current = store.current(db)
            if current is None:
                return None
            version, at = self.sent.get((box, vin), ("", 0.0))
            if version == current.content_version and now - at < RESEND_AFTER:
                return None
            workshop = db.scalar(select(WorkshopBox.workshop_id).where(WorkshopBox.device == box))
            if workshop is None or access.entitled_until(db, workshop, int(now)) is None:
                return None
            year = datetime.datetime.fromtimestamp(now, datetime.UTC).year
            subset = car_subset(db, vin, None, [], year)
        answer = push(self.remote, box, subset)
        self.sent[(box, vin)] = (subset["content_version"], now)
        self.sent.move_to_end((box, vin))
        while len(self.sent) > MAX_SENT:
            self.sent.popitem(last=False)
        log.info("repair information for %s sent to %s (%s)", vin, box, subset["content_version"])
        return answer
