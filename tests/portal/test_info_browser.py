"""Repair information in a real browser (headless Chromium from Debian, driven by Playwright)
against ``vci-portal serve`` as a process with the sample content: a workshop with a Basic ticket
opens the simulated G30's vehicle page (the campaign notice), enters the fault code its DME
stores (P12A1-00), follows it to the repair instruction and on to the wiring diagram, whose
drawing loads as an image. No Content-Security-Policy violation on the way. Screenshots go to
test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal import accounts, credit, keys
from portal.accounts import Actor
from portal.content import format, sample, store
from portal.credit import BankTransfer, Signer
from portal.db.engine import open_database
from portal.invoices import Seller
from tests.portal.conftest import PASSWORD, sign_up
from tests.portal.test_content import G30
from tests.portal.web_client import served

sync_api = pytest.importorskip("playwright.sync_api")
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS  # noqa: E402  (skips without chromium)


def test_from_a_dtc_to_its_instruction_and_wiring_diagram_in_chromium(
    tmp_path: Path, seller: Seller
) -> None:
    with served(tmp_path) as base:
        engine, factory = open_database(f"sqlite:///{tmp_path / 'state' / 'portal.sqlite3'}")
        out = tmp_path / "sample"
        sample.write(out)
        store.load(factory, format.read(out))
        owner = sign_up(factory, 1)
        with factory() as session, session.begin():
            ops = Actor.of(accounts.add_operator(session, login="ops@portal.example",
                                                 name="Ops", password=PASSWORD))  # fmt: skip
            BankTransfer().book(session, ops, owner.workshop_id, 5_000, "SEPA 1")  # type: ignore[arg-type]
        assert owner.workshop_id is not None
        signer = Signer(*keys.load_signing_key(tmp_path / "keys"))
        credit.buy_ticket(factory, owner, owner.workshop_id, tariff="basic-9h",
                          device="pi-00000000deadbeef", signer=signer, seller=seller)  # fmt: skip
        engine.dispose()
        SHOTS.mkdir(parents=True, exist_ok=True)
        violations: list[str] = []
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_context().new_page()
                page.on("console", lambda m: violations.append(m.text)
                        if "Content Security Policy" in m.text else None)  # fmt: skip
                page.goto(base + "login")
                page.fill('input[name="login"]', "owner1@example.com")
                page.fill('input[name="password"]', PASSWORD)
                page.click("button:has-text('Log in')")
                page.wait_for_url("**/dashboard", timeout=10_000)
                page.click("a:has-text('Repair information')")
                page.fill('input[name="vin"]', G30)
                page.fill('input[name="q"]', "boost pressure")
                page.click("button:has-text('Search')")
                assert page.locator("ol.hits mark").count() > 0
                page.click(f"a[href='/info/vehicles/{G30}']")
                notice = page.locator('[data-testid="campaigns"]')
                assert "Open technical campaigns for this vehicle: 2" in notice.inner_text()
                page.screenshot(path=str(SHOTS / "portal-info-vehicle.png"), full_page=True)

                page.fill('input[name="code"]', "P12A1-00")
                page.click("button:has-text('Show')")
                page.wait_for_url("**/info/dtc?**", timeout=10_000)
                page.click("a:has-text('Boost pressure too low: diagnosis and repair')")
                assert "Torque: 8 Nm" in page.content()
                page.screenshot(path=str(SHOTS / "portal-info-instruction.png"), full_page=True)
                page.click("a:has-text('DME: Boost pressure sensor circuit')")
                drawing = page.locator("img.drawing")
                drawing.wait_for(timeout=10_000)
                page.wait_for_function(
                    "() => document.querySelector('img.drawing').complete", timeout=10_000
                )
                assert drawing.evaluate("img => img.naturalWidth") > 0
                assert "X01801" in page.content()
                page.screenshot(path=str(SHOTS / "portal-info-wiring.png"), full_page=True)
            finally:
                browser.close()
        assert violations == []
