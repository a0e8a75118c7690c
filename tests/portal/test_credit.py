"""The credit ledger, top-ups by bank transfer, buying tickets and their invoices
(portal/credit.py, portal/invoices.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import (
    InsufficientCredit,
    NotPermitted,
    PaymentError,
    WorkshopDisabled,
)
from firmware_py.gateway.tariffs import TARIFFS
from firmware_py.gateway.ticket_token import parse_ticket
from portal import accounts, boxes, credit
from portal.accounts import Actor
from portal.credit import BankTransfer, Signer
from portal.db.models import Booking, Invoice
from portal.invoices import Seller, price_of
from tests.portal.conftest import NOW, at_once, claim, sign_up

BASIC_9H = price_of(TARIFFS["basic-9h"])
VIN = "WBA3A5C50DF123456"
DEVICE = "pi-00000000deadbeef"
"""the box the workshops of these tests claimed"""


def top_up(factory: sessionmaker[Session], operator: Actor, workshop: Actor, cents: int,
           reference: str) -> None:  # fmt: skip
    assert workshop.workshop_id is not None
    with factory() as session, session.begin():
        BankTransfer().book(session, operator, workshop.workshop_id, cents, reference, now=NOW)


def balance(factory: sessionmaker[Session], actor: Actor) -> int:
    assert actor.workshop_id is not None
    with factory() as session:
        return credit.balance(session, actor, actor.workshop_id)


def buy(factory: sessionmaker[Session], actor: Actor, signer: Signer, seller: Seller, **kw: object):  # type: ignore[no-untyped-def]
    assert actor.workshop_id is not None
    order = {"tariff": "basic-9h", "device": DEVICE, "now": NOW, **kw}
    return credit.buy_ticket(
        factory, actor, actor.workshop_id, signer=signer, seller=seller, **order
    )  # type: ignore[arg-type]


def test_prices_split_into_net_and_vat() -> None:
    assert (BASIC_9H.net_cents, BASIC_9H.vat_cents, BASIC_9H.gross_cents) == (756, 144, 900)
    basic_1y = price_of(TARIFFS["basic-1y"])
    assert (basic_1y.net_cents, basic_1y.vat_cents) == (300000, 57000)
    helpdesk = price_of(TARIFFS["helpdesk"])  # the help desk's price is net
    assert (helpdesk.net_cents, helpdesk.vat_cents, helpdesk.gross_cents) == (2500, 475, 2975)


def test_top_up_by_bank_transfer_once_per_reference(
    factory: sessionmaker[Session], operator: Actor
) -> None:
    first, second = sign_up(factory, 1), sign_up(factory, 2)
    top_up(factory, operator, first, 5000, "SEPA-2026-0001")
    assert balance(factory, first) == 5000
    with pytest.raises(PaymentError, match="booked already"):
        top_up(factory, operator, first, 5000, "SEPA-2026-0001")
    with pytest.raises(PaymentError, match="booked already"):  # not for another workshop either
        top_up(factory, operator, second, 5000, " SEPA-2026-0001 ")
    with pytest.raises(PaymentError, match="not a top-up amount"):
        top_up(factory, operator, first, 0, "SEPA-2026-0002")
    with pytest.raises(NotPermitted, match="operator"):  # a workshop cannot credit itself
        top_up(factory, first, first, 5000, "SEPA-2026-0003")
    assert (balance(factory, first), balance(factory, second)) == (5000, 0)


def test_one_payment_booked_by_two_operators_at_once_counts_once(
    factory: sessionmaker[Session], operator: Actor
) -> None:
    owner = sign_up(factory, 1)

    def book() -> str:
        try:
            top_up(factory, operator, owner, 5000, "SEPA-2026-0001")
        except PaymentError:
            return "refused"
        return "booked"

    assert at_once(8, book) == Counter({"booked": 1, "refused": 7})
    assert balance(factory, owner) == 5000


def test_buy_debits_issues_a_ticket_and_an_invoice(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    owner = sign_up(factory, 1)
    claim(factory, owner, DEVICE)
    top_up(factory, operator, owner, 1000, "SEPA-1")
    purchase = buy(factory, owner, signer, seller, vin=VIN.lower(), start=NOW + 3600)
    assert balance(factory, owner) == 100
    ticket = parse_ticket(purchase.ticket, {signer.kid: signer.key.public_key()})
    assert ticket.tid == purchase.ticket_id
    assert (ticket.tariff, ticket.device, ticket.vin) == ("basic-9h", "pi-00000000deadbeef", VIN)
    assert (ticket.nbf, ticket.exp) == (NOW + 3600, NOW + 3600 + 9 * 3600)
    assert purchase.invoice.label == "2026-000001"
    with factory() as session:
        kinds = [
            (b.kind, b.amount_cents)
            for b in credit.statement(session, owner, owner.workshop_id or 0)
        ]
    assert kinds == [("top_up", 1000), ("purchase", -900)]


def test_invoice_pdf_text(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    owner = sign_up(factory, 7)
    claim(factory, owner, DEVICE)
    top_up(factory, operator, owner, 400000, "SEPA-7")
    buy(factory, owner, signer, seller, tariff="basic-9h")
    purchase = buy(factory, owner, signer, seller, tariff="basic-1y", vin=VIN, start=NOW + 86400,
                   language="en")  # fmt: skip
    text = "\n".join(
        page.extract_text() for page in PdfReader(io.BytesIO(purchase.invoice.pdf)).pages
    )
    for expected in (
        "Invoice 2026-000002", "Invoice date: Sep 21, 2026",
        "Seller", "VCI Portal GmbH", "DE999999999", "Buyer", "Werkstatt 7 GmbH",
        "Werkstrasse 7", "10115 Berlin", "VAT id: DE100000007",
        "Basic, 1 year (basic-1y)", "365 days", "pi-00000000deadbeef", VIN,
        "9/22/26", "9/22/27", "UTC",
        "Net amount", "3,000.00 EUR", "VAT 19 %", "570.00 EUR", "Gross amount", "3,570.00 EUR",
    ):  # fmt: skip
        assert expected in text, expected
    # the portal sells in Germany: an invoice is issued in German unless the buyer reads English
    german = buy(factory, owner, signer, seller, tariff="basic-1w", start=NOW + 86400)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(german.invoice.pdf)).pages)
    for expected in (
        "Rechnung 2026-000003", "Rechnungsdatum: 21.09.2026", "Verkäufer", "Käufer",
        "USt-IdNr.: DE100000007", "Basic, 1 Woche (basic-1w)", "7 Tage", "Leistungszeitraum",
        "22.09.26", "Nettobetrag", "84,03", "USt. 19 %", "15,97", "Bruttobetrag", "100,00 €",
    ):  # fmt: skip
        assert expected in text, (expected, text)
    with factory() as session:
        numbers = session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
    assert list(numbers) == [1, 2, 3]


def test_refused_when_the_credit_does_not_cover_it(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    owner = sign_up(factory, 1)
    claim(factory, owner, DEVICE)
    top_up(factory, operator, owner, 899, "SEPA-1")
    with pytest.raises(
        InsufficientCredit, match=r"8\.99 EUR does not cover Basic, 9 hours at 9\.00 EUR"
    ):
        buy(factory, owner, signer, seller)
    with factory() as session:
        assert session.scalars(select(Invoice)).all() == []
        assert len(session.scalars(select(Booking)).all()) == 1
    top_up(factory, operator, owner, 1, "SEPA-2")
    assert buy(factory, owner, signer, seller).invoice.number == 1  # no number was used up
    assert balance(factory, owner) == 0


def test_disabled_workshop_cannot_buy(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    owner = sign_up(factory, 1)
    claim(factory, owner, DEVICE)
    top_up(factory, operator, owner, 10000, "SEPA-1")
    with factory() as session, session.begin():
        accounts.set_enabled(session, operator, owner.workshop_id or 0, False)
    with pytest.raises(WorkshopDisabled):
        buy(factory, owner, signer, seller)
    assert balance(factory, owner) == 10000


def test_orders_are_checked(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    owner = sign_up(factory, 1)
    claim(factory, owner, DEVICE)
    top_up(factory, operator, owner, 10000, "SEPA-1")
    for kw, message in (
        ({"tariff": "gold"}, "unknown tariff"),
        ({"device": "pi/#"}, "not a box's device id"),
        ({"vin": "WBA3A5C50DF12345O"}, "not a VIN"),
        ({"start": NOW - 3600}, "in the past"),
        ({"tariff": "helpdesk", "start": NOW}, "counts uses"),
    ):
        with pytest.raises(NotPermitted, match=message):
            buy(factory, owner, signer, seller, **kw)
    with pytest.raises(NotPermitted, match="workshop's users"):
        credit.buy_ticket(factory, operator, owner.workshop_id or 0, tariff="basic-9h",
                          device="pi-1", signer=signer, seller=seller)  # fmt: skip
    assert balance(factory, owner) == 10000


def test_tickets_are_sold_only_for_a_usable_box_of_the_workshop(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    """A ticket names one box: a device the workshop never claimed, another workshop's box and a
    revoked box are refused with the same words (ids are not disclosed) and nothing is debited."""
    mine, theirs = sign_up(factory, 1), sign_up(factory, 2)
    top_up(factory, operator, mine, 10000, "SEPA-1")
    claim(factory, theirs, "pi-00000000000000b2")
    claim(factory, mine, "pi-00000000000000a9")
    with factory() as session, session.begin():
        boxes.record_revocation(session, mine, "pi-00000000000000a9")
    for device in ("pi-00000000000000ff", "pi-00000000000000b2"):
        with pytest.raises(NotPermitted, match="no box .* in this workshop"):
            buy(factory, mine, signer, seller, device=device)
    with pytest.raises(NotPermitted, match="was revoked"):
        buy(factory, mine, signer, seller, device="pi-00000000000000a9")
    assert balance(factory, mine) == 10000
    claim(factory, mine, "pi-00000000000000a1")
    assert buy(factory, mine, signer, seller, device="pi-00000000000000a1").device == (
        "pi-00000000000000a1"
    )


def test_workshops_cannot_reach_each_other(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    """Every service call with another workshop's id is refused; the operator reaches all."""
    mine, theirs = sign_up(factory, 1), sign_up(factory, 2)
    claim(factory, theirs, DEVICE)
    top_up(factory, operator, mine, 10000, "SEPA-1")
    top_up(factory, operator, theirs, 10000, "SEPA-2")
    their_invoice = buy(factory, theirs, signer, seller).invoice.id
    other = theirs.workshop_id or 0
    with factory() as session:
        for call in (
            lambda: credit.balance(session, mine, other),
            lambda: credit.statement(session, mine, other),
            lambda: credit.purchases(session, mine, other),
            lambda: credit.invoice(session, mine, their_invoice),
            lambda: accounts.users_of(session, mine, other),
            lambda: accounts.add_user(
                session,
                mine,
                other,
                login="x@example.com",
                name="x",
                password="a long enough password",
            ),  # fmt: skip
            lambda: accounts.set_enabled(session, mine, other, False),
        ):
            with pytest.raises(NotPermitted):
                call()
        assert [w.id for w in accounts.workshops(session, mine)] == [mine.workshop_id]
        assert credit.invoice(session, operator, their_invoice).workshop_id == other
        assert credit.balance(session, operator, other) == 10000 - BASIC_9H.gross_cents
    with pytest.raises(NotPermitted, match="another workshop"):
        credit.buy_ticket(factory, mine, other, tariff="basic-9h", device="pi-1",
                          signer=signer, seller=seller)  # fmt: skip
    assert balance(factory, mine) == 10000
    assert balance(factory, theirs) == 10000 - BASIC_9H.gross_cents


def test_concurrent_purchases_never_overdraw(
    factory: sessionmaker[Session], operator: Actor, signer: Signer, seller: Seller
) -> None:
    """50 buyers at once (threads, each with its own connection) against a credit for exactly
    10 tickets: exactly 10 are bought, the balance is 0, invoice numbers are 1..10."""
    owner = sign_up(factory, 1)
    claim(factory, owner, DEVICE)
    top_up(factory, operator, owner, 10 * BASIC_9H.gross_cents, "SEPA-1")

    def buyer() -> str:
        try:
            buy(factory, owner, signer, seller)
        except InsufficientCredit:
            return "refused"
        return "bought"

    outcomes = at_once(50, buyer)
    assert outcomes == Counter({"bought": 10, "refused": 40})
    assert balance(factory, owner) == 0
    with factory() as session:
        numbers = session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
        assert list(numbers) == list(range(1, 11))
        assert len(credit.purchases(session, owner, owner.workshop_id or 0)) == 10
