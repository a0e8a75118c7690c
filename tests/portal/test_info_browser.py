"""Repair information in a real browser (headless Chromium from Debian, driven by Playwright)
against ``vci-portal serve`` as a process with the sample content, for a workshop with a Basic
ticket: from the simulated G30's vehicle page (the campaign notice) by the fault code its DME
stores (P12A1-00) to the repair instruction and on to the wiring diagram, whose drawing loads as
an image; and from that fault code on the tablet's fault memory page (``vci gateway`` on ``vci
sim``) to the same instruction. No Content-Security-Policy violation on the way. Screenshots go
to test-artifacts/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from firmware_py.keys import load_private_key
from firmware_py.uds.flash.package import build_package
from portal import accounts, credit, keys
from portal.accounts import Actor
from portal.content import format, sample, store
from portal.credit import BankTransfer, Signer
from portal.db.engine import open_database
from portal.invoices import Seller
from tests.conftest import SimHandle, start_gateway_process
from tests.flash.conftest import image
from tests.portal.conftest import PASSWORD, claim, sign_up
from tests.portal.test_content import G30
from tests.portal.web_client import served

sync_api = pytest.importorskip("playwright.sync_api")
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS, pair_by_button  # noqa: E402  (skips without chromium)


@pytest.fixture
def info_portal(tmp_path: Path, seller: Seller) -> Iterator[str]:
    """``vci-portal serve`` with the sample content and workshop 1 (owner1@example.com) holding
    a Basic ticket; its base URL."""
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
        claim(factory, owner, "pi-00000000deadbeef")
        credit.buy_ticket(factory, owner, owner.workshop_id, tariff="basic-9h",
                          device="pi-00000000deadbeef", signer=signer, seller=seller)  # fmt: skip
        engine.dispose()
        SHOTS.mkdir(parents=True, exist_ok=True)
        yield base


@contextmanager
def chromium(violations: list[str]) -> Iterator[Any]:
    """A browser context whose pages report CSP violations into ``violations``."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1024, "height": 768})
            context.on("page", lambda page: page.on("console", lambda m: violations.append(m.text)
                       if "Content Security Policy" in m.text else None))  # fmt: skip
            yield context
        finally:
            browser.close()


def log_in(page: Any, base: str) -> None:
    page.goto(base + "login")
    page.fill('input[name="login"]', "owner1@example.com")
    page.fill('input[name="password"]', PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url("**/dashboard", timeout=10_000)


def test_from_a_dtc_to_its_instruction_and_wiring_diagram_in_chromium(info_portal: str) -> None:
    base = info_portal
    violations: list[str] = []
    with chromium(violations) as context:
        page = context.new_page()
        log_in(page, base)
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
    assert violations == []


def test_from_a_dtc_on_the_tablet_to_its_repair_instruction(
    info_portal: str, sim_process: SimHandle, tmp_path: Path
) -> None:
    """The tablet's vehicle page says which ECU has newer software in the box's package store,
    links each ECU's part number (with its installed SVK) to its catalogue entry and
    each fault code to the portal's repair information for it and this VIN ([web]
    repair_info_url); the technician logs in to the portal on the first link's tab and lands on
    the page it asked for (whether newer software exists), then on the fault code's instruction."""
    base = info_portal
    env = {**os.environ, "VCI_STORAGE_STATE_DIR": str(tmp_path / "box"),
           "VCI_DEVICE_ID": "box-info", "VCI_WEB_REPAIR_INFO_URL": base + "info",
           "VCI_SECURITY_PUBLISHER_KEYS_DIR": str(tmp_path / "publisher")}  # fmt: skip
    # a signed EGS package newer than the simulated EGS's 12.04.00 in the box's package store
    keys.generate(tmp_path / "publisher", "test-publisher")
    pkid, pkey = load_private_key(tmp_path / "publisher" / "test-publisher.key")
    (tmp_path / "box" / "packages").mkdir(parents=True)
    (tmp_path / "box" / "packages" / "egs-12.05.00.vcipkg").write_bytes(build_package(
        ecu_name="EGS", ecu_address=0x18, version="12.05.00",
        segments=[(0x80000, image("12.05.00", 4096))], key=pkey, kid=pkid,
    ))  # fmt: skip
    gateway = start_gateway_process(sim_process.cli_args("doip"), env)
    violations: list[str] = []
    try:
        with chromium(violations) as context:
            tablet = context.new_page()
            tablet.goto(gateway.url + "/")
            pair_by_button(tablet, env)
            tablet.click("text=Identify vehicle")
            tablet.wait_for_selector("[data-testid=vehicle-vin]", timeout=20_000)
            egs = tablet.locator("tr", has_text="transmission")
            assert egs.locator("[data-testid=newer-package]").inner_text() == (
                "newer in the package store: 12.05.00"
            )
            assert tablet.locator("[data-testid=newer-package]").count() == 1
            # the DME's part number: its catalogue entry, with what is installed
            part = tablet.locator("tr", has_text="engine electronics").locator(
                "[data-testid=part-info]"
            )
            assert part.get_attribute("href") == (
                f"{base}info/parts/8487512?sw=00002B10%3A003.002.001&sw=00002B11%3A004.000.002"
                "&sw=00002B12%3A041.007.012&sw=00002B13%3A012.000.004&ecu=DME&version=41.07.12"
            )  # and the ECU with its version: does the package store hold newer software?
            with context.expect_page(timeout=10_000) as opened:
                part.click()
            catalogue = opened.value
            catalogue.wait_for_load_state()
            # not logged in to the portal yet: its login, then the page the link asked for
            assert catalogue.url == base + "login"
            catalogue.fill('input[name="login"]', "owner1@example.com")
            catalogue.fill('input[name="password"]', PASSWORD)
            catalogue.click("button:has-text('Log in')")
            catalogue.wait_for_url("**/info/parts/8487512?**", timeout=10_000)
            assert "installed 41.7.12: newer software 41.8.0 exists" in catalogue.content()
            assert "DME 41.07.12: no newer software in the package store" in catalogue.content()
            catalogue.screenshot(path=str(SHOTS / "tablet-to-portal-ecu-part.png"), full_page=True)
            tablet.click("#tabs button[data-view=faults]")
            tablet.click("text=Read all ECUs")
            tablet.wait_for_selector("[data-testid=ecu-faults]", timeout=30_000)
            row = tablet.locator("tr", has_text="Boost pressure too low")
            link = row.locator("[data-testid=dtc-info]")
            assert link.get_attribute("href") == (f"{base}info/dtc?code=P12A1-00&vin={G30}")
            tablet.screenshot(
                path=str(SHOTS / "tablet-fault-memory-info-links.png"), full_page=True
            )
            with context.expect_page(timeout=10_000) as opened:
                link.click()
            info = opened.value
            info.wait_for_load_state()
            info.click("a:has-text('Boost pressure too low: diagnosis and repair')")
            assert "Torque: 8 Nm" in info.content()
            info.click("a:has-text('DME: Boost pressure sensor circuit')")
            info.locator("img.drawing").wait_for(timeout=10_000)
            info.screenshot(path=str(SHOTS / "tablet-to-portal-wiring.png"), full_page=True)
    finally:
        gateway.stop()
    assert violations == []
