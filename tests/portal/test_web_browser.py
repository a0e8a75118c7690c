"""The portal's pages in a real browser (headless Chromium from Debian, driven by Playwright)
against ``vci-portal serve`` as a process: a workshop signs up, the operator books its bank
transfer, the owner buys a ticket and downloads the invoice. The pages must work without a
single Content-Security-Policy violation. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from portal import accounts
from portal.accounts import Actor
from portal.db.engine import open_database
from tests.portal.conftest import FAST_HASHER, PASSWORD, claim
from tests.portal.web_client import served

sync_api = pytest.importorskip("playwright.sync_api")
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS  # noqa: E402  (skips without chromium)

DEVICE = "pi-00000000deadbeef"
SIGNUP = (
    ("name", "Werkstatt Nord"), ("street", "Ring 2"), ("postcode", "20095"), ("city", "Hamburg"),
    ("country", "DE"), ("vat_id", "DE123456789"), ("owner_name", "Chef"),
    ("owner_login", "chef@nord.example"), ("password", PASSWORD),
)  # fmt: skip


ENGLISH = {"sign_up": "Sign up", "signed_up": "signed up", "log_in": "Log in",
           "credit": "Credit: 0.00 EUR"}  # fmt: skip
GERMAN = {"sign_up": "Registrieren", "signed_up": "Ihre Werkstatt ist registriert",
          "log_in": "Anmelden", "credit": "Guthaben: 0,00\xa0€"}  # fmt: skip


def sign_up_and_log_in(
    owner: Any,
    base: str,
    signup: tuple[tuple[str, str], ...] = SIGNUP,
    words: dict[str, str] = ENGLISH,
) -> None:
    """The workshop of ``signup`` (Werkstatt Nord) signs up on ``owner``'s page and its owner
    logs in; ``words``: what the pages say in the browser's language."""
    owner.goto(base + "signup")
    for name, value in signup:
        owner.fill(f'input[name="{name}"]', value)
    owner.click(f"button:has-text('{words['sign_up']}')")
    assert words["signed_up"] in owner.content()
    owner.fill('input[name="login"]', dict(signup)["owner_login"])
    owner.fill('input[name="password"]', PASSWORD)
    owner.click(f"button:has-text('{words['log_in']}')")
    owner.wait_for_url("**/dashboard", timeout=10_000)
    assert words["credit"] in owner.inner_text("main")


def book_transfer(ops: Any, base: str, amount: str) -> None:
    """The operator (ops@portal.example) logs in and books a bank transfer of ``amount`` EUR for
    the only workshop."""
    ops.goto(base + "login")
    ops.fill('input[name="login"]', "ops@portal.example")
    ops.fill('input[name="password"]', PASSWORD)
    ops.click("button:has-text('Log in')")
    ops.wait_for_url("**/operator/workshops", timeout=10_000)
    ops.fill('input[name="amount"]', amount)
    ops.fill('input[name="reference"]', "SEPA 2026-11-28 0042")
    ops.click("button:has-text('Book bank transfer')")
    assert f"Booked {amount} EUR" in ops.content()


def test_sign_up_top_up_buy_and_invoice_in_chromium(tmp_path: Path) -> None:
    with served(tmp_path) as base:
        engine, factory = open_database(f"sqlite:///{tmp_path / 'state' / 'portal.sqlite3'}")
        with factory() as session, session.begin():
            accounts.add_operator(session, login="ops@portal.example", name="Ops",
                                  password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip
        engine.dispose()
        SHOTS.mkdir(parents=True, exist_ok=True)
        violations: list[str] = []
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                owner = browser.new_context(accept_downloads=True).new_page()
                ops = browser.new_context().new_page()
                for page in (owner, ops):
                    page.on("console", lambda m: violations.append(m.text)
                            if "Content Security Policy" in m.text else None)  # fmt: skip
                sign_up_and_log_in(owner, base)
                owner.screenshot(path=str(SHOTS / "portal-dashboard.png"), full_page=True)

                book_transfer(ops, base, "50.00")
                ops.screenshot(path=str(SHOTS / "portal-operator.png"), full_page=True)

                engine, factory = open_database(
                    f"sqlite:///{tmp_path / 'state' / 'portal.sqlite3'}"
                )
                with factory() as session:  # the box, as if claimed on /boxes (that needs a
                    chef = accounts.find_user(session, "chef@nord.example")  # box: see
                    assert chef is not None  # tests/cloud/test_portal_browser_flow.py)
                claim(factory, Actor.of(chef), DEVICE)
                engine.dispose()
                owner.goto(base + "buy")
                owner.select_option('select[name="tariff"]', "basic-9h")
                owner.select_option('select[name="device"]', DEVICE)
                owner.click("button:has-text('Buy from the credit')")
                owner.wait_for_url("**/purchases/*", timeout=10_000)
                assert DEVICE in owner.content()
                owner.screenshot(path=str(SHOTS / "portal-purchase.png"), full_page=True)
                with owner.expect_download(timeout=10_000) as download:
                    owner.click("a:has-text('Invoice')")
                pdf = Path(download.value.path()).read_bytes()
                text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
                assert "Werkstatt Nord" in text and "9.00 EUR" in text and DEVICE in text
                owner.goto(base + "dashboard")
                assert "Credit: 41.00 EUR" in owner.content()

                # a German workshop: its browser's language, German pages and amounts, the switch
                german = browser.new_context(locale="de-DE").new_page()
                german.goto(base + "signup")
                assert german.locator("h1").inner_text() == "Werkstatt registrieren"
                german.screenshot(path=str(SHOTS / "portal-de-signup.png"), full_page=True)
                values = dict(SIGNUP, name="Werkstatt Süd", vat_id="DE987654321",
                              owner_login="chefin@sued.example")  # fmt: skip
                sign_up_and_log_in(german, base, tuple(values.items()), GERMAN)
                assert german.locator("nav a[href='/buy']").inner_text() == "Ticket kaufen"
                german.screenshot(path=str(SHOTS / "portal-de-dashboard.png"), full_page=True)
                german.goto(base + "boxes")
                assert "Noch keine Box" in german.inner_text("main")
                assert german.locator("button[type=submit]:has-text('Box übernehmen')").count() == 1
                german.click("a[hreflang=en]")  # the switch, remembered
                german.goto(base + "dashboard")
                assert "Credit: 0.00 EUR" in german.inner_text("main")
            finally:
                browser.close()
        assert violations == []
