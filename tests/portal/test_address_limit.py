"""The per-address login limit counted in the database (portal/address_limit.py): a sliding
window, exact under concurrent attempts (as from several portal processes), quiet addresses
forgotten; on both databases."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal.address_limit import AddressLimiter
from portal.db.models import AddressAttempts
from tests.portal.conftest import at_once


def _allow(factory: sessionmaker[Session], limiter: AddressLimiter, client: str) -> float:
    with factory() as session, session.begin():
        return limiter.allow(session, client)


def test_a_sliding_window_per_address(factory: sessionmaker[Session]) -> None:
    clock = [1000.0]
    limiter = AddressLimiter(attempts=3, window=60.0, clock=lambda: clock[0])
    for t in (0.0, 10.0, 20.0):
        clock[0] = 1000.0 + t
        assert _allow(factory, limiter, "192.0.2.1") == 0.0
    clock[0] = 1030.0
    assert _allow(factory, limiter, "192.0.2.1") == 30.0  # the first attempt leaves at 1060
    assert _allow(factory, limiter, "192.0.2.2") == 0.0  # another address: its own count
    clock[0] = 1060.0
    assert _allow(factory, limiter, "192.0.2.1") == 0.0  # one left the window: one more
    assert _allow(factory, limiter, "192.0.2.1") == 10.0


def test_attempts_at_once_are_all_counted(factory: sessionmaker[Session]) -> None:
    """20 attempts from one address at the same moment (each its own connection, as from
    several processes) against a limit of 10: exactly 10 pass."""
    limiter = AddressLimiter(attempts=10, window=60.0)
    outcomes = at_once(
        20, lambda: "allowed" if _allow(factory, limiter, "198.51.100.7") == 0 else "limited"
    )
    assert outcomes == {"allowed": 10, "limited": 10}, outcomes


def test_quiet_addresses_are_forgotten(factory: sessionmaker[Session]) -> None:
    clock = [1000.0]
    limiter = AddressLimiter(attempts=3, window=60.0, clock=lambda: clock[0])
    for n in range(5):
        _allow(factory, limiter, f"203.0.113.{n}")
    clock[0] = 1061.0
    _allow(factory, limiter, "203.0.113.99")
    with factory() as session:
        assert list(session.scalars(select(AddressAttempts.client))) == ["203.0.113.99"]
