"""Time on a box without a real-time clock: trusted time never goes backwards.

``now()`` is the larger of the system clock and (highest trusted time seen + monotonic time
since then). The highest trusted time is persisted in the store at least every ``persist_every``
seconds (``tick()``, which the gateway calls) and at shutdown (``persist()``). Trusted time moves
forward only on statements signed by the portal's key (``observe_signed_time``: a ticket's ``iat``,
a revocation list's ``iat``, a time beacon), never on an unsigned message field. Setting the system
clock back therefore never makes a ticket valid again; a power cut loses at most ``persist_every``
seconds of trusted time. Non-finite times (NaN, infinity) are refused wherever they come from: a NaN
base would make every comparison false and every expiry check pass.
The clocks are arguments, so tests use fake ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from firmware_py.gateway.store import Store

log = logging.getLogger(__name__)

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
        persisted = float(row["highest"]) if row and row["highest"] is not None else 0.0
        if not math.isfinite(persisted):
            log.error(
                "the persisted trusted time %r is not a time; starting from the system clock",
                persisted,
            )
            persisted = 0.0
        self._base = max(persisted, self._system())
        self._base_mono = monotonic()
        self._persisted = persisted
        self._last_persist = self._base_mono - persist_every  # persist at the first tick

    def _system(self) -> float:
        value = float(self.system())
        return value if math.isfinite(value) else 0.0

    def now(self) -> float:
        trusted = self._base + (self.monotonic() - self._base_mono)
        system = self._system()
        if system > trusted:  # the system clock ran ahead (e.g. NTP): follow it, never fall back
            self._base, self._base_mono = system, self.monotonic()
            return system
        return trusted

    def observe_signed_time(self, portal_time: float) -> bool:
        """Take a time the portal signed (a ticket's or revocation list's ``iat``, a time beacon)
        when it is ahead of ours and not absurdly so. Only callers that verified the portal's
        signature may call this; unsigned fields never move trusted time."""
        if isinstance(portal_time, bool) or not isinstance(portal_time, int | float):
            return False
        now = self.now()
        if (
            not math.isfinite(portal_time)
            or portal_time <= now
            or portal_time - now > MAX_PORTAL_LEAP
        ):
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
