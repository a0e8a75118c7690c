"""The Reports page in a real browser (Debian's Chromium, driven by Playwright) against
``vci gateway`` and ``vci sim`` in their own processes: the emissions check shown as the
simulator's state says (ready; then NOT READY with the MIL fault and why), its print layout
(the page's chrome hidden), its PDF downloaded and read back, and the vehicle test report.
Screenshots go to test-artifacts/screenshots/ (as the other browser tests' do)."""

from __future__ import annotations

import io
import os
import shutil

import pytest

from tests.conftest import start_gateway_process, vci

sync_api = pytest.importorskip("playwright.sync_api")
pypdf = pytest.importorskip("pypdf")
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS  # noqa: E402 - after the skips


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """vci sim + a box with a Basic ticket + vci gateway over DoIP, and a paired browser page."""
    from portal import keys, tickets
    from tests.conftest import _start, _stop

    root = tmp_path_factory.mktemp("browser-reports")
    sim = _start(())
    keys.generate(root / "portal", "test-portal")
    (root / "trust-portal").mkdir()
    shutil.copy(root / "portal" / "test-portal.pub", root / "trust-portal")
    env = {
        **os.environ,
        "VCI_STORAGE_STATE_DIR": str(root / "state"),
        "VCI_DEVICE_ID": "box-browser",
        "VCI_SECURITY_PORTAL_KEYS_DIR": str(root / "trust-portal"),
    }
    kid, key = keys.load_signing_key(root / "portal")
    added = vci(
        "ticket", "add", tickets.issue(key, kid, tariff="basic-1d", device="box-browser"), env=env
    )
    assert added.returncode == 0, added.stderr
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 768}, accept_downloads=True)
        page.goto(gateway.url + "/")
        with page.expect_request(lambda r: r.url.endswith("/collect"), timeout=10_000):
            page.click("#pair")
        page.wait_for_selector("#waiting:not([hidden])")
        assert vci("pair", "--approve", env=env).returncode == 0
        page.wait_for_selector("#tabs", timeout=10_000)
        page.click("#tabs button[data-view=reports]")
        yield {"page": page, "sim": sim}
        browser.close()
    gateway.stop()
    _stop(sim)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def read(page, kind: str, *, contains: str) -> None:
    page.click(f"button[data-job={kind}]")
    page.wait_for_function(
        "([kind, text]) => (document.querySelector(`[data-testid=card-${kind}] [data-testid=verdict]`)"
        " || {}).textContent?.includes(text)",
        arg=[kind, contains],
        timeout=30_000,
    )


def test_emissions_report_page(stack) -> None:
    page, sim = stack["page"], stack["sim"]
    read(page, "emissions_data", contains="READY for the emissions check")
    report = page.locator("[data-testid=report-emissions]")
    obd = sim.state()["ecus"]["DME"]["obd"]
    assert report.locator("[data-testid=report-vin]").inner_text() == sim.state()["vin"]
    text = report.inner_text()
    assert "NOT READY" not in text and obd["cvns"][0] in text and obd["calids"][0] in text
    assert "SAMPLE VALUES" in text and "P0299" in text  # pending, shown as a note
    shot(page, "20-emissions-ready")

    sim.obd("fault", "P0300")
    page.click("button[data-job=emissions_data]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=card-emissions_data] [data-testid=verdict]')"
        "?.textContent.includes('NOT READY')",
        timeout=30_000,
    )
    verdict = report.locator("[data-testid=verdict]").inner_text()
    assert "MIL" in verdict and "P0300 (DME)" in verdict
    shot(page, "21-emissions-not-ready")

    page.emulate_media(media="print")
    assert not page.locator("nav").is_visible() and not page.locator("header").is_visible()
    assert report.locator("[data-testid=verdict]").is_visible()
    assert not page.locator("button[data-job=emissions_data]").is_visible()
    shot(page, "22-emissions-print")
    page.emulate_media(media="screen")

    with page.expect_download(timeout=20_000) as download:
        report.locator("[data-testid=report-pdf]").click()
    pdf = pypdf.PdfReader(io.BytesIO(download.value.path().read_bytes()))
    text = "\n".join(p.extract_text() for p in pdf.pages)
    assert "NOT READY for the emissions check" in text and "P0300" in text
    assert download.value.suggested_filename.startswith("emissions-" + sim.state()["vin"])


def test_vehicle_test_report_page(stack) -> None:
    page = stack["page"]
    read(page, "vehicle_test_report", contains="Needs attention")
    report = page.locator("[data-testid=report-vehicle_test]")
    assert "Boost pressure too low" in report.inner_text()
    assert "Engine oil" in report.inner_text()
    shot(page, "23-vehicle-test-report")
