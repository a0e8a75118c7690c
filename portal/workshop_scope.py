"""Which rows of the portal's database belong to which workshop: one table for every table of the
schema (:data:`SCOPES`), used by the workshop's export and account deletion
(portal/workshop_data.py) and by the VIN-scoped export and erasure (portal/vehicle_data.py) when a
workshop, not the operator, acts.

A table is either the workshop's (a ``WHERE`` clause that picks its rows: by its ``workshop_id``,
or through the row it hangs on: a job's events through the job, a delivery through its purchase,
a box's certificate through the workshop's claim of it) or none workshop's, with the reason
(:data:`NOT_A_WORKSHOPS`). A table in neither fails tests/portal/test_workshop_data.py, so a new
table is never left out of an export by accident.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import ColumnElement, LargeBinary, String, Table, Text, select

from portal.db.models import (
    Base,
    Purchase,
    RemoteJob,
    User,
    WorkshopBox,
)

Scope = Callable[[Table, int], ColumnElement[bool]]


def _own(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.workshop_id == workshop_id


def _of_users(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.user_id.in_(select(User.id).where(User.workshop_id == workshop_id))


def _of_logins(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.login.in_(select(User.login).where(User.workshop_id == workshop_id))


def _of_jobs(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.job_id.in_(select(RemoteJob.id).where(RemoteJob.workshop_id == workshop_id))


def _of_purchases(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.purchase_id.in_(select(Purchase.id).where(Purchase.workshop_id == workshop_id))


def _of_tickets(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.ticket_id.in_(
        select(Purchase.ticket_id).where(Purchase.workshop_id == workshop_id)
    )


def _of_boxes(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.device.in_(
        select(WorkshopBox.device).where(WorkshopBox.workshop_id == workshop_id)
    )


def _workshop_row(table: Table, workshop_id: int) -> ColumnElement[bool]:
    return table.c.id == workshop_id


SCOPES: dict[str, Scope] = {
    "workshops": _workshop_row,
    "users": _own,
    "totp_secrets": _of_users,
    "web_sessions": _of_users,
    "pending_logins": _of_users,
    "login_guards": _of_logins,
    "bookings": _own,
    "purchases": _own,
    "invoices": _own,
    "deliveries": _of_purchases,
    "revoked_tickets": _of_tickets,
    "workshop_boxes": _own,
    "enrolled_boxes": _of_boxes,
    "enrolment_requests": _of_boxes,
    "claim_refusals": _own,
    "remote_sessions": _own,
    "remote_jobs": _own,
    "remote_job_events": _of_jobs,
    "privacy_erasures": _own,
}
"""the workshop's rows of each table that holds any"""

NOT_A_WORKSHOPS: dict[str, str] = {
    "address_attempts": "login attempts per client address, before anybody is known",
    "invoice_counters": "the portal's invoice numbering, one counter per year",
    "stored_packages": "the operator's package store (flash packages of the publishers)",
    "privacy_keys": "the portal's key of the VIN hashes",
    "info_imports": "the information services' content (the same for every workshop)",
    "info_vehicles": "the information services' content",
    "info_documents": "the information services' content",
    "info_links": "the information services' content",
    "info_campaign_vins": "the manufacturer's campaign list (content), not a workshop's record",
    "info_labour": "the information services' content",
    "info_drawings": "the information services' content",
    "info_software": "the information services' content",
}
"""tables that hold no workshop's rows, and why"""

SECRET_COLUMNS = frozenset({
    "users.password_hash", "totp_secrets.secret", "web_sessions.token_sha256",
    "web_sessions.csrf_token", "pending_logins.token_sha256", "privacy_keys.key",
    "enrolment_requests.proof",
})  # fmt: skip
"""columns no export carries: what would let its reader log in or claim a box"""


def tables() -> list[Table]:
    """Every table of the schema, parents before children."""
    return list(Base.metadata.sorted_tables)


def scope_of(table: Table, workshop_id: int | None) -> ColumnElement[bool] | None:
    """The clause picking ``workshop_id``'s rows of ``table`` (None: every row, for the operator);
    a table of no workshop with a workshop given: a clause that picks nothing."""
    if workshop_id is None:
        return None
    scope = SCOPES.get(table.name)
    if scope is None:
        from sqlalchemy import false

        return false()
    return scope(table, workshop_id)


def text_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, String | Text)]


def binary_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, LargeBinary)]
