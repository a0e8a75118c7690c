"""Fixtures of the portal's account and credit tests: every test that takes ``db_url`` (or
``factory``) runs once against SQLite (a file in the test's tmp dir) and once against
PostgreSQL (a throwaway cluster of Debian's ``postgresql`` package for the whole session, on a
Unix socket only, one fresh database per test).

initdb refuses to run as root (CI runs as root): then the cluster runs as ``nobody`` through
``runuser``, in a directory made for it; the tests connect as the cluster's superuser over the
socket (trust authentication: nothing but this machine's processes can reach a socket in a
private directory)."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session, sessionmaker

from portal import accounts
from portal.accounts import Actor, WorkshopData
from portal.credit import Signer
from portal.db.engine import open_database
from portal.invoices import Seller

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""argon2 with small parameters: the tests hash many passwords (the service's default is the
library's recommendation; test_login checks a login rehashes to it)"""
PASSWORD = "correct horse battery staple"
NOW = 1_790_000_000  # 2026-09-21 14:13:20 UTC


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        pytest.fail(
            "PostgreSQL is not installed: the portal's tests run against it too. "
            "Install Debian's postgresql package (scripts/test does)"
        )
    return versions[-1].parent


@dataclass
class PgCluster:
    socket_dir: Path
    bin: Path
    _names = itertools.count(1)

    def new_database(self) -> str:
        name = f"portal_test_{next(self._names)}"
        _run(
            [str(self.bin / "psql"), "-h", str(self.socket_dir), "-U", "postgres", "-d", "postgres",
             "-q", "-c", f"CREATE DATABASE {name}"],
            timeout=30,
        )  # fmt: skip
        return f"postgresql+psycopg://postgres@/{name}?host={self.socket_dir}"


def _run(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="vci-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        run_as = ["runuser", "-u", "nobody", "--"]
    data = root / "data"
    try:
        _run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            timeout=120,
        )  # fmt: skip
        options = f"-k {root} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        _run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60",
             "-l", str(root / "log"), "start"],
            timeout=90,
        )  # fmt: skip
        yield PgCluster(root, bin_dir)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                timeout=60, capture_output=True,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


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
