"""Which database, how to connect to it, and how to bring its schema up to date.

The URL comes from ``--db``, else ``VCI_PORTAL_DB``, else ``sqlite:///<state dir>/portal.sqlite3``
(state dir: ``VCI_PORTAL_STATE_DIR``, else ``$XDG_STATE_HOME/vci-portal``, else
``~/.local/state/vci-portal``). SQLite runs in WAL mode with foreign keys on; PostgreSQL through
psycopg 3 (``postgresql+psycopg://...``).

Writes that must not interleave (a purchase debits the credit) run in :func:`write_transaction`:
on SQLite ``BEGIN IMMEDIATE`` (the write lock from the start, so two purchases cannot both read
the old balance; every SQLite transaction begins so, see :func:`_sqlite_pragmas`), on PostgreSQL
a ``SELECT ... FOR UPDATE`` of the workshop's row by the caller.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""how long a SQLite writer waits for the write lock before it gives up"""


def state_dir() -> Path:
    if explicit := os.environ.get("VCI_PORTAL_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vci-portal"


def database_url(flag: str | None = None) -> str:
    """The database URL: the flag, else ``VCI_PORTAL_DB``, else SQLite in the state dir."""
    url = flag or os.environ.get("VCI_PORTAL_DB")
    if url:
        return url
    return f"sqlite:///{state_dir() / 'portal.sqlite3'}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the file's folder is made and the pragmas set on each
    connection. A plain ``postgresql://`` URL uses psycopg 3."""
    try:
        parsed = make_url(url)
    except Exception as err:  # sqlalchemy.exc.ArgumentError
        raise ConfigError(
            f"the database URL {url!r} is not a URL",
            hint="Give sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (--db or VCI_PORTAL_DB)",
        ) from err
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
        _sqlite_pragmas(engine)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"the portal does not support {parsed.get_backend_name()!r} databases",
            hint="Use SQLite (the default) or PostgreSQL",
        )
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(engine: Engine) -> None:
    # pysqlite opens transactions on its own terms (not before a SELECT, never IMMEDIATE); the
    # SQLAlchemy documentation's recipe hands transaction control back to us ("Serializable
    # isolation / Savepoints / Transactional DDL"), and we add the IMMEDIATE mode per transaction.
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # deleted rows are overwritten, not left in free pages (erasures, retention)
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    # Every transaction takes the write lock at its start (IMMEDIATE): a DEFERRED one that reads
    # and then writes fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT, which the
    # busy timeout does not wait out) when another writer committed in between. One transaction
    # at a time (each waits up to the busy timeout) is the embedded database's scale; a read-only
    # view that must not wait opens its connection with execution option sqlite_begin="DEFERRED".
    @event.listens_for(engine, "begin")
    def begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start on SQLite (``BEGIN
    IMMEDIATE``); on PostgreSQL an ordinary READ COMMITTED transaction in which the caller locks
    the rows it reads-then-writes (``with_for_update()``). Commits on success."""
    with factory() as session, session.begin():
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        yield session


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` with the Alembic migrations."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def open_database(url: str, *, migrate: bool | None = None) -> tuple[Engine, sessionmaker[Session]]:
    """The engine and session factory for ``url``. An SQLite database (the embedded default) is
    brought up to date on open; a PostgreSQL one is migrated by its administrator (``vci-portal
    db upgrade``) and refused while it is behind. ``migrate`` overrides the choice."""
    engine = make_engine(url)
    if migrate is None:
        migrate = engine.dialect.name == "sqlite"
    if migrate:
        upgrade(url)
    elif (current := current_revision(engine)) != (head := head_revision()):
        engine.dispose()
        raise ConfigError(
            f"the portal's database is at schema revision {current or 'none'}, this portal "
            f"needs {head}",
            hint="Run: vci-portal db upgrade --db URL (after a backup)",
        )
    return engine, sessions(engine)
