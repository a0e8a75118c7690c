"""The Alembic migrations make exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from portal.db.content_models import managed_by_models
from portal.db.engine import head_revision, make_engine, open_database, upgrade
from portal.db.models import Base


def test_migrations_and_models_agree(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": managed_by_models}
            )
            assert compare_metadata(context, Base.metadata) == []
            assert set(inspect(connection).get_table_names()) >= set(Base.metadata.tables)
    finally:
        engine.dispose()


def test_sqlite_is_migrated_on_open_postgresql_must_be_upgraded(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        engine, _ = open_database(db_url)
        engine.dispose()
    else:
        import pytest

        from firmware_py.errors import ConfigError

        with pytest.raises(ConfigError, match="vci-portal db upgrade"):
            open_database(db_url)
        upgrade(db_url)
        engine, _ = open_database(db_url)
        engine.dispose()
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    engine.dispose()


def test_an_old_enrolment_file_keeps_its_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Before revision 0004 ``vci-portal box`` kept its records in an SQLite file of its own; the
    same file opened now keeps its claimed boxes, waiting requests and wrong-code counts."""
    import sqlite3

    from portal.enrolment import Enrolment

    path = tmp_path / "portal-boxes.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE boxes (device TEXT PRIMARY KEY, state TEXT NOT NULL, "
        "certificate TEXT NOT NULL, serial TEXT NOT NULL, key_fp TEXT NOT NULL, "
        "claimed REAL NOT NULL, revoked REAL);"
        "CREATE TABLE requests (device TEXT NOT NULL, key_fp TEXT NOT NULL, "
        "csr TEXT NOT NULL, proof TEXT NOT NULL, first_seen REAL NOT NULL, "
        "last_seen REAL NOT NULL, PRIMARY KEY (device, key_fp, proof));"
        "CREATE TABLE claim_failures (device TEXT NOT NULL, at REAL NOT NULL);"
        "INSERT INTO boxes VALUES ('box-a', 'revoked', 'PEM', '123456789012345678901234567890', "
        "'ab', 1000.5, 2000.25);"
        "INSERT INTO requests VALUES ('box-b', 'cd', 'CSR', 'ef', 1500.0, 1600.0);"
        "INSERT INTO claim_failures VALUES ('box-b', 1700.0);"
    )
    old.commit()
    old.close()
    enrolment = Enrolment(path, tmp_path)
    try:
        [box] = enrolment.boxes()
        assert (box.device, box.state, box.serial, box.claimed, box.revoked) == (
            "box-a", "revoked", 123456789012345678901234567890, 1000, 2000,
        )  # fmt: skip
        assert enrolment.waiting() == [("box-b", 1600)]
    finally:
        enrolment.close()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert not tables & {"boxes", "requests", "claim_failures"}
        assert db.execute("SELECT device, wrong_code, at FROM claim_refusals").fetchall() == [
            ("box-b", 1, 1700)
        ]
