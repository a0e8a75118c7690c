"""A remote session in a real browser (headless Chromium, Playwright) against ``vci-portal
serve --broker ...`` as a process, a real ``vci gateway`` on the simulated car and real
mosquitto: the technician starts a session, identifies the car and reads the fault memory from
the generated forms, and the job pages follow the progress by themselves (static/session.js)
without a single Content-Security-Policy violation. Screenshots go to
test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cloud.conftest import BOX, HAVE_MOSQUITTO, USER
from tests.portal.conftest import PASSWORD
from tests.portal.web_client import served

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto not installed")
sync_api = pytest.importorskip("playwright.sync_api")
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS  # noqa: E402  (skips without chromium)


def test_identify_and_fault_memory_from_the_session_page_in_chromium(
    remote_shop: dict[str, Any], tmp_path: Path
) -> None:
    broker = remote_shop["broker"]
    (tmp_path / "portal").mkdir()
    flags = ("--db", remote_shop["url"], "--broker", f"127.0.0.1:{broker['port']}",
             "--pki", str(broker["pki"]), "--broker-user", USER)  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    violations: list[str] = []
    with served(tmp_path / "portal", *flags) as base, sync_api.sync_playwright() as p:
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
            page.click("a:has-text('Remote sessions')")
            page.goto(base + f"boxes/{BOX}/sessions")
            page.click("button:has-text('Start a remote session')")
            page.wait_for_url(f"**/boxes/{BOX}/sessions/*", timeout=10_000)
            session_url = page.url
            page.screenshot(path=str(SHOTS / "portal-session.png"), full_page=True)

            page.click("button:has-text('Run: Identify the vehicle')")
            page.wait_for_url("**/jobs/*", timeout=10_000)
            # the page shows the end by itself: its script polls the job (no reload here)
            sync_api.expect(page.locator("#job-state")).to_have_text("done", timeout=60_000)
            assert "WBAJA71090B123456" in page.inner_text("#job-result")
            page.screenshot(path=str(SHOTS / "portal-session-identify.png"), full_page=True)

            page.goto(session_url)
            form = page.locator("form.job", has=page.locator('input[value="read_fault_memory"]'))
            form.locator('input[name="ecu"]').fill("DME")
            form.locator("button").click()
            page.wait_for_url("**/jobs/*", timeout=10_000)
            # the page shows the end by itself: its script polls the job (no reload here)
            sync_api.expect(page.locator("#job-state")).to_have_text("done", timeout=60_000)
            page.screenshot(path=str(SHOTS / "portal-session-faults.png"), full_page=True)
            page.locator("details.fault summary").first.click()
            assert "Snapshot data" in page.inner_text("#job-result")
            page.screenshot(path=str(SHOTS / "portal-session-faults.png"), full_page=True)
            page.goto(base + "sessions")
            assert "Read the fault memory: done" in page.content()
        finally:
            browser.close()
    assert violations == []
