"""The tablet page's ENET bridge tab in a real browser (headless Chromium, Playwright) against
``vci gateway`` and ``vci sim`` in their own processes: open the bridge for this tablet's address,
see it open with its ports, a tester reads the VIN through it, close it."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.bridge.test_bridge_scapy import VIN, hsfz_tester

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def test_the_bridge_tab_opens_and_closes_the_bridge(bridge_box) -> None:
    gw = bridge_box()
    cookies = [
        {"name": c.name, "value": c.value or "", "url": gw.page + "/"} for c in gw.tablet.cookies
    ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context()
            context.add_cookies(cookies)
            page = context.new_page()
            page.goto(gw.page + "/")
            page.click("#tabs button[data-view=bridge]")
            page.wait_for_function(
                "document.querySelector('#bridge-client')?.value === '127.0.0.1'"
            )
            page.click("button[data-action=bridge-open]")
            state = page.wait_for_selector("[data-testid=bridge-state]:has-text('hsfz')")
            assert "open for 127.0.0.1" in state.inner_text().replace("\n", " ")
            tester = hsfz_tester(gw.state()["job"]["progress"]["ports"], target=0x12)
            try:
                assert tester.ask(b"\x22\xf1\x90") == b"\x62\xf1\x90" + VIN.encode()
            finally:
                tester.close()
            page.click("button[data-action=bridge-close]")
            page.wait_for_selector("button[data-action=bridge-open]")
        finally:
            browser.close()
    assert gw.wait_closed()["reason"] == "closed"
