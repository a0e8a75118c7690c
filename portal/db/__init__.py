"""The portal's database: SQLAlchemy 2 models (:mod:`.models`), the engine and sessions for
SQLite (the embedded default) and PostgreSQL (:mod:`.engine`), and the Alembic migrations
(``migrations/``) that make the schema. Services (portal/accounts.py, portal/credit.py) work on
a :class:`sqlalchemy.orm.Session` from here; nothing in this folder knows the web."""
