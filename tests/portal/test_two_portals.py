"""Two ``vci-portal serve`` processes on one PostgreSQL serve one portal, as behind a load
balancer without sticky sessions: what one process does the other shows, a session opened on
one works on the other, the second factor's code may reach the other process than the password
did, the per-address login limit counts the attempts both processes saw, and purchases split
across both never overdraw the credit (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import re

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal import accounts
from portal.accounts import Actor
from portal.credit import BankTransfer
from portal.db.engine import open_database
from portal.db.models import Invoice, TotpSecret, Workshop
from tests.portal.conftest import FAST_HASHER, PASSWORD, claim, sign_up
from tests.portal.web_client import CSRF, Browser, PortalFarm

DEVICE = "pi-00000000deadbeef"
SIGNUP = {
    "name": "Werkstatt Nord", "street": "Ring 2", "postcode": "20095", "city": "Hamburg",
    "country": "DE", "vat_id": "DE123456789", "owner_name": "Chef",
    "owner_login": "chef@nord.example", "password": PASSWORD,
}  # fmt: skip
BUY = {"tariff": "basic-9h", "device": DEVICE, "vin": "", "start": ""}


def _factory(farm: PortalFarm) -> tuple[object, sessionmaker[Session]]:
    return open_database(farm.db_url, migrate=False)


def _operator(factory: sessionmaker[Session]) -> Actor:
    with factory() as session, session.begin():
        user = accounts.add_operator(
            session, login="ops@portal.example", name="Operator", password=PASSWORD,
            hasher=FAST_HASHER,
        )  # fmt: skip
        session.flush()
        return Actor.of(user)


async def _close(*browsers: Browser) -> None:
    for browser in browsers:
        await browser.close()


def test_a_workshop_served_by_two_processes_sees_one_state(farm: PortalFarm) -> None:
    """Signed up and topped up on A, logged in on A, the same session buys on B; A shows the
    purchase, its ticket and invoice; logging out on B ends the session on A too."""
    a, b = farm.start(), farm.start()
    engine, factory = _factory(farm)
    _operator(factory)

    async def run() -> None:
        owner_a = Browser(a)
        owner_b = Browser(b, owner_a.jar)  # the same browser, sent to the other process
        ops = Browser(a)
        try:
            assert "signed up" in (await owner_a.post("/signup", SIGNUP)).text
            assert (await owner_a.log_in("chef@nord.example", PASSWORD)).location == "/"
            assert (await ops.log_in("ops@portal.example", PASSWORD)).location == "/"
            with factory() as session:
                workshop = session.scalar(
                    select(Workshop.id).where(Workshop.vat_id == "DE123456789")
                )
            booked = await ops.post(f"/operator/workshops/{workshop}/top-up",
                                    {"amount": "50.00", "reference": "SEPA 0042"},
                                    csrf=await ops.csrf("/operator/workshops"))  # fmt: skip
            assert "Booked 50.00 EUR" in booked.text
            with factory() as session:  # the box, as if claimed on /boxes
                chef = accounts.find_user(session, "chef@nord.example")
                assert chef is not None
            claim(factory, Actor.of(chef), DEVICE)

            seen_on_b = await owner_b.get("/dashboard")  # the session opened on A
            assert seen_on_b.status == 200 and "Credit: 50.00 EUR" in seen_on_b.text
            bought = await owner_b.post("/buy", BUY, csrf=await owner_b.csrf("/buy"))
            assert bought.status == 303 and bought.location.startswith("/purchases/"), bought.text

            dashboard = await owner_a.get("/dashboard")
            assert "Credit: 41.00 EUR" in dashboard.text and DEVICE in dashboard.text
            shown = await owner_a.get(bought.location)
            assert shown.status == 200 and re.search(r'<p class="ticket">vt1\.', shown.text)
            link = re.search(r'href="(/invoices/\d+\.pdf)"', shown.text)
            assert link and (await owner_a.get(link.group(1))).body.startswith(b"%PDF")

            assert (
                await owner_b.post("/logout", {}, csrf=await owner_b.csrf("/dashboard"))
            ).location == "/login"
            assert (await owner_a.get("/dashboard")).location == "/login"
        finally:
            await _close(owner_a, owner_b, ops)

    try:
        asyncio.run(run())
    finally:
        engine.dispose()  # type: ignore[attr-defined]


def test_the_second_factor_may_reach_the_other_process(farm: PortalFarm) -> None:
    """The password on A, the authenticator code on B (a load balancer without sticky sessions):
    the pending login is in the database, not in A's memory."""
    a, b = farm.start(), farm.start()
    engine, factory = _factory(farm)
    sign_up(factory, 1)
    secret = pyotp.random_base32()
    with factory() as session, session.begin():
        owner = accounts.find_user(session, "owner1@example.com")
        assert owner is not None
        session.add(TotpSecret(user_id=owner.id, secret=secret, last_step=0))

    async def run() -> None:
        on_a = Browser(a)
        on_b = Browser(b, on_a.jar)
        try:
            asked = await on_a.log_in("owner1@example.com", PASSWORD)
            assert 'action="/login/code"' in asked.text
            code = {"code": pyotp.TOTP(secret).now()}
            done = await on_b.post("/login/code", code, csrf=CSRF.search(asked.text)[1])  # type: ignore[index]
            assert done.status == 303, done.text
            assert (await on_a.get("/dashboard")).status == 200
        finally:
            await _close(on_a, on_b)

    try:
        asyncio.run(run())
    finally:
        engine.dispose()  # type: ignore[attr-defined]


def test_login_attempts_per_address_are_counted_by_both_processes(farm: PortalFarm) -> None:
    """10 attempts a minute per address, whichever process they reach: not 10 on each."""
    a, b = farm.start(), farm.start()

    async def run() -> None:
        on_a = Browser(a)
        on_b = Browser(b, on_a.jar)
        try:
            for n in range(10):  # a new login name each time: the lock-out per name does not help
                browser = on_a if n % 2 else on_b
                wrong = {"login": f"nobody{n}@example.com", "password": "wrong password 123"}
                assert (await browser.post("/login", wrong)).status == 401
            for browser in (on_a, on_b):
                limited = await browser.post("/login", {"login": "x@example.com", "password": "x"})
                assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
        finally:
            await _close(on_a, on_b)

    asyncio.run(run())


def test_purchases_split_across_two_processes_never_overdraw(farm: PortalFarm) -> None:
    """A credit for exactly 10 tickets, 50 purchases at once over HTTP, 25 on each process:
    exactly 10 are bought, the credit is 0, the invoices are numbered 1 to 10."""
    a, b = farm.start(), farm.start()
    engine, factory = _factory(farm)
    owner = sign_up(factory, 1)
    with factory() as session, session.begin():
        BankTransfer().book(session, _operator(factory), owner.workshop_id or 0, 90_00, "SEPA 1")
    claim(factory, owner, DEVICE)

    async def run() -> list[int]:
        on_a = Browser(a)
        on_b = Browser(b, on_a.jar)
        try:
            assert (await on_a.log_in("owner1@example.com", PASSWORD)).location == "/"
            tokens = {on_a: await on_a.csrf("/buy"), on_b: await on_b.csrf("/buy")}
            answers = await asyncio.gather(*(
                browser.post("/buy", BUY, csrf=tokens[browser])
                for _ in range(25) for browser in (on_a, on_b)
            ))  # fmt: skip
            assert "Credit: 0.00 EUR" in (await on_b.get("/dashboard")).text
            return sorted(answer.status for answer in answers)
        finally:
            await _close(on_a, on_b)

    try:
        assert asyncio.run(run()) == [303] * 10 + [402] * 40
        with factory() as session:
            numbers = session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
        assert numbers == list(range(1, 11))
    finally:
        engine.dispose()  # type: ignore[attr-defined]
