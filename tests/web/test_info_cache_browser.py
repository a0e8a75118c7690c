"""The tablet page (headless Chromium) shows a fault code's instruction and the car's open
campaigns from the box's cache of repair information, with no portal running: ``vci gateway``
on ``vci sim`` whose cache holds the G30's subset of the sample content. Screenshot to
test-artifacts/screenshots/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firmware_py.gateway.info_cache import InfoCache
from portal.content import format, sample, store
from portal.content.car_subset import car_subset
from portal.db.engine import open_database
from tests.conftest import SimHandle, start_gateway_process

sync_api = pytest.importorskip("playwright.sync_api")
from tests.portal.test_info_browser import chromium  # noqa: E402  (skips without chromium)
from tests.web.test_browser import SHOTS, pair_by_button  # noqa: E402

G30 = "WBAJA71090B123456"


def test_the_tablet_shows_a_dtc_s_instruction_from_the_box_without_the_portal(
    sim_process: SimHandle, tmp_path: Path
) -> None:
    content = tmp_path / "sample"
    sample.write(content)
    engine, factory = open_database(f"sqlite:///{tmp_path / 'portal.sqlite3'}", migrate=True)
    store.load(factory, format.read(content))
    (tmp_path / "box").mkdir()
    with factory() as session:
        subset = car_subset(session, G30, None, [], 2026)
    engine.dispose()  # no portal from here on
    InfoCache(tmp_path / "box" / "info_cache.sqlite", 1 << 20).put(subset)
    env = {**os.environ, "VCI_STORAGE_STATE_DIR": str(tmp_path / "box"),
           "VCI_DEVICE_ID": "box-info"}  # fmt: skip
    gateway = start_gateway_process(sim_process.cli_args("doip"), env)
    violations: list[str] = []
    try:
        with chromium(violations) as context:
            tablet = context.new_page()
            tablet.goto(gateway.url + "/")
            pair_by_button(tablet, env)
            tablet.click("text=Identify vehicle")
            tablet.wait_for_selector("[data-testid=vehicle-vin]", timeout=20_000)
            tablet.click("#tabs button[data-view=faults]")
            tablet.click("text=Read all ECUs")
            tablet.wait_for_selector("[data-testid=ecu-faults]", timeout=30_000)
            row = tablet.locator("tr", has_text="Boost pressure too low")
            row.locator("[data-testid=dtc-cached-open]").click()
            shown = row.locator("[data-testid=dtc-cached]")
            shown.wait_for(timeout=10_000)
            text = shown.inner_text()
            assert "Boost pressure too low: diagnosis and repair" in text
            assert "8.0 Nm" in text or "8 Nm" in text
            assert "CAMPAIGN-0032-SAMPLE" in text and "sample-2026.11" in text
            SHOTS.mkdir(parents=True, exist_ok=True)
            tablet.screenshot(path=str(SHOTS / "tablet-dtc-from-box-cache.png"), full_page=True)
            # a German tablet reads the content set's German from the same cache
            tablet.click("[data-testid=lang-de]")
            tablet.wait_for_function("() => document.documentElement.lang === 'de'")
            shown = tablet.locator("tr", has_text="Ladedruck zu niedrig").locator(
                "[data-testid=dtc-cached]"
            )
            shown.wait_for(timeout=10_000)
            text = shown.inner_text()
            assert "Ladedruck zu niedrig: Diagnose und Reparatur" in text, text
            assert "Bauteil ersetzen (Teil 9901800)" in text and "Raddrehzahlsignal" in text, text
            assert "diagnosis and repair" not in text
            tablet.screenshot(path=str(SHOTS / "de-tablet-dtc-from-box-cache.png"), full_page=True)
    finally:
        gateway.stop()
    assert violations == []
