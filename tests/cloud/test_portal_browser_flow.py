"""A workshop's first day on the portal in a real browser (headless Chromium, Playwright), all
against real processes on loopback: mosquitto with TLS and the ACL, ``vci sim``, a ``vci gateway``
that enrols by itself (its key never leaves its state dir), ``vci-portal enrol serve`` (the
endpoint the box polls) and ``vci-portal serve --broker ... --pki ...`` on the same database.

The owner signs up, the operator books the bank transfer, the owner claims the box with what its
label says (read with ``vci label``, as a technician reads the sticker), the box gets its
certificate and shows online on /boxes, the owner buys a "Basic, 1 day" ticket for it (chosen from
the workshop's boxes), opens a remote session, identifies the car (which then shows on /boxes),
reads the fault memory with details, and downloads the invoice (19 % VAT, the tariff). No
Content-Security-Policy violation on the way. Screenshots: test-artifacts/screenshots/
portal-flow-*.png."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from portal import accounts
from portal.db.engine import open_database
from tests.cloud.conftest import BOX, HAVE_MOSQUITTO, USER, EnrolPortal, enrolling_env
from tests.conftest import start_gateway_process, vci
from tests.portal.conftest import FAST_HASHER, PASSWORD
from tests.portal.test_web_browser import book_transfer, sign_up_and_log_in
from tests.portal.web_client import served

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto not installed")
sync_api = pytest.importorskip("playwright.sync_api")
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS  # noqa: E402  (skips without chromium)

VIN = "WBAJA71090B123456"  # the simulator's G30


def _label(env: dict[str, str]) -> tuple[str, str]:
    """The device id and label code as the box's label sheet says them (``vci label``)."""
    assert vci("firstboot", env=env).returncode == 0
    label = vci("label", env=env)
    assert label.returncode == 0, label.stderr
    device = re.search(r"Device id:\s+(\S+)", label.stdout)
    code = re.search(r"Pairing code:\s+(\S+)", label.stdout)
    assert device and code, label.stdout
    return device[1], code[1]


def _reload_until(page: Any, url: str, text: str, timeout: float) -> None:
    """Open ``url`` again until it shows ``text``, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if text in page.inner_text("main"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not show {text!r} within {timeout:.0f} s")
        page.wait_for_timeout(300)


def test_sign_up_to_first_remote_job_and_invoice_in_chromium(
    box: Any, broker: dict[str, Any], enrol_portal: EnrolPortal, start_sim: Any, tmp_path: Path
) -> None:
    sim = start_sim("--battery", "13.6")
    env = enrolling_env(box, broker, enrol_portal)
    device, code = _label(env)
    assert device == BOX
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    flags = ("--db", f"sqlite:///{enrol_portal.db}", "--key-dir", str(box.keys_dir),
             "--broker", f"127.0.0.1:{broker['port']}", "--pki", str(broker["pki"]),
             "--broker-user", USER, "--broker-pid", str(broker["proc"].pid))  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    violations: list[str] = []
    started = time.monotonic()
    try:
        with served(tmp_path / "portal", *flags) as base, sync_api.sync_playwright() as p:
            engine, factory = open_database(f"sqlite:///{enrol_portal.db}")
            with factory() as session, session.begin():
                accounts.add_operator(session, login="ops@portal.example", name="Ops",
                                      password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip
            engine.dispose()
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                owner = browser.new_context(accept_downloads=True).new_page()
                ops = browser.new_context().new_page()
                for page in (owner, ops):
                    page.on("console", lambda m: violations.append(m.text)
                            if "Content Security Policy" in m.text else None)  # fmt: skip

                def shot(name: str, page: Any = owner) -> None:
                    page.screenshot(path=str(SHOTS / f"portal-flow-{name}.png"), full_page=True)

                # 1. the workshop signs up and logs in
                sign_up_and_log_in(owner, base)
                shot("1-signed-up")

                # 2. the operator books the workshop's bank transfer
                book_transfer(ops, base, "100.00")
                shot("2-top-up", ops)

                # 3. the owner claims the box with its label; it gets its certificate, links up
                enrol_portal.wait_waiting(BOX)
                owner.goto(base + "boxes")
                owner.fill('input[name="device"]', device)
                owner.fill('input[name="code"]', code)
                owner.fill('input[name="label"]', "Bay 1")
                owner.click("button:has-text('Claim the box')")
                owner.wait_for_url(f"**/boxes/{BOX}", timeout=10_000)
                _reload_until(owner, base + "boxes", "online", 40)
                assert (tmp_path / "state" / "identity" / "box.pem").exists()
                shot("3-box-online")

                # 4. a Basic 1-day ticket for the box, chosen from the workshop's boxes
                owner.goto(base + "buy")
                owner.select_option('select[name="tariff"]', "basic-1d")
                owner.select_option('select[name="device"]', BOX)
                owner.click("button:has-text('Buy from the credit')")
                owner.wait_for_url("**/purchases/*", timeout=10_000)
                purchase_url = owner.url
                assert BOX in owner.content()
                _reload_until(owner, purchase_url, "delivered", 30)  # over the broker link
                shot("4-ticket-bought")

                # 5. a remote session: identify the car; /boxes then shows it
                owner.goto(base + f"boxes/{BOX}/sessions")
                owner.click("button:has-text('Start a remote session')")
                owner.wait_for_url(f"**/boxes/{BOX}/sessions/*", timeout=10_000)
                session_url = owner.url
                owner.click("button:has-text('Run: Identify the vehicle')")
                owner.wait_for_url("**/jobs/*", timeout=10_000)
                sync_api.expect(owner.locator("#job-state")).to_have_text("done", timeout=60_000)
                assert VIN in owner.inner_text("#job-result")
                shot("5-identified")
                _reload_until(owner, base + "boxes", VIN, 30)
                assert "G30" in owner.inner_text("main")
                shot("6-box-with-car")

                # 6. the fault memory with a fault's details
                owner.goto(session_url)
                form = owner.locator("form.job",
                                     has=owner.locator('input[value="read_fault_memory"]'))  # fmt: skip
                form.locator('input[name="ecu"]').fill("DME")
                form.locator("button").click()
                owner.wait_for_url("**/jobs/*", timeout=10_000)
                sync_api.expect(owner.locator("#job-state")).to_have_text("done", timeout=60_000)
                owner.locator("details.fault summary").first.click()
                assert "Snapshot data" in owner.inner_text("#job-result")
                shot("7-fault-memory")

                # 7. the invoice of the purchase
                owner.goto(purchase_url)
                with owner.expect_download(timeout=10_000) as download:
                    owner.click("a:has-text('Invoice')")
                pdf = Path(download.value.path()).read_bytes()
                text = "".join(pg.extract_text() for pg in PdfReader(io.BytesIO(pdf)).pages)
                for expected in ("Werkstatt Nord", "DE123456789", "Basic, 1 day (basic-1d)",
                                 "VAT 19 %", BOX):  # fmt: skip
                    assert expected in text, expected
                owner.goto(base + "dashboard")
                shot("8-dashboard")
            finally:
                browser.close()
    finally:
        output = gateway.stop()
    assert violations == []
    assert "PRIVATE KEY" not in output and code not in output
    assert time.monotonic() - started < 120
