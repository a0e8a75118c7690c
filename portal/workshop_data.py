"""A workshop's whole data (GDPR Art. 15 and 20; Art. 17; docs/data-protection.md): exported as
one archive, and the account deleted.

**Export** (:func:`export`): every row of the workshop in every table that holds any
(portal/workshop_scope.py's table, so a new table cannot be left out), one JSON file per table,
the invoices' PDFs as issued; secrets (password hashes, TOTP secrets, session tokens) left out.

**Deletion** (:func:`delete`): by the workshop's owner (the web page asks for the password again)
or the operator. Kept, because a law requires it: the workshop's name, address and VAT id (the
buyer on its invoices), its purchases, bookings and invoices (10 years: §147 AO, §14b UStG), the
revoked tickets and certificates (the boxes must go on refusing them), and the record of VIN
erasures (accountability, GDPR Art. 5(2)). The users stay as rows without a name, a login or a
password (purchases name who bought), so nobody can log in. Everything else is deleted: remote
sessions with their jobs and events, sessions and pending logins, second factors, failed-login
counters, claims, enrolment requests, ticket deliveries. The workshop's boxes are revoked (their
certificates on the broker's revocation list) and released.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import NotPermitted, PreconditionError
from firmware_py.i18n import N_
from portal.accounts import Actor, workshop_for
from portal.db.engine import write_transaction
from portal.db.models import (
    ClaimRefusal,
    Delivery,
    EnrolledBox,
    EnrolmentRequest,
    Invoice,
    LoginGuard,
    PendingLogin,
    Purchase,
    RemoteJob,
    RemoteJobEvent,
    RemoteSessionRecord,
    Role,
    TotpSecret,
    User,
    WebSession,
    Workshop,
    WorkshopBox,
)
from portal.workshop_scope import SCOPES, SECRET_COLUMNS, binary_columns, scope_of, tables

FORMAT = "vci-portal-workshop-data/1"
KEPT_BY_LAW = N_(
    "The workshop's name, address and VAT id, its purchases, bookings and invoices are kept for "
    "10 years (§147 AO, §14b UStG); revoked tickets and box certificates stay revoked; the "
    "record of vehicle data erasures is kept (GDPR Art. 5(2))."
)


def _may(actor: Actor) -> None:
    if not (actor.is_operator or actor.role is Role.OWNER):
        raise NotPermitted(N_("only the workshop's owner or the operator may do this"),
                           hint=N_("Ask the workshop's owner"))  # fmt: skip


def export(
    session: Session, actor: Actor, workshop_id: int, now: float, records: Any = None
) -> bytes:
    """The workshop's data as a zip: ``<table>.json`` for every table of :data:`SCOPES`,
    ``invoices/<number>.pdf``, with ``records`` (a :class:`~portal.records.RecordStore`) what
    its boxes sent (:func:`add_records`), and ``README.json`` saying what is in it."""
    _may(actor)
    workshop_for(session, actor, workshop_id)
    buffer = io.BytesIO()
    counts: dict[str, int] = {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in tables():
            scope = scope_of(table, workshop_id)
            if table.name not in SCOPES or scope is None:
                continue
            left_out = {*binary_columns(table)} | {
                c.name for c in table.columns if f"{table.name}.{c.name}" in SECRET_COLUMNS
            }
            rows = [
                {k: v for k, v in row.items() if k not in left_out}
                for row in session.execute(select(table).where(scope)).mappings()
            ]
            counts[table.name] = len(rows)
            archive.writestr(f"{table.name}.json", json.dumps(rows, indent=1, default=str))
        for invoice in session.scalars(
            select(Invoice).where(Invoice.workshop_id == workshop_id).order_by(Invoice.id)
        ):
            archive.writestr(f"invoices/{invoice.label}.pdf", invoice.pdf)
        sent: dict[str, int] | None = None
        if records is not None:
            devices = list(session.scalars(
                select(WorkshopBox.device).where(WorkshopBox.workshop_id == workshop_id)
            ))  # fmt: skip
            sent = add_records(archive, records, devices)
        archive.writestr("README.json", json.dumps({
            "format": FORMAT, "workshop": workshop_id, "exported": now, "rows": counts,
            "records": sent, "left_out": sorted(SECRET_COLUMNS),
            "not_here": ("What the boxes sent (job results, service booklet, help-desk "
                         "requests) is in the portal's records file: exported with --records. "
                         if sent is None else "") + "What the boxes keep is on the boxes.",
        }, indent=1))  # fmt: skip
    return buffer.getvalue()


def add_records(archive: zipfile.ZipFile, records: Any, devices: list[str]) -> dict[str, int]:
    """What the workshop's boxes sent, from the portal's records file (portal/records.py) into
    ``archive`` under ``records/``: every table of the file with a ``box`` column, the rows of
    these boxes (JSON), a help-desk request's attachments as files; how many rows per table."""
    db, counts = records.db, {}
    marks = ",".join("?" * len(devices)) or "NULL"
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for name in names:
        cur = db.execute(f'SELECT * FROM "{name}" WHERE 0')  # noqa: S608 - the file's own names
        columns = [d[0] for d in cur.description]
        if "box" not in columns:
            continue  # the file's own bookkeeping (its erasure records and their key)
        cur = db.execute(f'SELECT * FROM "{name}" WHERE box IN ({marks})', devices)  # noqa: S608
        rows = [
            {k: v for k, v in zip(columns, row, strict=True) if not isinstance(v, bytes)}
            for row in cur
        ]
        counts[name] = len(rows)
        archive.writestr(f"records/{name}.json", json.dumps(rows, indent=1, default=str))
    if "helpdesk_chunks" in names:
        for box, rid, attachment in db.execute(
            "SELECT DISTINCT box, request, attachment FROM helpdesk_chunks"  # noqa: S608
            f" WHERE box IN ({marks})", devices,
        ).fetchall():  # fmt: skip
            data = records.helpdesk._data(box, rid, attachment)  # noqa: SLF001 - joined chunks
            archive.writestr(f"records/helpdesk/{box}/{rid}/{Path(attachment).name}", data)
    return counts


def delete_account(
    factory: sessionmaker[Session], actor: Actor, workshop_id: int, *,
    revoke_box: Callable[[str], None] | None = None, now: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Delete the workshop's account as the module says. ``revoke_box(device)`` revokes a box's
    certificate (portal/enrolment.py, with the broker's CA); None: the certificates are marked
    revoked in the database only and ``unlisted`` names them (the operator revokes them on the
    CA). Returns what was done."""
    t = int(time.time() if now is None else now)
    with factory() as session:
        _may(actor)
        workshop = workshop_for(session, actor, workshop_id)
        if workshop.deleted_at is not None:
            raise NotPermitted(
                N_("the workshop {workshop_id} is deleted already"),
                values={"workshop_id": workshop_id},
                hint=N_("Nothing to do"),
            )
        running = session.scalar(select(RemoteJob.id).where(
            RemoteJob.workshop_id == workshop_id, RemoteJob.state.in_(("sent", "running"))
        ).limit(1))  # fmt: skip
        if running is not None:
            raise PreconditionError(
                N_("a remote job of the workshop is still running (job {running})"),
                values={"running": running},
                hint=N_(
                    "Delete the account once it has ended (or cancel it on its session's page)"
                ),
            )
        devices = list(session.scalars(
            select(WorkshopBox.device).where(WorkshopBox.workshop_id == workshop_id)
        ))  # fmt: skip
        enrolled = set(session.scalars(
            select(EnrolledBox.device).where(EnrolledBox.device.in_(devices))
        ))  # fmt: skip
    unlisted = []
    for device in sorted(enrolled):  # before the rows go: the revocation finds the box by them
        if revoke_box is not None:
            revoke_box(device)
        else:
            unlisted.append(device)
    done: dict[str, int] = {}

    def gone(name: str, statement: Any) -> None:
        done[name] = int(session.execute(statement).rowcount)  # type: ignore[attr-defined]

    with write_transaction(factory) as session:
        row = session.get(Workshop, workshop_id, with_for_update=True)
        assert row is not None
        users = select(User.id).where(User.workshop_id == workshop_id)
        jobs = select(RemoteJob.id).where(RemoteJob.workshop_id == workshop_id)
        logins = list(session.scalars(select(User.login).where(User.workshop_id == workshop_id)))
        session.execute(
            update(EnrolledBox).where(EnrolledBox.device.in_(devices), EnrolledBox.state != "revoked")
            .values(state="revoked", revoked_at=t)
        )  # fmt: skip
        gone("remote_job_events", delete(RemoteJobEvent).where(RemoteJobEvent.job_id.in_(jobs)))
        gone("remote_jobs", delete(RemoteJob).where(RemoteJob.workshop_id == workshop_id))
        gone("remote_sessions", delete(RemoteSessionRecord).where(
            RemoteSessionRecord.workshop_id == workshop_id))  # fmt: skip
        gone("deliveries", delete(Delivery).where(Delivery.purchase_id.in_(
            select(Purchase.id).where(Purchase.workshop_id == workshop_id))))  # fmt: skip
        gone("web_sessions", delete(WebSession).where(WebSession.user_id.in_(users)))
        gone("pending_logins", delete(PendingLogin).where(PendingLogin.user_id.in_(users)))
        gone("totp_secrets", delete(TotpSecret).where(TotpSecret.user_id.in_(users)))
        gone("login_guards", delete(LoginGuard).where(LoginGuard.login.in_(logins)))
        gone("enrolment_requests", delete(EnrolmentRequest).where(
            EnrolmentRequest.device.in_(devices)))  # fmt: skip
        gone("claim_refusals", delete(ClaimRefusal).where(ClaimRefusal.workshop_id == workshop_id))
        gone("workshop_boxes", delete(WorkshopBox).where(WorkshopBox.workshop_id == workshop_id))
        for user in session.scalars(select(User).where(User.workshop_id == workshop_id)):
            user.login = f"deleted-{user.id}@deleted.invalid"
            user.name = "deleted user"
            user.password_hash = "!"  # no password hashes to it: nobody logs in
        done["users anonymised"] = len(logins)
        row.enabled = False
        row.deleted_at = t
    return {"deleted": done, "boxes_revoked": sorted(enrolled), "unlisted": unlisted,
            "released": devices, "kept": KEPT_BY_LAW}  # fmt: skip


def pki_revoker(
    factory: sessionmaker[Session], pki_dir: Path | None
) -> Callable[[str], None] | None:
    """A box revoker over the broker's CA in ``pki_dir`` (None without one)."""
    if pki_dir is None:
        return None
    from portal.enrolment import Enrolment

    enrolment = Enrolment(factory, pki_dir)

    def revoke(device: str) -> None:
        enrolment.revoke(device)

    return revoke
