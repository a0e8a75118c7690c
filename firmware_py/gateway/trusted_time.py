"""Time on a box without a real-time clock: trusted time never goes backwards.

``now()`` is the larger of the system clock and (highest trusted time seen + monotonic time
since then). The highest trusted time is persisted in the store at least every ``persist_every``
seconds (``tick()``, which the gateway calls) and at shutdown (``persist()``), and portal time is
taken when online (``observe_portal_time``). Setting the system clock back therefore never makes a
ticket valid again; a power cut loses at most ``persist_every`` seconds of trusted time.
The clocks are arguments, so tests use fake ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from firmware_py.gateway.store import Store

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS trusted_time (id INTEGER PRIMARY KEY CHECK (id = 1), highest REAL NOT NULL)",
)
MAX_PORTAL_LEAP = 10 * 365 * 86400.0  # a portal time this far ahead of ours is refused as absurd


class TrustedClock:
    def __init__(
        self,
        store: Store,
        *,
        system: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        persist_every: float = 60.0,
    ) -> None:
        self.store = store
        self.system = system
        self.monotonic = monotonic
        self.persist_every = persist_every
        store.ensure_schema("trusted_time", SCHEMA)
        row = store.connection().execute("SELECT highest FROM trusted_time WHERE id = 1").fetchone()
        persisted = float(row["highest"]) if row else 0.0
        self._base = max(persisted, system())
        self._base_mono = monotonic()
        self._persisted = persisted
        self._last_persist = self._base_mono - persist_every  # persist at the first tick

    def now(self) -> float:
        trusted = self._base + (self.monotonic() - self._base_mono)
        system = self.system()
        if system > trusted:  # the system clock ran ahead (e.g. NTP): follow it, never fall back
            self._base, self._base_mono = system, self.monotonic()
            return system
        return trusted

    def observe_portal_time(self, portal_time: float) -> bool:
        """Take the portal's time when it is ahead of ours (and not absurdly so)."""
        now = self.now()
        if portal_time <= now or portal_time - now > MAX_PORTAL_LEAP:
            return False
        self._base, self._base_mono = portal_time, self.monotonic()
        self.persist()
        return True

    def tick(self) -> None:
        if self.monotonic() - self._last_persist >= self.persist_every:
            self.persist()

    def persist(self) -> None:
        highest = max(self.now(), self._persisted)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO trusted_time(id, highest) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET highest = MAX(highest, excluded.highest)",
                (highest,),
            )
        self._persisted = highest
        self._last_persist = self.monotonic()
