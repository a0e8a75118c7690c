"""Authorization of every route of the portal's web pages (portal/web/), over a real socket with
a real HTTP client, on SQLite and PostgreSQL: no session, the wrong role, another workshop's ids,
POSTs without or with a wrong CSRF token (nothing changes), another site's requests, the lock-out
and the per-address login limit; and the whole way from sign-up to a downloaded invoice."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.gateway.ticket_token import parse_ticket
from portal import accounts, boxes, credit, sessions
from portal.accounts import Actor, find_user
from portal.address_limit import AddressLimiter
from portal.credit import BankTransfer, Signer
from portal.db.models import (
    Booking,
    ClaimRefusal,
    Delivery,
    EnrolledBox,
    Invoice,
    LoginGuard,
    Purchase,
    RemoteJob,
    RemoteSessionRecord,
    Role,
    TotpSecret,
    User,
    WebSession,
    Workshop,
    WorkshopBox,
)
from portal.invoices import Seller
from portal.login import PendingLogins
from portal.web.app import make_app
from portal.web.guard import Need, WebConfig, need_of, requires
from tests.portal.conftest import FAST_HASHER, NOW, PASSWORD, sign_up
from tests.portal.web_client import CSRF, Browser, portal

OWNER, TECH, OPS = Role.OWNER, Role.TECHNICIAN, Role.OPERATOR
ROUTES: dict[tuple[str, str], Need] = {
    ("GET", "/static/portal.css"): Need.PUBLIC,
    ("GET", "/healthz"): Need.PUBLIC,
    ("GET", "/packages/{sha256}.vcipkg"): Need.PUBLIC,  # the signed per-box URL is the credential
    ("POST", "/boxes/{device}/sessions/{sid}/store-packages"): Need.WORKSHOP,
    ("GET", "/boxes/{device}/sessions/{sid}/box-trace.pcap"): Need.WORKSHOP,
    ("GET", "/"): Need.USER,
    ("GET", "/signup"): Need.PUBLIC,
    ("POST", "/signup"): Need.PUBLIC,
    ("GET", "/login"): Need.PUBLIC,
    ("POST", "/login"): Need.PUBLIC,
    ("POST", "/login/code"): Need.PUBLIC,
    ("POST", "/logout"): Need.USER,
    ("GET", "/dashboard"): Need.WORKSHOP,
    ("GET", "/buy"): Need.WORKSHOP,
    ("POST", "/buy"): Need.WORKSHOP,
    ("GET", "/purchases/{id}"): Need.WORKSHOP,
    ("GET", "/invoices/{id}.pdf"): Need.USER,
    ("GET", "/users"): Need.OWNER,
    ("POST", "/users"): Need.OWNER,
    ("GET", "/totp"): Need.USER,
    ("POST", "/totp"): Need.USER,
    ("GET", "/operator/workshops"): Need.OPERATOR,
    ("POST", "/operator/workshops/{id}/disable"): Need.OPERATOR,
    ("POST", "/operator/workshops/{id}/enable"): Need.OPERATOR,
    ("POST", "/operator/workshops/{id}/top-up"): Need.OPERATOR,
    ("GET", "/operator/boxes"): Need.OPERATOR,
    ("GET", "/boxes"): Need.WORKSHOP,
    ("GET", "/boxes/claim"): Need.WORKSHOP,
    ("POST", "/boxes/claim"): Need.WORKSHOP,
    ("GET", "/boxes/{device}"): Need.USER,
    ("POST", "/boxes/{device}/revoke"): Need.OWNER_OR_OPERATOR,
    ("GET", "/static/session.js"): Need.PUBLIC,
    ("GET", "/sessions"): Need.WORKSHOP,
    ("GET", "/boxes/{device}/sessions"): Need.WORKSHOP,
    ("POST", "/boxes/{device}/sessions"): Need.WORKSHOP,
    ("GET", "/boxes/{device}/sessions/{sid}"): Need.WORKSHOP,
    ("POST", "/boxes/{device}/sessions/{sid}/jobs"): Need.WORKSHOP,
    ("GET", "/boxes/{device}/sessions/{sid}/jobs/{jid}"): Need.WORKSHOP,
    ("GET", "/boxes/{device}/sessions/{sid}/jobs/{jid}.json"): Need.WORKSHOP,
    ("POST", "/boxes/{device}/sessions/{sid}/jobs/{jid}/cancel"): Need.WORKSHOP,
    ("GET", "/boxes/{device}/sessions/{sid}/trace.json"): Need.WORKSHOP,
    ("GET", "/info"): Need.WORKSHOP,
    ("GET", "/info/vehicles/{vin}"): Need.WORKSHOP,
    ("GET", "/info/dtc"): Need.WORKSHOP,
    ("GET", "/info/instructions/{ref}"): Need.WORKSHOP,
    ("GET", "/info/wiring/{ref}"): Need.WORKSHOP,
    ("GET", "/info/bulletins/{ref}"): Need.WORKSHOP,
    ("GET", "/info/parts/{ref}"): Need.WORKSHOP,
    ("GET", "/info/drawings/{folder}/{file}"): Need.WORKSHOP,
    ("GET", "/info/jobsheet"): Need.WORKSHOP,
    ("GET", "/info/jobsheet.pdf"): Need.WORKSHOP,
    ("GET", "/privacy"): Need.OWNER_OR_OPERATOR,
    ("POST", "/privacy/vehicle/export"): Need.OWNER_OR_OPERATOR,
    ("POST", "/privacy/vehicle/erase"): Need.OWNER_OR_OPERATOR,
    ("GET", "/privacy/workshops/{id}/export.zip"): Need.OWNER_OR_OPERATOR,
    ("POST", "/privacy/workshops/{id}/delete"): Need.OWNER_OR_OPERATOR,
}
"""every route and what it needs: the router must hold exactly these (a new route fails
test_every_route_declares_its_need until it is added here, and so gets the tests below)"""
DEVICE = "pi-00000000deadbeef"
START = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")


def make_cfg(factory: sessionmaker[Session], signer: Signer, seller: Seller) -> WebConfig:
    return WebConfig(factory, signer, seller, hasher=FAST_HASHER)


def test_every_route_declares_its_need(signer: Signer, seller: Seller) -> None:
    app = make_app(WebConfig(None, signer, seller))  # type: ignore[arg-type]
    found = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        need = need_of(route.handler)
        assert need is not None, f"{route.method} {path} declares no need (@requires)"
        if route.method != "HEAD":
            found[(route.method, path)] = need
    assert found == ROUTES


def test_a_route_without_declaration_is_refused(signer: Signer, seller: Seller, factory) -> None:  # type: ignore[no-untyped-def]
    async def undeclared(request):  # type: ignore[no-untyped-def]
        raise AssertionError("served")

    async def run() -> None:
        cfg = make_cfg(factory, signer, seller)
        from aiohttp.test_utils import TestServer

        app = make_app(cfg)
        app.router.add_get("/undeclared", undeclared)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        browser = Browser(server)
        try:
            assert (await browser.get("/undeclared")).status == 500
        finally:
            await browser.close()
            await server.close()

    asyncio.run(run())
    assert requires(Need.PUBLIC)(undeclared) is undeclared


def snapshot(factory: sessionmaker[Session]) -> tuple[object, ...]:
    """What a refused request must not change."""
    with factory() as session:
        counts = tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (Workshop, User, Booking, Purchase, Invoice, WebSession, TotpSecret,
                          WorkshopBox, EnrolledBox, ClaimRefusal, RemoteSessionRecord, RemoteJob)
        )  # fmt: skip
        enabled = tuple(session.scalars(select(Workshop.enabled).order_by(Workshop.id)))
        revoked = tuple(session.scalars(select(WorkshopBox.revoked_at).order_by(WorkshopBox.id)))
        return counts, enabled, revoked


@pytest.fixture
def world(factory: sessionmaker[Session], signer: Signer, seller: Seller) -> Iterator[dict]:  # type: ignore[type-arg]
    """Workshops 1 and 2 (owners), a technician of 1, an operator, credit and one purchase each."""
    owner1, owner2 = sign_up(factory, 1), sign_up(factory, 2)
    with factory() as session, session.begin():
        ops = Actor.of(accounts.add_operator(
            session, login="ops@portal.example", name="Ops", password=PASSWORD,
            hasher=FAST_HASHER,
        ))  # fmt: skip
        assert owner1.workshop_id and owner2.workshop_id
        accounts.add_user(session, owner1, owner1.workshop_id, login="tech1@example.com",
                          name="Tech 1", password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip
        for n, who in ((1, owner1), (2, owner2)):
            BankTransfer().book(session, ops, who.workshop_id, 10_000, f"SEPA-{n}")  # type: ignore[arg-type]
            boxes.record_claim(session, who, who.workshop_id, f"box-w{n}", f"Bay {n}")  # type: ignore[arg-type]
        boxes.record_claim(session, owner1, owner1.workshop_id, DEVICE)
    bought = {}
    for who, device in ((owner1, DEVICE), (owner2, "box-w2")):
        assert who.workshop_id
        p = credit.buy_ticket(factory, who, who.workshop_id, tariff="basic-9h", device=device,
                              signer=signer, seller=seller)  # fmt: skip
        bought[who.workshop_id] = (p.id, p.invoice.id)
    with factory() as session, session.begin():  # workshop 1's box, a remote session, a job
        remote = sessions.open_session(session, owner1, DEVICE)
        job = RemoteJob(session_id=remote.id, workshop_id=owner1.workshop_id,
                        user_id=owner1.user_id, device=DEVICE, kind="identify", params="{}",
                        state="done", summary="VIN WBAJA71090B123456, 3 ECUs", created_at=NOW)  # fmt: skip
        session.add(job)
        session.flush()
        remote_ids = (remote.id, job.id)
    yield {"w1": owner1.workshop_id, "w2": owner2.workshop_id, "bought": bought,
           "remote": remote_ids}  # fmt: skip


LOGINS = {OWNER: "owner1@example.com", TECH: "tech1@example.com", OPS: "ops@portal.example"}


def fill(path: str, world: dict) -> str:  # type: ignore[type-arg]
    """The route's path with ids of workshop 1's own objects."""
    purchase_id, invoice_id = world["bought"][world["w1"]]
    object_id = invoice_id if path.startswith("/invoices") else purchase_id
    if path.startswith(("/operator", "/privacy")):
        object_id = world["w1"]
    sid, jid = world["remote"]
    return (path.replace("{id}", str(object_id)).replace("{device}", DEVICE)
            .replace("{sid}", str(sid)).replace("{jid}", str(jid))
            .replace("{vin}", "WBAJA71090B123456").replace("{ref}", "RI-DME-12A100")
            .replace("{folder}/{file}", "wiring/WD.svg"))  # fmt: skip


def test_every_route_refuses_no_session_wrong_role_other_workshop_and_bad_csrf(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            anonymous = Browser(server)
            users = {role: Browser(server) for role in LOGINS}
            other = Browser(server)  # the owner of workshop 2
            browsers.extend([anonymous, *users.values(), other])
            for role, browser in users.items():
                assert (await browser.log_in(LOGINS[role], PASSWORD)).status == 303
            assert (await other.log_in("owner2@example.com", PASSWORD)).status == 303
            before = snapshot(factory)
            form_token = await anonymous.csrf("/login")

            for (method, template), need in ROUTES.items():
                path = fill(template, world)
                # no session: GET goes to the login page, POST is 401 (a valid form token)
                if need is not Need.PUBLIC:
                    if method == "GET":
                        answer = await anonymous.get(path)
                        assert (answer.status, answer.location) == (303, "/login"), path
                    else:
                        answer = await anonymous.post(path, {}, csrf=form_token)
                        assert answer.status == 401, path
                # the wrong role: 403 (with a valid CSRF token for POSTs)
                for role, browser in users.items():
                    if need is Need.PUBLIC or role in need.value:
                        continue
                    if method == "GET":
                        answer = await browser.get(path)
                    else:
                        answer = await browser.post(path, {}, csrf=await browser.csrf("/totp"))
                    assert answer.status == 403, (role, method, path, answer.status)
                # POST without or with a wrong CSRF token: 403, for every role that may POST
                if method == "POST":
                    may = [anonymous] if need is Need.PUBLIC else [
                        b for r, b in users.items() if r in need.value
                    ]  # fmt: skip
                    for browser in may:
                        for token in (None, "x" * 43, form_token if browser is not anonymous
                                      else "y" * 43):  # fmt: skip
                            answer = await browser.post(
                                path, {"login": LOGINS[OWNER], "password": PASSWORD}, csrf=token
                            )
                            assert answer.status == 403, (method, path, token, answer.status)
                    # another site's request, even with the right token
                    browser = may[0]
                    token = await browser.csrf("/login" if need is Need.PUBLIC else "/totp")
                    answer = await browser.post(
                        path, {}, csrf=token, headers={"Origin": "https://evil.example"}
                    )
                    assert answer.status == 403, path
            assert snapshot(factory) == before

            # another workshop's objects: 404, the same answer as for ids that do not exist
            purchase_id, invoice_id = world["bought"][world["w1"]]
            for path, missing in ((f"/purchases/{purchase_id}", "/purchases/999999"),
                                  (f"/invoices/{invoice_id}.pdf", "/invoices/999999.pdf")):  # fmt: skip
                theirs, none = await other.get(path), await other.get(missing)
                assert theirs.status == none.status == 404
                assert theirs.text == none.text
                assert (await users[OWNER].get(path)).status == 200
            assert (await users[OPS].get(f"/invoices/{invoice_id}.pdf")).status == 200
            # an id of other digits than ASCII's (int() takes "²" for a digit, and fails)
            for odd in ("/purchases/%C2%B2", "/invoices/%C2%B2.pdf"):
                assert (await users[OWNER].get(odd)).status == 404, odd
            odd = await users[OPS].post("/operator/workshops/%C2%B2/disable", {},
                                        csrf=await users[OPS].csrf("/operator/workshops"))  # fmt: skip
            assert odd.status == 404
            ops_token = await users[OPS].csrf("/operator/workshops")
            for action in ("disable", "enable", "top-up"):
                answer = await users[OPS].post(f"/operator/workshops/999999/{action}",
                                               {"amount": "1", "reference": "x"}, csrf=ops_token)  # fmt: skip
                assert answer.status == 404, action
            # another workshop's box, session and job: 404, the same answer as for none
            sid, jid = world["remote"]
            base = f"/boxes/{DEVICE}/sessions"
            for path, missing in ((base, "/boxes/pi-0000000000000000/sessions"),
                                  (f"{base}/{sid}", f"{base}/999999"),
                                  (f"{base}/{sid}/jobs/{jid}", f"{base}/{sid}/jobs/999999"),
                                  (f"{base}/{sid}/jobs/{jid}.json", f"{base}/{sid}/jobs/9.json"),
                                  (f"{base}/{sid}/trace.json", f"{base}/999999/trace.json")):  # fmt: skip
                theirs, none = await other.get(path), await other.get(missing)
                assert theirs.status == none.status == 404, (path, theirs.status, none.status)
                assert "WBAJA71090B123456" not in theirs.text
                assert (await users[OWNER].get(path)).status == 200, path
                assert (await users[TECH].get(path)).status == 200, path
            other_token = await other.csrf("/totp")
            for path in (base, f"{base}/{sid}/jobs", f"{base}/{sid}/jobs/{jid}/cancel"):
                answer = await other.post(path, {"kind": "identify"}, csrf=other_token)
                assert answer.status == 404, (path, answer.status)
            ended = await users[TECH].post(f"{base}/{sid}/jobs/{jid}/cancel", {},
                                           csrf=await users[TECH].csrf("/totp"))  # fmt: skip
            assert ended.status == 409 and "not running" in ended.text
            for after in ("²", "1" * 40, "-1"):  # a page's own polling sends digits; others ignored
                odd = await users[TECH].get(f"{base}/{sid}/jobs/{jid}.json?after={after}")
                assert odd.status == 200, (after, odd.status)
            listed = await other.get("/sessions")
            assert listed.status == 200 and DEVICE not in listed.text
            assert DEVICE in (await users[TECH].get("/sessions")).text
            dashboard = await other.get("/dashboard")
            assert "Werkstatt 2" in dashboard.text and "Werkstatt 1" not in dashboard.text
            # another workshop's box: 404 as for a box that does not exist, also to revoke it
            theirs, none = await other.get("/boxes/box-w1"), await other.get("/boxes/box-none")
            assert theirs.status == none.status == 404 and theirs.text == none.text
            token = await other.csrf("/boxes")
            for device in ("box-w1", "box-none"):
                answer = await other.post(f"/boxes/{device}/revoke", {"confirm": device},
                                          csrf=token)  # fmt: skip
                assert answer.status == 404, device
            listed = await other.get("/boxes")
            assert "box-w2" in listed.text and "box-w1" not in listed.text
            assert (await users[OWNER].get("/boxes/box-w1")).status == 200
            assert (await users[TECH].get("/boxes/box-w1")).status == 200
            assert (await users[OPS].get("/boxes/box-w1")).status == 200
            every = await users[OPS].get("/operator/boxes")
            assert "box-w1" in every.text and "box-w2" in every.text and "Werkstatt 2" in every.text
            assert snapshot(factory) == before

    asyncio.run(run())


def test_remote_session_pages_and_refusals_in_german(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    """The remote sessions' pages and the refusals a technician meets there, in German (``?lang=de``),
    and the same in English without it."""

    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            tech = Browser(server)
            browsers.append(tech)
            assert (await tech.log_in(LOGINS[TECH], PASSWORD)).status == 303
            sid, jid = world["remote"]
            base = f"/boxes/{DEVICE}/sessions/{sid}"
            shown = (await tech.get(f"{base}?lang=de")).text
            assert "Aufträge" in shown and "erledigt" in shown, shown[-2000:]
            assert "Steuergerät (leer: alle Steuergeräte des Auftrags)" in shown
            job = (await tech.get(f"{base}/jobs/{jid}")).text  # the cookie keeps German
            assert "Zurück zur Sitzung" in job and "<h2>Protokoll</h2>" in job
            token = await tech.csrf(base)
            opened = await tech.post("/boxes/box-w1/sessions", {}, csrf=token)
            assert opened.status == 303
            other_box = opened.location
            said = {}
            for language in ("de", "en"):
                q = f"?lang={language}"
                broker = await tech.post(f"{base}/jobs{q}", {"kind": "read_live_data"}, csrf=token)
                ticket = await tech.post(f"{other_box}/jobs{q}", {"kind": "clear_fault_memory"},
                                         csrf=token)  # fmt: skip
                stop = await tech.post(f"{base}/jobs/{jid}/cancel{q}", {}, csrf=token)
                none = await tech.get(f"/boxes/{DEVICE}/sessions/999999{q}")
                assert (broker.status, ticket.status, stop.status, none.status) == (
                    400, 400, 409, 404)  # fmt: skip
                said[language] = (broker.text, ticket.text, stop.text, none.text)
            broker_de, ticket_de, stop_de, none_de = said["de"]
            assert "dieses Portal hat keine Broker-Verbindung zu den Boxen" in broker_de
            assert "Der Betreiber startet vci-portal serve mit --broker" in broker_de
            assert "die Werkstatt hat kein gültiges Ticket für die Box box-w1" in ticket_de
            assert "(benötigt für: Fehlerspeicher löschen)" in ticket_de
            assert "Kaufen Sie im Portal ein Ticket für diese Box" in ticket_de
            assert "der Auftrag läuft nicht" in stop_de and "Zurück zum Auftrag" in stop_de
            assert "es gibt keine Sitzung 999999 von Ihnen" in none_de
            assert "<h1>Nicht gefunden</h1>" in none_de  # aiohttp's refusal's title too
            unknown = await tech.get("/purchases/999999?lang=de")
            assert unknown.status == 404 and "<p>Nicht gefunden</p>" in unknown.text
            purchase_id = world["bought"][world["w1"]][0]
            bought = (await tech.get(f"/purchases/{purchase_id}")).text
            assert f"<h1>Kauf {purchase_id}</h1>" in bought, bought[-1500:]
            assert f"Basic, 9 Stunden für die Box {DEVICE}, gültig von " in bought
            assert f"Zustellung: Ticket unterwegs zu {DEVICE}" in bought
            statement = (await tech.get("/dashboard")).text
            assert "<td>Kauf</td>" in statement and "<td>Aufladung</td>" in statement
            not_owner = await tech.post(f"/boxes/{DEVICE}/revoke", {"confirm": DEVICE}, csrf=token)
            assert not_owner.status == 403  # the guard's own refusals too
            assert "Ihre Rolle darf diese Seite nicht öffnen." in not_owner.text
            broker_en, ticket_en, stop_en, none_en = said["en"]
            assert "this portal has no broker link to the boxes" in broker_en
            assert "no valid ticket for box box-w1 that includes diagnosis" in ticket_en
            assert "Buy a ticket for this box" in ticket_en
            assert "the job is not running" in stop_en and "Back to the job" in stop_en
            assert "there is no session 999999 of yours" in none_en
            assert "<h1>Not Found</h1>" in none_en

    asyncio.run(run())


def test_security_headers_and_cookie_flags(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            browser = Browser(server)
            browsers.append(browser)
            page = await browser.get("/login")
            assert "default-src 'self'" in page.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert page.headers["Referrer-Policy"] == "no-referrer"
            assert page.headers["Cache-Control"] == "no-store"
            assert "<script" not in page.text
            for cookie in (page.headers["Set-Cookie"],
                           (await browser.log_in(LOGINS[OWNER], PASSWORD)).headers["Set-Cookie"]):  # fmt: skip
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                assert "Secure" not in cookie
            # what Chromium sends with a form POST from a page under Referrer-Policy: no-referrer
            ours = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
            theirs = {"Origin": "null", "Sec-Fetch-Site": "cross-site"}
            form = {"login": LOGINS[OWNER], "password": PASSWORD}
            assert (await browser.post("/login", form, headers=theirs)).status == 403
            assert (await browser.post("/login", form, headers=ours)).status == 303
            missing = await browser.get("/no-such-page")
            assert missing.status == 404 and "X-Frame-Options" in missing.headers
            big = await browser.post("/login", {"login": "x" * 100_000, "password": "p"})
            assert big.status == 413

    asyncio.run(run())


def test_lock_out_through_the_web(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            browser = Browser(server)
            browsers.append(browser)
            for _ in range(5):
                refused = await browser.log_in(LOGINS[OWNER], "wrong password 123")
                assert refused.status == 401 and "login refused" in refused.text
            locked = await browser.log_in(LOGINS[OWNER], PASSWORD)
            assert locked.status == 429 and "too many failed logins" in locked.text
            assert "portal_session" not in locked.headers.get("Set-Cookie", "")
            assert (await browser.get("/dashboard")).status == 303

    asyncio.run(run())


def test_login_attempts_limited_per_client_address(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    clock = [1000.0]
    limiter = AddressLimiter(attempts=3, window=60.0, clock=lambda: clock[0])

    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller), limiter) as (server, browsers):
            browser = Browser(server)
            browsers.append(browser)
            logins = ("a@example.com", "b@example.com", "c@example.com")
            for name in logins:  # a different login name each time: no lock-out helps
                assert (await browser.log_in(name, "wrong password 123")).status == 401
            limited = await browser.log_in(LOGINS[OWNER], PASSWORD)
            assert limited.status == 429 and limited.headers["Retry-After"] == "61"
            with factory() as session:  # the limited attempt never reached the password check
                assert session.get(LoginGuard, LOGINS[OWNER]) is None
            clock[0] += 60.0
            assert (await browser.log_in(LOGINS[OWNER], PASSWORD)).status == 303

    asyncio.run(run())


def test_login_limit_per_client_behind_a_trusted_proxy(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    """Behind a trusted proxy each client (X-Forwarded-For) has its own limit; a client that is
    not a trusted proxy cannot choose its address by sending the header."""
    wrong = {"login": "a@example.com", "password": "wrong password 123"}

    async def attempts(cfg: WebConfig, forwarded: str) -> tuple[int, int]:
        async with portal(cfg, AddressLimiter(attempts=2)) as (server, browsers):
            browser = Browser(server)
            browsers.append(browser)
            for n in range(2):
                header = {"X-Forwarded-For": f"{n}.0.0.1, {forwarded}"}
                assert (await browser.post("/login", wrong, headers=header)).status == 401
            other = {"X-Forwarded-For": "203.0.113.9"}
            same = {"X-Forwarded-For": f"9.9.9.9, {forwarded}"}  # a new claim on the left
            return (
                (await browser.post("/login", wrong, headers=other)).status,
                (await browser.post("/login", wrong, headers=same)).status,
            )

    proxied = WebConfig(factory, signer, seller, hasher=FAST_HASHER,
                        trusted_proxies=frozenset({"127.0.0.1"}))  # fmt: skip
    assert asyncio.run(attempts(proxied, "198.51.100.7")) == (401, 429)  # each client its own
    assert asyncio.run(attempts(make_cfg(factory, signer, seller), "198.51.100.7")) == (429, 429)


def test_sign_up_top_up_buy_and_download_the_invoice(
    factory: sessionmaker[Session], signer: Signer, seller: Seller
) -> None:
    with factory() as session, session.begin():
        accounts.add_operator(session, login="ops@portal.example", name="Ops", password=PASSWORD,
                              hasher=FAST_HASHER)  # fmt: skip

    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            owner, ops = Browser(server), Browser(server)
            browsers.extend([owner, ops])
            signup = {
                "name": "Werkstatt <Nord> & Co", "street": "Ring 2", "postcode": "20095",
                "city": "Hamburg", "country": "de", "vat_id": "DE 123456789",
                "owner_name": "Chef", "owner_login": "chef@nord.example", "password": PASSWORD,
            }  # fmt: skip
            done = await owner.post("/signup", signup)
            assert done.status == 200 and "signed up" in done.text
            again = await owner.post("/signup", signup)
            assert again.status == 400 and "DE123456789 exists" in again.text
            # the same refusals in German (a second browser, switched with ?lang=de)
            german = Browser(server)
            browsers.append(german)
            again_de = await german.post(
                "/signup?lang=de", signup, csrf=await german.csrf("/signup")
            )
            assert again_de.status == 400
            assert "Eine Werkstatt mit der USt-IdNr. DE123456789 ist bereits" in again_de.text
            wrong_de = await german.log_in("chef@nord.example", "not the password")
            assert wrong_de.status == 401 and "Anmeldung abgelehnt: falscher" in wrong_de.text
            assert (await owner.log_in("chef@nord.example", PASSWORD)).location == "/"
            assert (await owner.get("/")).location == "/dashboard"
            dashboard = await owner.get("/dashboard")
            assert "Werkstatt &lt;Nord&gt; &amp; Co" in dashboard.text  # escaped
            assert "Credit: 0.00 EUR" in dashboard.text
            with factory() as session, session.begin():  # the box, as if claimed on /boxes
                chef = find_user(session, "chef@nord.example")
                assert chef is not None and chef.workshop_id is not None
                boxes.record_claim(session, Actor.of(chef), chef.workshop_id, DEVICE)
            poor = await owner.post("/buy", {"tariff": "basic-9h", "device": DEVICE})
            assert poor.status == 402 and "does not cover" in poor.text

            assert (await ops.log_in("ops@portal.example", PASSWORD)).location == "/"
            assert (await ops.get("/")).location == "/operator/workshops"
            with factory() as session:
                workshop_id = session.scalar(
                    select(Workshop.id).where(Workshop.vat_id == "DE123456789")
                )
            booked = await ops.post(f"/operator/workshops/{workshop_id}/top-up",
                                    {"amount": "50.00", "reference": "SEPA 2026-11-28 0042"},
                                    csrf=await ops.csrf("/operator/workshops"))  # fmt: skip
            assert booked.status == 200 and "Booked 50.00 EUR" in booked.text
            twice = await ops.post(f"/operator/workshops/{workshop_id}/top-up",
                                   {"amount": "50.00", "reference": "SEPA 2026-11-28 0042"},
                                   csrf=await ops.csrf("/operator/workshops"))  # fmt: skip
            assert twice.status == 400 and "booked already" in twice.text
            # the operator's page in German (the header's switch, remembered in the cookie)
            german = await ops.get("/operator/workshops?lang=de")
            assert "Überweisung buchen" in german.text and "50,00\xa0€" in german.text
            wrong = await ops.post(f"/operator/workshops/{workshop_id}/top-up",
                                   {"amount": "1.234,5", "reference": "x"},
                                   csrf=await ops.csrf("/operator/workshops"))  # fmt: skip
            assert wrong.status == 400 and "ist kein Betrag in EUR" in wrong.text
            assert "z. B. 250,00" in wrong.text
            assert "GESPERRT" not in wrong.text and "freigeschaltet" in wrong.text
            await ops.get("/operator/workshops?lang=en")

            buy_page = await owner.get("/buy")
            bad_vin = await owner.post("/buy?lang=de", {"tariff": "basic-9h", "device": DEVICE,
                                                        "vin": "not a vin", "start": START},
                                       csrf=await owner.csrf("/buy"))  # fmt: skip
            assert "&#x27;NOT A VIN&#x27; ist keine Fahrgestellnummer (FIN)" in bad_vin.text
            assert "kein I, O oder Q" in bad_vin.text
            await owner.get("/buy?lang=en")
            assert "Basic 9 h" in buy_page.text or "9.00 EUR" in buy_page.text
            bought = await owner.post("/buy", {"tariff": "basic-9h", "device": DEVICE,
                                               "vin": "wba3a5c50df123456",
                                               "start": START},
                                      csrf=await owner.csrf("/buy"))  # fmt: skip
            assert bought.status == 303 and bought.location.startswith("/purchases/")
            shown = await owner.get(bought.location)
            token = re.search(r'<p class="ticket">([^<]+)</p>', shown.text)
            assert token
            ticket = parse_ticket(token.group(1), {signer.kid: signer.key.public_key()})
            assert ticket.vin == "WBA3A5C50DF123456" and ticket.device == DEVICE
            link = re.search(r'href="(/invoices/\d+\.pdf)"', shown.text)
            assert link
            pdf = await owner.get(link.group(1))
            assert pdf.status == 200 and pdf.headers["Content-Type"] == "application/pdf"
            assert "attachment" in pdf.headers["Content-Disposition"]
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body)).pages)
            for expected in ("Werkstatt <Nord> & Co", "DE123456789", "Hamburg", "9.00 EUR",
                             "WBA3A5C50DF123456", DEVICE, "VCI Portal GmbH"):  # fmt: skip
                assert expected in text, expected
            dashboard = await owner.get("/dashboard")
            assert "Credit: 41.00 EUR" in dashboard.text
            # the ticket goes to the box over its link (tests/cloud/test_ticket_delivery.py);
            # the workshop sees how far it is, and a box's refusal with its reason
            assert f"ticket on its way to {DEVICE}" in dashboard.text
            assert f"ticket on its way to {DEVICE}" in shown.text
            with factory() as session, session.begin():
                session.execute(
                    update(Delivery).values(state="refused", refusal="the ticket is for <box-b>")
                )
            refused = f"ticket refused by {DEVICE}: the ticket is for &lt;box-b&gt;"
            assert refused in (await owner.get("/dashboard")).text

            # the owner adds a technician, who logs in and sees the same workshop
            added = await owner.post("/users", {"login": "tech@nord.example", "name": "Tech",
                                                "password": PASSWORD},
                                     csrf=await owner.csrf("/users"))  # fmt: skip
            assert added.status == 200 and "tech@nord.example" in added.text
            short = await owner.post("/users", {"login": "t2@nord.example", "name": "T2",
                                                "password": "short"},
                                     csrf=await owner.csrf("/users"))  # fmt: skip
            assert short.status == 400 and "shorter than 12" in short.text
            short_de = await owner.post("/users?lang=de",
                                        {"login": "t2@nord.example", "name": "T2",
                                         "password": "short"},
                                        csrf=await owner.csrf("/users"))  # fmt: skip
            assert short_de.status == 400 and "kürzer als 12 Zeichen" in short_de.text
            assert "Techniker hinzufügen" in short_de.text and "Inhaber" in short_de.text
            await owner.get("/users?lang=en")
            tech = Browser(server)
            browsers.append(tech)
            assert (await tech.log_in("tech@nord.example", PASSWORD)).status == 303
            assert "Credit: 41.00 EUR" in (await tech.get("/dashboard")).text

            # the operator disables the workshop: its session ends, its login is refused
            disabled = await ops.post(f"/operator/workshops/{workshop_id}/disable", {},
                                      csrf=await ops.csrf("/operator/workshops"))  # fmt: skip
            assert disabled.status == 200 and "DISABLED" in disabled.text
            assert (await owner.get("/dashboard")).location == "/login"
            refused = await owner.log_in("chef@nord.example", PASSWORD)
            assert refused.status == 403 and "disabled" in refused.text

    asyncio.run(run())


def test_second_factor_turned_on_and_asked_for_after_the_password(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    clock = [1000.0]
    pending = PendingLogins(seconds=300.0, clock=lambda: clock[0])

    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller), pending=pending) as (server, browsers):
            browser = Browser(server)
            browsers.append(browser)
            assert (await browser.log_in(LOGINS[TECH], PASSWORD)).status == 303
            page = await browser.get("/totp")
            assert "<svg" in page.text and "otpauth://totp/" in page.text
            found = re.search(r'name="secret" value="([A-Z2-7]+)"', page.text)
            assert found
            totp = pyotp.TOTP(found.group(1))
            wrong = await browser.post("/totp", {"secret": found.group(1), "code": "000000"})
            assert wrong.status == 401 and "does not match" in wrong.text
            on = await browser.post("/totp", {"secret": found.group(1), "code": totp.now()})
            assert on.status == 200 and "second factor is on" in on.text
            assert (await browser.post("/logout", {})).location == "/login"
            assert (await browser.get("/dashboard")).location == "/login"

            # the password alone: the code is asked for, no session yet
            asked = await browser.log_in(LOGINS[TECH], PASSWORD)
            assert asked.status == 200 and 'action="/login/code"' in asked.text
            assert (await browser.get("/dashboard")).location == "/login"
            token = CSRF.search(asked.text)[1]  # type: ignore[index]
            used = await browser.post("/login/code", {"code": totp.now()}, csrf=token)
            assert used.status == 401  # the code that turned it on is used up
            code = totp.at(time.time() + 30)  # the next step's
            assert (await browser.post("/login/code", {"code": code}, csrf=token)).status == 303
            assert (await browser.get("/dashboard")).status == 200

            # a pending login ends after 5 minutes
            other = Browser(server)
            browsers.append(other)
            asked = await other.log_in(LOGINS[TECH], PASSWORD)
            clock[0] += 301
            late = await other.post("/login/code", {"code": "123456"},
                                    csrf=CSRF.search(asked.text)[1])  # type: ignore[index]  # fmt: skip
            assert late.status == 401 and "too long" in late.text

    asyncio.run(run())


def test_wrong_codes_lock_out_even_between_right_passwords(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    world: dict,  # type: ignore[type-arg]
) -> None:
    """A right password must not reset the count of wrong codes: else whoever has the password
    could guess codes without end."""
    secret = pyotp.random_base32()
    with factory() as session, session.begin():
        tech = accounts.find_user(session, LOGINS[TECH])
        assert tech is not None
        session.add(TotpSecret(user_id=tech.id, secret=secret, last_step=0))

    async def run() -> None:
        limiter = AddressLimiter(attempts=1000)  # the per-address limit is not under test
        async with portal(make_cfg(factory, signer, seller), limiter) as (server, browsers):
            browser = Browser(server)
            browsers.append(browser)
            for _ in range(4):  # the right password, then a wrong code: counted each time
                assert (await browser.log_in(LOGINS[TECH], PASSWORD, "000000")).status == 401
                asked = await browser.log_in(LOGINS[TECH], PASSWORD)  # the password alone
                assert 'action="/login/code"' in asked.text
            assert (await browser.log_in(LOGINS[TECH], PASSWORD, "000000")).status == 401
            locked = await browser.log_in(LOGINS[TECH], PASSWORD)
            assert locked.status == 429 and "too many failed logins" in locked.text
            code = pyotp.TOTP(secret).now()
            assert code != "000000"
            assert (await browser.log_in(LOGINS[TECH], PASSWORD, code)).status == 429

    asyncio.run(run())


def test_without_seller_data_nothing_is_sold_and_nothing_booked(
    factory: sessionmaker[Session], signer: Signer, operator: Actor
) -> None:
    """A fresh portal (no portal.toml yet) serves sign-up and login, but refuses to sell: an
    invoice needs the seller's data. The refusal says what to do and books nothing."""
    owner = sign_up(factory, 1)
    with factory() as session, session.begin():
        BankTransfer().book(session, operator, owner.workshop_id, 5000, "SEPA 0001", now=NOW)
        boxes.record_claim(session, owner, owner.workshop_id or 0, DEVICE)

    async def run() -> None:
        async with portal(WebConfig(factory, signer, None, hasher=FAST_HASHER)) as (
            server, browsers,
        ):  # fmt: skip
            browser = Browser(server)
            browsers.append(browser)
            assert (await browser.log_in("owner1@example.com", PASSWORD)).location == "/"
            refused = await browser.post("/buy", {"tariff": "basic-9h", "device": DEVICE, "vin": "", "start": ""},
                                         csrf=await browser.csrf("/buy"))  # fmt: skip
            assert refused.status == 503 and "cannot be sold yet" in refused.text
            assert "portal.toml" in refused.text
            assert "Credit: 50.00 EUR" in (await browser.get("/dashboard")).text

    asyncio.run(run())
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Purchase)) == 0


def test_healthz_says_whether_the_database_answers(
    factory: sessionmaker[Session], signer: Signer, seller: Seller, tmp_path: Path
) -> None:
    """A load balancer's health check: 200 with the database, 503 without (a process that
    cannot reach it is taken out of rotation; here: no server on the socket it is given)."""
    from portal.db.engine import make_engine, sessions

    gone = sessions(make_engine(f"postgresql+psycopg://postgres@/portal?host={tmp_path}"))

    async def run() -> tuple[int, int]:
        statuses = []
        for cfg in (make_cfg(factory, signer, seller), make_cfg(gone, signer, seller)):
            async with portal(cfg) as (server, browsers):
                browser = Browser(server)
                browsers.append(browser)
                statuses.append((await browser.get("/healthz")).status)
        return statuses[0], statuses[1]

    assert asyncio.run(run()) == (200, 503)
