"""The portal's tables as SQLAlchemy 2 typed models.

Money is integer euro cents. A workshop's credit balance is the SUM of its bookings and is never
stored as a column. Times are integer seconds since the epoch (UTC), like the tickets' times.
Secrets are stored only as what a check needs: password hashes (argon2), SHA-256 of session
tokens; the TOTP secret itself (the authenticator needs it to compute codes).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(StrEnum):
    OWNER = "owner"
    """runs the workshop's account: adds technicians, buys, sees invoices"""
    TECHNICIAN = "technician"
    """works on cars: buys tickets and uses them"""
    OPERATOR = "operator"
    """runs the portal (the platform): books payments, disables workshops; belongs to no workshop"""


class BookingKind(StrEnum):
    TOP_UP = "top_up"
    PURCHASE = "purchase"
    REFUND = "refund"


class Workshop(Base):
    __tablename__ = "workshops"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    street: Mapped[str] = mapped_column(String(200))
    postcode: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))
    vat_id: Mapped[str] = mapped_column(String(20), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)
    """when the account was deleted (portal/workshop_data.py): what the law keeps is kept with
    this row, everything else is gone; a deleted workshop is disabled for good"""

    users: Mapped[list[User]] = relationship(back_populates="workshop")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # operators belong to no workshop; everybody else to exactly one
        CheckConstraint(
            "(role = 'operator') = (workshop_id IS NULL)", name="operator_has_no_workshop"
        ),
        CheckConstraint("role IN ('owner', 'technician', 'operator')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workshop_id: Mapped[int | None] = mapped_column(ForeignKey("workshops.id"), index=True)
    login: Mapped[str] = mapped_column(String(254), unique=True)
    """the e-mail address, lower-cased"""
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)

    workshop: Mapped[Workshop | None] = relationship(back_populates="users")
    totp: Mapped[TotpSecret | None] = relationship(cascade="all, delete-orphan")


class TotpSecret(Base):
    """A user's optional second factor (RFC 6238), and the last time step a code was used in,
    so that the same code cannot be used twice."""

    __tablename__ = "totp_secrets"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)


class LoginGuard(Base):
    """Failed logins per login name (known or not, so that the lock-out says nothing about
    which login names exist), and until when the name is locked."""

    __tablename__ = "login_guards"

    login: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[int] = mapped_column(BigInteger, default=0)


class WebSession(Base):
    """A server-side login session: the cookie carries the token, the table its SHA-256; each
    session has its own CSRF token for the forms a later web layer serves."""

    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class PendingLogin(Base):
    """A login whose password was right and whose authenticator code is still to come: the
    cookie carries a random token, the table its SHA-256 and the user, until ``expires_at``. In
    the database, not in a process's memory: behind a load balancer the code may reach another
    portal process than the password did."""

    __tablename__ = "pending_logins"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class AddressAttempts(Base):
    """The recent login and sign-up attempts of one client address (portal/address_limit.py):
    their times in milliseconds, oldest first, at most the limit's count of them. Shared by every
    portal process, so a client cannot multiply its attempts by the number of processes."""

    __tablename__ = "address_attempts"

    client: Mapped[str] = mapped_column(String(128), primary_key=True)
    times_ms: Mapped[str] = mapped_column(Text)
    """space-separated integers: the attempts still inside the window"""
    last_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    """the newest attempt: rows of quiet addresses are deleted by it"""


class Booking(Base):
    """One line of a workshop's credit ledger: a signed amount (top-ups and refunds positive,
    purchases negative). The balance is the SUM of a workshop's bookings."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("kind IN ('top_up', 'purchase', 'refund')", name="kind"),
        CheckConstraint(
            "(kind = 'purchase' AND amount_cents < 0) OR (kind <> 'purchase' AND amount_cents > 0)",
            name="sign",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(200))
    """what the booking is for, as the statement shows it"""
    bank_reference: Mapped[str | None] = mapped_column(String(140), unique=True)
    """a top-up's payment reference at the bank: a payment is booked once"""
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"), unique=True)
    booked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Purchase(Base):
    """A ticket bought from the credit: what, for which box (and car), when it is valid, what
    it cost, and the signed ticket issued for it."""

    __tablename__ = "purchases"

    id: Mapped[int] = mapped_column(primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    tariff: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(64))
    vin: Mapped[str | None] = mapped_column(String(17))
    starts_at: Mapped[int | None] = mapped_column(BigInteger)
    """start of the fixed validity window; None: a one-use ticket, counted from activation"""
    ends_at: Mapped[int | None] = mapped_column(BigInteger)
    net_cents: Mapped[int] = mapped_column(BigInteger)
    vat_cents: Mapped[int] = mapped_column(BigInteger)
    ticket_id: Mapped[str] = mapped_column(String(32), unique=True)
    ticket: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)

    invoice: Mapped[Invoice] = relationship(back_populates="purchase")


class InvoiceCounter(Base):
    """The last invoice number given out in a year: numbers run 1, 2, 3 ... without gaps,
    because the counter moves in the same transaction as the purchase."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


class Invoice(Base):
    """The invoice of one purchase, issued once: its number and the PDF as it was issued."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("year", "number", name="uq_invoices_year_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), unique=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)

    purchase: Mapped[Purchase] = relationship(back_populates="invoice")

    @property
    def label(self) -> str:
        """The invoice number as printed: ``2026-000042``."""
        return f"{self.year}-{self.number:06d}"


class DeliveryKind(StrEnum):
    TICKET = "ticket"
    """the purchase's signed ticket, added on its box"""
    REVOCATION = "revocation"
    """the portal's signed revocation list, after the purchase's ticket was revoked"""


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    """the box acknowledged it after storing it"""
    REFUSED = "refused"
    """the box refused it (a ticket for another box, expired, revoked) and said why"""


class Delivery(Base):
    """A ticket or revocation list on its way to its box over the broker link (portal/delivery.py):
    sent until the box acknowledges it. What goes is not stored here: the ticket is the
    purchase's, the revocation list is signed afresh when it is sent."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("kind IN ('ticket', 'revocation')", name="kind"),
        CheckConstraint("state IN ('pending', 'delivered', 'refused')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    device: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, default=0)
    """not sent again before this time (bounded backoff; a reconnect sends at once)"""
    refusal: Mapped[str | None] = mapped_column(String(500))
    """the box's reason, for a refused delivery"""
    created_at: Mapped[int] = mapped_column(BigInteger)
    done_at: Mapped[int | None] = mapped_column(BigInteger)


class RevokedTicket(Base):
    """A bought ticket the operator revoked (portal/delivery.py): the revocation list the boxes
    get is made from this table (and the reference tool's file, portal/tickets.py), so every
    portal process, on any machine, sends the same list."""

    __tablename__ = "revoked_tickets"

    ticket_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[int] = mapped_column(BigInteger)


class WorkshopBox(Base):
    """A box a workshop claimed through the portal (portal/boxes.py): the workshop it belongs to.
    The box's certificate, its enrolment requests and their proofs are portal/enrolment.py's;
    this row is what the portal's pages and services check before they let a user of a workshop
    see or use a box."""

    __tablename__ = "workshop_boxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    device: Mapped[str] = mapped_column(String(64), unique=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    """the workshop's own name for the box ("Bay 3")"""
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    """when its certificate was revoked; a revoked box is listed but cannot be used"""
    online: Mapped[bool | None] = mapped_column(Boolean)
    """the box's last retained state on the broker (portal/box_status.py); None: never seen"""
    seen_at: Mapped[int | None] = mapped_column(BigInteger)
    """when the portal last received the box's state"""
    version: Mapped[str | None] = mapped_column(String(40))
    """the software release the box said it runs"""
    vin: Mapped[str | None] = mapped_column(String(17))
    """the car connected to the box when it last said so (None: none)"""
    vehicle: Mapped[str | None] = mapped_column(String(80))
    """the car's type as the box names it from the VIN ("BMW 3 Series"), if known"""


class EnrolledBox(Base):
    """A box whose certificate the portal's CA signed when a workshop claimed it
    (portal/enrolment.py): the certificate the box fetches, its serial for the revocation list,
    and the key it was signed for."""

    __tablename__ = "enrolled_boxes"
    __table_args__ = (CheckConstraint("state IN ('claimed', 'revoked')", name="state"),)

    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    certificate: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(String(50))
    """the certificate's serial number in decimal (up to 159 bits: text)"""
    key_fp: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the box's public key (SubjectPublicKeyInfo)"""
    claimed_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class EnrolmentRequest(Base):
    """A box's waiting enrolment request (its CSR and the proof of its label code), kept by key
    and proof; a few per device (portal/enrolment.py says why)."""

    __tablename__ = "enrolment_requests"
    __table_args__ = (
        UniqueConstraint("device", "key_fp", "proof", name="uq_enrolment_requests_device_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device: Mapped[str] = mapped_column(String(64), index=True)
    key_fp: Mapped[str] = mapped_column(String(64))
    csr: Mapped[str] = mapped_column(Text)
    proof: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[int] = mapped_column(BigInteger)
    last_seen: Mapped[int] = mapped_column(BigInteger, index=True)


class ClaimRefusal(Base):
    """A refused claim: per box (wrong label codes lock the box's claims for a while) and per
    workshop (refused claims of any box lock the workshop's claims: no guessing across boxes)."""

    __tablename__ = "claim_refusals"

    id: Mapped[int] = mapped_column(primary_key=True)
    device: Mapped[str] = mapped_column(String(64), index=True)
    workshop_id: Mapped[int | None] = mapped_column(ForeignKey("workshops.id"), index=True)
    """the claiming workshop (None: the command line)"""
    wrong_code: Mapped[bool] = mapped_column(Boolean)
    """the box had asked and the code did not open its request (counts against the box)"""
    at: Mapped[int] = mapped_column(BigInteger)


class RemoteJobState(StrEnum):
    SENT = "sent"
    """published to the box, not yet accepted"""
    RUNNING = "running"
    """the box accepted it and reports progress"""
    DONE = "done"
    FAILED = "failed"
    """the box ran it and it failed (its error says why)"""
    DENIED = "denied"
    """the box refused it (ticket, preconditions, parameters)"""
    LOST = "lost"
    """no final answer reached this portal (the box away, the portal restarted)"""


class RemoteSessionRecord(Base):
    """A technician's remote session on a box (portal/sessions.py): who, when, which box and car.
    Its jobs are :class:`RemoteJob` rows."""

    __tablename__ = "remote_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    device: Mapped[str] = mapped_column(String(64), index=True)
    vin: Mapped[str | None] = mapped_column(String(17))
    """the car's VIN once a job of the session read it"""
    started_at: Mapped[int] = mapped_column(BigInteger)
    last_active_at: Mapped[int] = mapped_column(BigInteger)


class RemoteJob(Base):
    """One job of a remote session: what was asked (kind, ECU, parameters, the ticket chosen for
    it), how it went (state, progress, the box's job id) and what came out (a summary line and
    the result as the box returned it, JSON)."""

    __tablename__ = "remote_jobs"
    __table_args__ = (
        CheckConstraint(
            "state IN ('sent', 'running', 'done', 'failed', 'denied', 'lost')", name="state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("remote_sessions.id"), index=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    device: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    ecu: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(Text)
    """the parameters sent, JSON"""
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    """the workshop's ticket the portal chose for the job; None: a free job"""
    box_job: Mapped[str | None] = mapped_column(String(64))
    """the job's id on the box (from its job.accepted)"""
    state: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[int | None] = mapped_column(Integer)
    """percent, when the box reports one"""
    summary: Mapped[str] = mapped_column(String(500), default="")
    result: Mapped[str | None] = mapped_column(Text)
    """the box's final job (result or error), JSON"""
    created_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)


class RemoteJobEvent(Base):
    """A message the box sent about a job (accepted, progress, live values, the result), stored
    as it arrives, so that every portal process shows the job's progress and the session log."""

    __tablename__ = "remote_job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("remote_jobs.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    """JSON"""


class StoredPackage(Base):
    """A signed flash package in the portal's package store (portal/packages.py): what it holds
    and its file's SHA-256; the file itself is on disk under the store's directory, named by it."""

    __tablename__ = "stored_packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    ecu: Mapped[str] = mapped_column(String(32))
    ecu_address: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(64))
    sw_versions: Mapped[str] = mapped_column(Text)
    """the software versions it expects on the ECU, JSON"""
    publisher: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[int] = mapped_column(BigInteger)


# the information services' tables (registered on Base.metadata; portal/content/)
from portal.db import content_models as _content_models  # noqa: E402,F401
from portal.db import privacy_models as _privacy_models  # noqa: E402,F401
