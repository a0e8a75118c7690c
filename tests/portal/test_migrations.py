"""The Alembic migrations make exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from portal.db.engine import head_revision, make_engine, open_database, upgrade
from portal.db.models import Base


def test_migrations_and_models_agree(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
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
