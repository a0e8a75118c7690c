"""A workshop's prepaid credit: the ledger of bookings, top-ups through a payment provider, and
buying a ticket from the credit with its invoice.

The balance is the SUM of the workshop's bookings, never a stored figure. A purchase reads the
balance and books the debit in one transaction that holds a lock for the workshop from the
start: on PostgreSQL ``SELECT ... FOR UPDATE`` of the workshop's row (READ COMMITTED: the SUM
after the lock sees every purchase committed before it), on SQLite ``BEGIN IMMEDIATE`` (one
writer at a time); so concurrent purchases never overdraw the credit. The ticket is the real
signed ticket (portal/tickets.py), the invoice is issued in the same transaction
(portal/invoices.py), and so is the ticket's delivery to its box (portal/delivery.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import ConfigError, InsufficientCredit, NotPermitted, PaymentError
from firmware_py.gateway.tariffs import TARIFFS
from firmware_py.gateway.ticket_token import TICKET_PREFIX, verify
from firmware_py.i18n import N_, Text
from firmware_py.identity import check_device_id
from portal import boxes, tickets
from portal.accounts import Actor, require_enabled, require_operator, workshop_for
from portal.db.engine import write_transaction
from portal.db.models import (
    Booking,
    BookingKind,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Invoice,
    Purchase,
    Role,
    Workshop,
)
from portal.i18n import portal_language
from portal.invoices import (
    InvoiceLine,
    Party,
    Seller,
    euro,
    invoice_year,
    next_invoice_number,
    price_of,
    render_pdf,
)

VIN_PATTERN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
"""ISO 3779: 17 characters, no I, O or Q"""
START_SLACK = 300
"""a chosen start may lie this many seconds in the past (the form was open a while)"""
MAX_START_AHEAD = 365 * 86400
MAX_TOP_UP_CENTS = 100_000_00


def balance(session: Session, actor: Actor, workshop_id: int) -> int:
    """The workshop's credit in cents: the SUM of its bookings."""
    workshop_for(session, actor, workshop_id)
    return _balance(session, workshop_id)


def _balance(session: Session, workshop_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Booking.amount_cents), 0)).where(
            Booking.workshop_id == workshop_id
        )
    )
    return int(total or 0)


def statement(session: Session, actor: Actor, workshop_id: int) -> list[Booking]:
    workshop_for(session, actor, workshop_id)
    return list(
        session.scalars(
            select(Booking).where(Booking.workshop_id == workshop_id).order_by(Booking.id)
        )
    )


class PaymentProvider(Protocol):
    """How money reaches a workshop's credit. Each provider books a top-up once per payment."""

    name: str

    def book(
        self, session: Session, actor: Actor, workshop_id: int, amount_cents: int, reference: str,
        *, now: float | None = None,
    ) -> Booking: ...  # fmt: skip


class BankTransfer:
    """Top-up by bank transfer: the workshop transfers to the operator's account, the operator
    sees the payment on the statement and books it with the bank's reference. The same bank
    reference is booked once (a unique column, so also two operators at the same moment)."""

    name = "bank_transfer"

    def book(
        self, session: Session, actor: Actor, workshop_id: int, amount_cents: int, reference: str,
        *, now: float | None = None,
    ) -> Booking:  # fmt: skip
        require_operator(actor)
        workshop_for(session, actor, workshop_id)
        reference = reference.strip()
        if not reference:
            raise PaymentError(
                N_("a top-up needs the payment's bank reference"),
                hint=N_("Copy it from the statement"),
            )
        if not 0 < amount_cents <= MAX_TOP_UP_CENTS:
            raise PaymentError(
                N_("{value} is not a top-up amount"),
                values={"value": euro(amount_cents)},
                hint=N_("Give an amount above 0 and up to {value}"),
                hint_values={"value": euro(MAX_TOP_UP_CENTS)},
            )
        duplicate = PaymentError(
            f"the bank reference {reference!r} is booked already",
            hint="Each payment is booked once; check the workshop's statement",
        )
        if session.scalar(select(Booking.id).where(Booking.bank_reference == reference)):
            raise duplicate
        booking = Booking(
            workshop_id=workshop_id, kind=BookingKind.TOP_UP.value, amount_cents=amount_cents,
            reference=f"bank transfer {reference}", bank_reference=reference,
            booked_by=actor.user_id, created_at=int(now if now is not None else time.time()),
        )  # fmt: skip
        try:
            with session.begin_nested():
                session.add(booking)
        except IntegrityError as err:
            raise duplicate from err
        return booking


@dataclass(frozen=True)
class Signer:
    """The portal's ticket signing key (portal/keys.py)."""

    kid: str
    key: Ed25519PrivateKey


def _checked_order(
    tariff: str, device: str, vin: str | None, start: int | None, now: int
) -> tuple[str, str | None, int | None, int | None]:
    if tariff not in TARIFFS:
        raise NotPermitted(
            N_("unknown tariff {tariff}"),
            values={"tariff": repr(tariff)},
            hint=N_("One of {value}"),
            hint_values={"value": ", ".join(TARIFFS)},
        )
    try:
        check_device_id(device)
    except ConfigError as err:
        raise NotPermitted(
            N_("{device} is not a box's device id"),
            values={"device": repr(device[:80])},
            hint=N_("Copy it from the box's label"),
        ) from err
    if vin is not None:
        vin = vin.strip().upper()
        if not VIN_PATTERN.fullmatch(vin):
            raise NotPermitted(
                N_("{vin} is not a VIN"),
                values={"vin": repr(vin[:40])},
                hint=N_("17 letters and digits, no I, O or Q"),
            )
    duration = TARIFFS[tariff].duration
    if duration is None:
        if start is not None:
            raise NotPermitted(
                N_("the tariff {tariff} counts uses, not time"),
                values={"tariff": tariff},
                hint=N_("Buy it without a start"),
            )
        return tariff, vin, None, None
    start = now if start is None else start
    if start < now - START_SLACK or start > now + MAX_START_AHEAD:
        raise NotPermitted(
            N_("the start lies in the past or more than a year ahead"),
            hint=N_("Choose another start"),
        )
    return tariff, vin, start, start + duration


def buy_ticket(
    factory: sessionmaker[Session],
    actor: Actor,
    workshop_id: int,
    *,
    tariff: str,
    device: str,
    signer: Signer,
    seller: Seller,
    vin: str | None = None,
    start: int | None = None,
    now: float | None = None,
    language: str = "de",
) -> Purchase:
    """Buy one ticket for a box the workshop claimed and that is not revoked (optionally bound to a VIN; valid from ``start``, default now,
    for the tariff's duration): debit the credit, issue the signed ticket and the invoice, all in
    one transaction. :class:`InsufficientCredit` when the credit does not cover the gross price
    (nothing is booked then). Returns the purchase with its invoice loaded. The invoice is issued
    in ``language`` (the buyer's; German by default: the portal sells in Germany) and kept as
    issued."""
    if actor.role not in (Role.OWNER, Role.TECHNICIAN):
        raise NotPermitted(
            N_("tickets are bought by a workshop's users"), hint=N_("Log in as the workshop's user")
        )
    t = int(now if now is not None else time.time())
    tariff, vin, starts_at, ends_at = _checked_order(tariff, device, vin, start, t)
    price = price_of(TARIFFS[tariff])
    with write_transaction(factory) as session:
        workshop_for(session, actor, workshop_id)
        workshop = session.scalars(
            select(Workshop)
            .where(Workshop.id == workshop_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        require_enabled(workshop)
        # the ticket names one box: one the workshop claimed and that is not revoked (a device
        # of another workshop gets the same answer as an unknown one)
        box = boxes.require(session, actor, device)
        if box.workshop_id != workshop_id:
            raise NotPermitted(
                N_("no box {device} in this workshop"),
                values={"device": repr(device[:64])},
                hint=N_("Claim the box first with the device id and code on its label"),
            )
        credit = _balance(session, workshop_id)
        if credit < price.gross_cents:
            raise InsufficientCredit(
                N_("the credit of {credit} does not cover {tariff} at {price}"),
                values={"credit": euro(credit), "tariff": Text(TARIFFS[tariff].name),
                        "price": euro(price.gross_cents)},
            )  # fmt: skip
        token = tickets.issue(
            signer.key, signer.kid, tariff=tariff, device=device, vin=vin, now=t,
            not_before=starts_at, not_after=ends_at,
        )  # fmt: skip
        tid = str(verify(TICKET_PREFIX, token, {signer.kid: signer.key.public_key()})["tid"])
        purchase = Purchase(
            workshop_id=workshop_id, user_id=actor.user_id, tariff=tariff, device=device, vin=vin,
            starts_at=starts_at, ends_at=ends_at, net_cents=price.net_cents,
            vat_cents=price.vat_cents, ticket_id=tid, ticket=token, created_at=t,
        )  # fmt: skip
        session.add(purchase)
        session.flush()
        session.add(
            Booking(
                workshop_id=workshop_id, kind=BookingKind.PURCHASE.value,
                amount_cents=-price.gross_cents, reference=f"ticket {tid} ({tariff})",
                purchase_id=purchase.id, booked_by=actor.user_id, created_at=t,
            )
        )  # fmt: skip
        year = invoice_year(t)
        number = next_invoice_number(session, year)
        buyer = Party(
            workshop.name, workshop.street, workshop.postcode, workshop.city, workshop.country,
            workshop.vat_id,
        )  # fmt: skip
        line = InvoiceLine(TARIFFS[tariff], device, vin, starts_at, ends_at)
        invoice = Invoice(
            purchase_id=purchase.id, workshop_id=workshop_id, year=year, number=number,
            issued_at=t, pdf=render_pdf(seller, buyer, f"{year}-{number:06d}", t, line, price,
                           portal_language(language)),
        )  # fmt: skip
        session.add(invoice)
        purchase.invoice = invoice
        # to its box over the broker link (portal/delivery.py): no copying of the ticket
        session.add(
            Delivery(
                purchase_id=purchase.id, device=device, kind=DeliveryKind.TICKET.value,
                state=DeliveryState.PENDING.value, attempts=0, next_attempt_at=0, created_at=t,
            )
        )  # fmt: skip
    return purchase


def purchases(session: Session, actor: Actor, workshop_id: int) -> list[Purchase]:
    workshop_for(session, actor, workshop_id)
    return list(
        session.scalars(
            select(Purchase).where(Purchase.workshop_id == workshop_id).order_by(Purchase.id)
        )
    )


def invoice(session: Session, actor: Actor, invoice_id: int) -> Invoice:
    """One invoice, if the actor may see it (its workshop's users, operators)."""
    found = session.get(Invoice, invoice_id)
    if found is None or not (actor.is_operator or actor.workshop_id == found.workshop_id):
        # the same answer for another workshop's invoice as for none: ids reveal nothing
        raise NotPermitted(
            N_("there is no invoice {invoice_id} of yours"),
            values={"invoice_id": invoice_id},
            hint=N_("Check the number"),
        )
    return found


def purchase(session: Session, actor: Actor, purchase_id: int) -> Purchase:
    """One purchase, if the actor may see it (its workshop's users, operators)."""
    found = session.get(Purchase, purchase_id)
    if found is None or not (actor.is_operator or actor.workshop_id == found.workshop_id):
        raise NotPermitted(
            N_("there is no purchase {purchase_id} of yours"),
            values={"purchase_id": purchase_id},
            hint=N_("Check the number"),
        )
    return found
