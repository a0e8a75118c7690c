"""Fixtures of the portal's account and credit tests: every test that takes ``db_url`` (or
``factory``) runs once against SQLite (a file in the test's tmp dir) and once against
PostgreSQL (a throwaway cluster of Debian's ``postgresql`` package for the whole session, on a
Unix socket only, one fresh database per test: portal/db/throwaway.py, which the portal's
benchmark uses too)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import ConfigError
from portal import accounts
from portal.accounts import Actor, WorkshopData
from portal.credit import Signer
from portal.db.engine import open_database
from portal.db.throwaway import PgCluster, running_cluster
from portal.invoices import Seller
from tests.portal.web_client import PortalFarm

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""argon2 with small parameters: the tests hash many passwords (the service's default is the
library's recommendation; test_login checks a login rehashes to it)"""
PASSWORD = "correct horse battery staple"
NOW = 1_790_000_000  # 2026-09-21 14:13:20 UTC


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        with running_cluster() as cluster:
            yield cluster
    except ConfigError as err:  # not installed, or it did not start: say so, as a failure
        pytest.fail(f"{err} ({err.hint})")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, made = open_database(db_url, migrate=True)
    yield made
    engine.dispose()


@pytest.fixture
def signer() -> Signer:
    return Signer("portal-test", Ed25519PrivateKey.generate())


@pytest.fixture
def seller() -> Seller:
    return Seller(
        name="VCI Portal GmbH", street="Hauptstr. 1", postcode="80331", city="Muenchen",
        country="DE", vat_id="DE999999999", email="billing@portal.example", iban="DE02120300000000202051",
    )  # fmt: skip


def workshop_data(n: int) -> WorkshopData:
    return WorkshopData(
        name=f"Werkstatt {n} GmbH", street=f"Werkstrasse {n}", postcode="10115",
        city="Berlin", country="DE", vat_id=f"DE{100000000 + n}",
    )  # fmt: skip


def sign_up(factory: sessionmaker[Session], n: int, **kw: object) -> Actor:
    """Workshop ``n`` with its owner ``owner<n>@example.com``, committed; its owner as actor."""
    with factory() as session, session.begin():
        owner = accounts.sign_up(
            session, workshop_data(n), owner_login=f"owner{n}@example.com",
            owner_name=f"Owner {n}", password=PASSWORD, hasher=kw.pop("hasher", FAST_HASHER),  # type: ignore[arg-type]
            now=NOW,
        )  # fmt: skip
        session.flush()
        return Actor.of(owner)


def claim(factory: sessionmaker[Session], owner: Actor, device: str, label: str = "") -> None:
    """``owner``'s workshop claims ``device`` (its record only: the certificate part of a claim is
    tests/portal/test_web_boxes.py's), committed; tickets are sold only for claimed boxes."""
    from portal import boxes

    with factory() as session, session.begin():
        boxes.record_claim(session, owner, owner.workshop_id or 0, device, label)


@pytest.fixture
def operator(factory: sessionmaker[Session]) -> Actor:
    with factory() as session, session.begin():
        user = accounts.add_operator(
            session, login="ops@portal.example", name="Operator", password=PASSWORD,
            hasher=FAST_HASHER, now=NOW,
        )  # fmt: skip
        session.flush()
        return Actor.of(user)


def at_once(count: int, action: Callable[[], str]) -> Counter[str]:
    """Run ``action`` in ``count`` threads released together (each opens its own session, so its
    own connection); the outcomes it returns, or its exceptions' class names, counted."""
    barrier = threading.Barrier(count)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def run() -> None:
        barrier.wait(timeout=30)
        try:
            result = action()
        except Exception as err:  # counted, so that a failing assertion shows it
            result = f"{type(err).__name__}: {err}"
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.fixture
def farm(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[PortalFarm]:
    """Portal processes (``vci-portal serve``) serving one portal on one PostgreSQL database:
    ``farm.start(*flags)`` starts one and returns its URL (tests start two)."""
    running = PortalFarm(tmp_path / "farm", pg_cluster.new_database())
    try:
        yield running
    finally:
        running.close()
