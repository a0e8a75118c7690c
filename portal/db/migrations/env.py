"""Alembic's environment for the portal's database (run by portal.db.engine.upgrade and
``vci-portal db upgrade``); the URL comes from the config the caller builds."""

from __future__ import annotations

from alembic import context

from portal.db.content_models import managed_by_models
from portal.db.engine import make_engine
from portal.db.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_name=managed_by_models,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not set up; run vci-portal db upgrade")
run_migrations_online()
