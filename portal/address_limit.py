"""Login and sign-up attempts limited per client address, counted in the portal's database.

At most ``attempts`` per ``window`` seconds per address (a sliding window), in addition to the
per-login-name lock-out of portal/login.py. The count lives in the database (the
``address_attempts`` table), not in a process's memory: behind a load balancer every portal
process counts the same attempts, so a client cannot multiply its allowance by the number of
processes. One row per address holds the times of its attempts inside the window (at most
``attempts`` of them); the row is locked while it is read and written (``SELECT ... FOR UPDATE``
on PostgreSQL; on SQLite every transaction holds the write lock, portal/db/engine.py), so two
processes that count at the same moment count both attempts. Rows of addresses quiet for a
window are deleted on the way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portal.db.models import AddressAttempts

CLIENT_CHARS = 128
"""an address longer than this (no IP address is) is counted by its first 128 characters"""


class AddressLimiter:
    """At most ``attempts`` per ``window`` seconds per client address. ``clock``: the wall clock
    (seconds since the epoch), shared by every process that uses the database."""

    def __init__(
        self, attempts: int = 10, window: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock

    def allow(self, session: Session, client: str) -> float:
        """0 when this attempt is allowed (and counted), else the seconds to wait. Runs in the
        caller's transaction; the caller commits (also a refusal: it changes nothing then)."""
        now = int(self.clock() * 1000)
        window = int(self.window * 1000)
        client = client[:CLIENT_CHARS]
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(AddressAttempts)
            .values(client=client, times_ms="", last_ms=now)
            .on_conflict_do_nothing(index_elements=["client"])
        )
        row = session.scalars(
            select(AddressAttempts)
            .where(AddressAttempts.client == client)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        times = [int(t) for t in row.times_ms.split()]
        times = [t for t in times if t > now - window]
        if len(times) >= self.attempts:
            row.times_ms = " ".join(map(str, times))
            return (times[0] + window - now) / 1000
        times.append(now)
        row.times_ms = " ".join(map(str, times))
        row.last_ms = max(row.last_ms, now)
        session.flush()
        # quiet addresses: rows another transaction holds are left for a later round, so two
        # processes deleting at once never wait for each other (no deadlock)
        quiet = (
            select(AddressAttempts.client)
            .where(AddressAttempts.last_ms <= now - window)
            .limit(100)
            .with_for_update(skip_locked=True)
        )
        session.execute(
            delete(AddressAttempts)
            .where(AddressAttempts.client.in_(quiet))
            .execution_options(synchronize_session=False)
        )
        return 0.0
