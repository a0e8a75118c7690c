"""One vehicle's data in the portal's database on its owner's request (GDPR Art. 15 and 20: a
copy; Art. 17: erasure; docs/data-protection.md). The records file's side (what the boxes sent:
job results, booklet, help desk) is portal/privacy.py; this module is the main database's.

What names the VIN is found in every table and every text column of the schema (not a list of
``vin`` columns: a job's result, an event's body, a box's refusal name it too), in every form a
VIN is kept in (text, hex, base64: :func:`firmware_py.gateway.privacy.vin_forms`). What happens
to a row that names it is one table, :data:`RULES`: remote sessions, their jobs and events are
erased (with what hangs on them), a box's last-seen car is cleared; purchases, their bookings
and invoices are kept for 10 years (§147 AO, §14b UStG); the manufacturer's campaign list is
content. A workshop acts on its own rows (portal/workshop_scope.py), the operator on all.

An erasure is recorded (portal/db/privacy_models.py: a keyed hash of the VIN, never the VIN). On
SQLite deleted rows are overwritten (``secure_delete``, portal/db/engine.py), the file compacted
(``VACUUM``) and the write-ahead log truncated; then the database is searched again and what
still names the VIN outside the kept tables is reported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import PreconditionError
from firmware_py.gateway.privacy import normalise_vin, vin_forms
from firmware_py.i18n import N_
from portal.db.engine import write_transaction
from portal.db.privacy_models import PrivacyErasure, PrivacyKey
from portal.workshop_scope import (
    SECRET_COLUMNS,
    binary_columns,
    scope_of,
    tables,
    text_columns,
)

RUNNING = ("sent", "running")
"""the states of a remote job the box may still report on"""
LEGALLY_KEPT = "kept for 10 years: bookkeeping (§147 AO, §14b UStG)"


class Action(StrEnum):
    ERASE = "erase"
    """the row is deleted, and the rows that hang on it (a session's jobs, a job's events)"""
    CLEAR = "clear"
    """the columns that name the VIN are emptied, the row stays"""
    KEEP = "keep"
    """the row stays as it is, for the reason given"""


@dataclass(frozen=True)
class Rule:
    action: Action
    why: str
    clear: tuple[str, ...] = ()


RULES: dict[str, Rule] = {
    "remote_sessions": Rule(Action.ERASE, "the remote session log of the car"),
    "remote_jobs": Rule(Action.ERASE, "a remote job on the car, its result"),
    "remote_job_events": Rule(Action.ERASE, "what the box reported of a job on the car"),
    "workshop_boxes": Rule(Action.CLEAR, "the car last seen on a box", ("vin", "vehicle")),
    "deliveries": Rule(Action.CLEAR, "a box's reason for refusing a ticket", ("refusal",)),
    "login_guards": Rule(Action.ERASE, "a failed-login counter keyed by what was typed"),
    "purchases": Rule(Action.KEEP, LEGALLY_KEPT),
    "bookings": Rule(Action.KEEP, LEGALLY_KEPT),
    "invoices": Rule(Action.KEEP, LEGALLY_KEPT),
    "info_campaign_vins": Rule(
        Action.KEEP,
        "the manufacturer's campaign (recall) list: content the next import brings back, "
        "not a record of the workshop's",
    ),
}
"""what is done with a row that names the VIN, per table; a table not here is not expected to
name a VIN (a user's name, a workshop's address): found there, it is reported, not touched"""

EXPORT_LEFT_OUT = frozenset({*SECRET_COLUMNS, "purchases.ticket"})
"""not in a vehicle's export: secrets, and the signed ticket itself (its content is the row)"""


def _names(value: Any, forms: tuple[bytes, ...]) -> bool:
    if isinstance(value, str):
        value = value.encode("utf-8", "replace")
    if isinstance(value, memoryview):
        value = bytes(value)
    return isinstance(value, bytes) and any(f in value for f in forms)


@dataclass
class Found:
    vin: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """table -> its rows that name the VIN (every column)"""

    def outside_kept(self) -> list[str]:
        """What names the VIN where no rule keeps it (after an erasure: what it missed)."""
        return [
            f"{len(rows)} {name}"
            for name, rows in self.rows.items()
            if rows and (name not in RULES or RULES[name].action is not Action.KEEP)
        ]


def find(session: Session, vin: str, workshop_id: int | None = None) -> Found:
    """The rows that name ``vin``: of ``workshop_id`` (None: of every workshop, the operator)."""
    vin = normalise_vin(vin)
    forms, found = vin_forms(vin), Found(vin)
    for table in tables():
        texts, blobs = text_columns(table), binary_columns(table)
        kept = RULES.get(table.name, Rule(Action.ERASE, "")).action is Action.KEEP
        if kept:
            blobs = []  # an invoice's PDF is kept with its purchase, whatever it says
        if not texts and not blobs:
            continue
        query = select(table)
        if (scope := scope_of(table, workshop_id)) is not None:
            query = query.where(scope)
        if not blobs:  # the database narrows it down; LIKE's case-folding is checked below
            query = query.where(
                or_(*(table.c[c].contains(f.decode(), autoescape=True)
                      for c in texts for f in forms))
            )  # fmt: skip
        hits = []
        for row in session.execute(query).mappings():
            if any(_names(row[c], forms) for c in (*texts, *blobs)):
                hits.append(dict(row))
        if hits:
            found.rows[table.name] = hits
    return found


def export(session: Session, vin: str, workshop_id: int | None, now: float) -> dict[str, Any]:
    """The vehicle's rows as one JSON document (secrets and binary columns left out)."""
    found = find(session, vin, workshop_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, rows in found.rows.items():
        out[name] = [
            {k: v for k, v in row.items()
             if f"{name}.{k}" not in EXPORT_LEFT_OUT and not isinstance(v, bytes | memoryview)}
            for row in rows
        ]  # fmt: skip
    return {
        "format": "vci-portal-vehicle-data/1",
        "vin": found.vin,
        "exported": now,
        "workshop": workshop_id,
        "tables": out,
        "kept": {name: rule.why for name, rule in RULES.items() if rule.action is Action.KEEP},
        "not_here": "What the boxes sent (job results, service booklet, help-desk requests) is "
        "in the portal's records file (vci-portal privacy export --records); the box keeps its "
        "own data (vci privacy export on the box).",
    }


def vin_hash(session: Session, vin: str) -> str:
    """HMAC-SHA256 of the VIN under the portal's key (made on first use, in the database)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(PrivacyKey)
        .values(id=1, key=secrets.token_bytes(32))
        .on_conflict_do_nothing(index_elements=["id"])
    )
    key = session.scalar(select(PrivacyKey.key).where(PrivacyKey.id == 1))
    assert key is not None
    return "hmac-sha256:" + hmac.new(bytes(key), vin.encode("ascii"), hashlib.sha256).hexdigest()


def _children(parent: Table) -> list[tuple[Table, str, str]]:
    """(table, its column, the parent's column) of every foreign key onto ``parent``."""
    return [
        (table, fk.parent.name, fk.column.name)
        for table in tables()
        for fk in table.foreign_keys
        if fk.column.table is parent
    ]


def _erase_rows(session: Session, table: Table, ids: list[Any], counts: dict[str, int]) -> None:
    """Delete ``table``'s rows with these primary keys, after the rows that hang on them."""
    if not ids:
        return
    (pk,) = table.primary_key.columns  # every erased table has a one-column key
    for child, column, parent_column in _children(table):
        rule = RULES.get(child.name)
        assert rule is not None and rule.action is Action.ERASE, child.name
        parents = select(table.c[parent_column]).where(pk.in_(ids))
        (child_pk,) = child.primary_key.columns
        below = list(session.scalars(select(child_pk).where(child.c[column].in_(parents))))
        _erase_rows(session, child, below, counts)
    done = session.execute(delete(table).where(pk.in_(ids)))
    counts[table.name] = counts.get(table.name, 0) + int(done.rowcount)  # type: ignore[attr-defined]


def erase(
    factory: sessionmaker[Session], vin: str, *, asked_by: str, done_by: str,
    workshop_id: int | None = None, now: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Erase what names ``vin`` in the portal's database (of ``workshop_id``; None: every
    workshop), record the erasure, compact an SQLite file. ``remaining`` lists what still names
    the VIN outside the kept tables (empty: none)."""
    vin = normalise_vin(vin)
    t = int(time.time() if now is None else now)
    counts: dict[str, int] = {}
    with write_transaction(factory) as session:
        found = find(session, vin, workshop_id)
        if any(job["state"] in RUNNING for job in found.rows.get("remote_jobs", [])):
            raise PreconditionError(  # its events would name the car again
                N_("a remote job on this car is still running"),
                hint=N_("Erase once it has ended (or cancel it on its session's page)"),
            )
        by_name = {table.name: table for table in tables()}
        for name, rows in found.rows.items():
            rule, table = RULES.get(name), by_name[name]
            if rule is None or rule.action is Action.KEEP:
                continue
            (pk,) = table.primary_key.columns
            ids = [row[pk.name] for row in rows]
            if rule.action is Action.ERASE:
                _erase_rows(session, table, ids, counts)
            else:
                done = session.execute(
                    update(table).where(pk.in_(ids)).values(dict.fromkeys(rule.clear))
                )
                counts[name] = counts.get(name, 0) + int(done.rowcount)  # type: ignore[attr-defined]
        hashed = vin_hash(session, vin)
        session.add(PrivacyErasure(
            at=t, vin_hash=hashed, asked_by=asked_by[:200], done_by=done_by[:254],
            workshop_id=workshop_id, deleted=json.dumps(counts, sort_keys=True),
        ))  # fmt: skip
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    compact(engine)
    with factory() as session:
        left = find(session, vin, workshop_id)
        anywhere = left.rows if workshop_id is None else find(session, vin).rows
    remaining = left.outside_kept()
    if not anywhere:  # no row of anybody's names it: neither may the file's bytes
        remaining += still_in_files(engine, vin)
    kept = {
        n: len(r) for n, r in left.rows.items() if n in RULES and RULES[n].action is Action.KEEP
    }
    return {"vin_hash": hashed, "deleted": counts, "kept": kept, "remaining": remaining}


def compact(engine: Engine) -> None:
    """SQLite: rewrite the file without free pages (``VACUUM``) and truncate the write-ahead
    log, so that no deleted row lingers in either. PostgreSQL: nothing (its own ``VACUUM`` frees
    dead rows' space for reuse; the operator's storage encryption covers what it leaves)."""
    if engine.dialect.name != "sqlite":
        return
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("VACUUM")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        connection.close()


def still_in_files(engine: Engine, vin: str) -> list[str]:
    """The SQLite files (database, write-ahead log) whose bytes still name ``vin``."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return []
    forms, base = vin_forms(vin), Path(path)
    return [
        f"file {f.name}"
        for f in (base, base.with_name(base.name + "-wal"))
        if f.exists() and _names(f.read_bytes(), forms)
    ]
