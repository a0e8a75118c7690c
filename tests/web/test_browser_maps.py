"""A navigation map update on the tablet page in a real browser (Debian's Chromium, driven by
Playwright) against ``vci gateway`` and ``vci sim`` in their own processes: the job's phases
(download, then writing into the head unit) with MiB done, then the map active; a map update
cancelled during the download goes on from the bytes kept when started again. The package is
GENERATED sample data served on 127.0.0.1 (tests/gateway/map_server.py). Screenshots go to
test-artifacts/screenshots/ (as the other browser tests' do)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Box, start_gateway_process, vci
from tests.gateway.map_server import MapServer
from tests.gateway.test_map_update import MAP, head_unit, signed

sync_api = pytest.importorskip("playwright.sync_api")
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS  # noqa: E402 - after the skip

SIZE = 300 * 2**20
START = "([m, a]) => runJob('map_update', null, {manifest: m, activation: a})"


def mib_shown_at_least(page: Any, mib: int) -> None:
    page.wait_for_function(
        "(mib) => +((document.querySelector('[data-testid=map-phase]') || {}).textContent"
        " || '').replace(/.* - (\\d+) of.*/, '$1') >= mib",
        arg=mib,
        timeout=30_000,
    )


@pytest.fixture
def tablet(tmp_path: Path, start_sim: Any) -> Iterator[dict[str, Any]]:
    """vci sim, a box with an Informationssuche ticket, vci gateway over DoIP, the sample package
    on an HTTP server, its manifest and activation code, and a paired page on Programming."""
    from portal import keys, map_cli, tickets

    keys.generate(tmp_path / "portal", "test-portal")
    (tmp_path / "trust").mkdir()
    shutil.copy(tmp_path / "portal" / "test-portal.pub", tmp_path / "trust")
    env = {
        **os.environ,
        "VCI_STORAGE_STATE_DIR": str(tmp_path / "state"),
        "VCI_DEVICE_ID": "box-browser",
        "VCI_SECURITY_PORTAL_KEYS_DIR": str(tmp_path / "trust"),
    }
    kid, key = keys.load_signing_key(tmp_path / "portal")
    ticket = tickets.issue(key, kid, tariff="info-1m", device="box-browser")
    assert vci("ticket", "add", ticket, env=env).returncode == 0
    sim = start_sim()
    package = map_cli.make_sample(tmp_path / "sample.map", SIZE)
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with MapServer(package) as server, sync_api.sync_playwright() as p:
            box = Box(tmp_path, None, tmp_path / "portal", "box-browser")
            tokens = [f.read_text() for f in signed(box, package, server.url)]
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1024, "height": 900})
            page.goto(gateway.url + "/")
            with page.expect_request(lambda r: r.url.endswith("/collect"), timeout=10_000):
                page.click("#pair")
            page.wait_for_selector("#waiting:not([hidden])")
            assert vci("pair", "--approve", env=env).returncode == 0
            page.wait_for_selector("#tabs", timeout=10_000)
            page.click("#tabs button[data-view=programming]")
            yield {"page": page, "sim": sim, "server": server, "tokens": tokens, "root": tmp_path}
            browser.close()
    finally:
        gateway.stop()


def test_a_map_update_shows_its_phases_and_the_active_map(tablet) -> None:
    page, sim = tablet["page"], tablet["sim"]
    # the tablet starts the job as the portal's offer does (the same job, its params)
    page.evaluate(START, tablet["tokens"])
    phase = page.wait_for_selector("[data-testid=map-phase]", timeout=30_000)
    assert "MiB" in phase.text_content()
    mib_shown_at_least(page, 100)  # a third of the way, for the screenshot
    page.screenshot(path=str(SHOTS / "map-update-running.png"), full_page=True)
    active = page.wait_for_selector("[data-testid=map-active]", timeout=60_000)
    assert active.text_content() == f"{MAP} installed and active in HU (300 MiB)"
    page.screenshot(path=str(SHOTS / "map-update-done.png"), full_page=True)
    assert head_unit(sim)["active"] == MAP


def test_a_cancelled_download_goes_on_from_the_bytes_kept(tablet) -> None:
    page, server = tablet["page"], tablet["server"]
    server.hold_at = 40 * 2**20  # the download waits there until the cancel is in
    job = page.evaluate(START, tablet["tokens"])
    deadline = time.monotonic() + 30  # the page shows progress at its own pace: the file tells
    while (
        sum(p.stat().st_size for p in (tablet["root"] / "state" / "maps").glob("*.map.part"))
        < 30 * 2**20
    ):
        assert time.monotonic() < deadline, "the download did not reach 30 MiB"
        time.sleep(0.05)
    page.evaluate("(id) => api('POST', `/api/jobs/${id}/cancel`)", job["id"])
    server.release.set()
    error = page.wait_for_selector("[data-testid=map-update] .error", timeout=30_000)
    assert "the map update was cancelled; the bytes fetched are kept" in error.text_content()
    [part] = (tablet["root"] / "state" / "maps").glob("*.map.part")
    kept = part.stat().st_size
    assert kept >= 30 * 2**20
    page.evaluate(START, tablet["tokens"])
    page.wait_for_selector("[data-testid=map-active]", timeout=60_000)
    [first, second] = server.log
    assert first.range is None and second.range == f"bytes={kept}-"  # from the bytes kept
    assert head_unit(tablet["sim"])["active"] == MAP


def test_an_offer_kept_for_this_car_is_installed_with_its_button(tablet) -> None:
    from cryptography.hazmat.primitives import serialization

    from firmware_py.gateway import map_offers

    page, root = tablet["page"], tablet["root"]
    public = serialization.load_pem_public_key((root / "trust" / "test-portal.pub").read_bytes())
    # what the gateway keeps of the portal's map.offer (tests/cloud/test_map_offer_link.py)
    kept = map_offers.keep(root / "state", {"test-portal": public}, *tablet["tokens"])
    page.click("#tabs button[data-view=vehicle]")
    page.click("#tabs button[data-view=programming]")  # the offers are read with the page
    offer = page.wait_for_selector("[data-testid=map-offers]", timeout=10_000)
    assert f"{MAP}300 MiBfor {kept['vin']}" in offer.text_content()
    page.screenshot(path=str(SHOTS / "map-update-offered.png"), full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"button[data-offer='{kept['offer']}']")
    page.wait_for_selector("[data-testid=map-active]", timeout=60_000)
    assert page.query_selector("[data-testid=map-offers]") is None  # done with: no longer offered
    assert head_unit(tablet["sim"])["active"] == MAP
