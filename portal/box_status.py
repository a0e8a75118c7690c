"""The boxes' state as the portal shows it: one watcher per portal process subscribes to every
box's retained ``state`` topic (firmware_py/cloud/box_state.py: online, release, the car
connected) with its own broker connection and stores each claimed box's last state in the
database (``workshop_boxes``: online, seen_at, version, vin, vehicle). The pages read the
database, so every portal process on it shows the same.

Messages arrive on paho's thread and are only noted there; :meth:`BoxStatusWatcher.step` (a
thread of ``vci-portal serve``) writes them. A state that arrives for a box no workshop has
claimed yet is kept and written once the box is claimed (a box's first state after its claim is
usually the one that counts, but a claim may come after it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.cloud import topics
from firmware_py.cloud.box_state import BoxState
from portal.boxes import store_state
from portal.db.models import WorkshopBox

log = logging.getLogger(__name__)
MAX_UNCLAIMED = 10_000
"""states of boxes nobody has claimed, kept for when one is (the oldest are dropped first)"""


class BoxStatusWatcher:
    """Keeps the boxes' states that ``session`` (a :class:`portal.remote.RemoteSession` of the
    portal's broker user, its own connection) receives, in the database of ``factory``."""

    def __init__(
        self, factory: sessionmaker[Session], session: Any, clock: Callable[[], float] = time.time
    ) -> None:
        self.factory, self.session, self.clock = factory, session, clock
        self._lock = threading.Lock()
        self._fresh: dict[str, tuple[BoxState, float]] = {}
        self._unclaimed: OrderedDict[str, tuple[BoxState, float]] = OrderedDict()
        session.on_status = self._seen
        self.on_vehicle: Callable[[str, str], Any] | None = None
        """called with (box, VIN) for each stored state that names a car (after the database
        write, on the watcher's thread): portal/content/info_push.py"""
        self.on_round: Callable[[], Any] | None = None
        """called after every round (InfoPusher.refresh: a new content version to the connected
        cars), on the watcher's thread"""

    def start(self) -> None:
        """Subscribe to every box's state (the broker sends the retained ones at once)."""
        self.session.subscribe(f"{topics.PREFIX}/+/state")

    def _seen(self, box: str, state: BoxState) -> None:  # paho's thread
        with self._lock:
            self._fresh[box] = (state, self.clock())

    def step(self) -> int:
        """Store the states that arrived; returns how many boxes' rows changed."""
        with self._lock:
            fresh, self._fresh = self._fresh, {}
        stored = 0
        with self.factory() as db, db.begin():
            if self._unclaimed:  # claimed since their state came?
                claimed = db.scalars(
                    select(WorkshopBox.device).where(WorkshopBox.device.in_(list(self._unclaimed)))
                )
                for device in claimed:
                    fresh.setdefault(device, self._unclaimed[device])
            for device, (state, at) in fresh.items():
                self._unclaimed.pop(device, None)
                if store_state(db, device, state, at):
                    stored += 1
                else:
                    self._unclaimed[device] = (state, at)
        while len(self._unclaimed) > MAX_UNCLAIMED:
            self._unclaimed.popitem(last=False)
        if self.on_vehicle is not None:
            for device, (state, _) in fresh.items():
                if state.vin and device not in self._unclaimed:
                    try:
                        self.on_vehicle(device, state.vin)
                    except Exception:  # one box away or refusing must not stop the others
                        log.exception("sending repair information to %s failed", device)
        if self.on_round is not None:
            self.on_round()
        return stored

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Store states until ``stop`` is set; a failing round is logged and the next follows."""
        subscribed = False
        while not stop.is_set():
            try:
                if not subscribed:
                    self.start()
                    subscribed = True
                self.step()
            except Exception:  # the database or the broker away for a moment: try again
                log.exception("box status round failed")
            stop.wait(interval)
