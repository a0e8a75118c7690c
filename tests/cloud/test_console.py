"""The portal's web console in a real browser (Debian's chromium through Playwright): a portal
user sees its box online, runs jobs on it through the real mosquitto with live progress, gets a
denial's reason, and sees the box's outbox records arrive. The console admits only a browser that
came with its access token. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cloud.conftest import (
    BOX,
    HAVE_MOSQUITTO,
    USER,
    free_port,
    gateway_env,
    stop,
)
from tests.conftest import START_TIMEOUT, ProcessOutput, start_gateway_process

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not HAVE_MOSQUITTO or not os.path.exists(CHROMIUM):
    pytest.skip(
        "needs mosquitto and chromium (scripts/test installs both)", allow_module_level=True
    )
SHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers or {}), timeout=10):
            return 200
    except urllib.error.HTTPError as err:
        return err.code


def test_console_runs_jobs_on_a_box_with_live_progress(box, broker, start_sim, tmp_path) -> None:
    sim = start_sim("--battery", "13.6")
    gateway = start_gateway_process(sim.cli_args("doip"), gateway_env(box, broker))
    port = free_port()
    console = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portal.cli",
            "console",
            "--listen",
            f"127.0.0.1:{port}",
            "--broker",
            f"127.0.0.1:{broker['port']}",
            "--pki",
            str(broker["pki"]),
            "--user",
            USER,
            "--records",
            str(tmp_path / "records.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = ProcessOutput(console).wait_for("vci-portal console ready", START_TIMEOUT)
        url = ready.split()[-1]
        base = f"http://127.0.0.1:{port}"
        assert url.startswith(base + "/?token=")
        # without the token: nothing
        assert _request(base + "/") == 401
        assert _request(base + "/api/boxes") == 401
        assert _request(base + "/?token=wrong") == 403
        job = json.dumps({"box": BOX, "kind": "identify"}).encode()
        assert _request(base + "/api/jobs", job, {"Content-Type": "application/json"}) == 401
        SHOTS.mkdir(parents=True, exist_ok=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            row = page.locator(f"#boxes tr[data-box={BOX}] [data-testid=box-state]")
            row.wait_for(timeout=20_000)
            sync_api.expect(row).to_have_text("online", timeout=20_000)
            # a cross-origin POST with the console's cookie is refused
            status = page.evaluate(
                """async () => (await fetch('/api/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'},
                    body: JSON.stringify({box: 'x', kind: 'identify'})})).status"""
            )
            assert status == 400  # same origin: reaches the handler (unknown box)
            assert (
                _request(
                    base + "/api/jobs",
                    job,
                    {
                        "Content-Type": "application/json",
                        "Origin": "http://evil.example",
                        "Cookie": f"vci_console={url.split('token=')[1]}",
                    },
                )
                == 403
            )
            cookie = {
                "Content-Type": "application/json",
                "Cookie": f"vci_console={url.split('token=')[1]}",
            }
            for bad in (b"[1]", b"[" * 5000 + b"]" * 5000, b'{"box": 1, "box": 2}'):
                assert _request(base + "/api/jobs", bad, cookie) == 400, bad[:20]  # was 500

            page.select_option("#kind", "identify")
            page.click("#run")
            card = page.locator("[data-testid=job]").first
            card.locator("[data-testid=vin]").wait_for(timeout=30_000)
            assert card.locator("[data-testid=vin]").inner_text() == "WBAJA71090B123456"
            assert card.locator("[data-testid=job-state]").inner_text() == "done"

            page.select_option("#kind", "clear_fault_memory")
            page.fill("#ecu", "DME")
            page.click("#run")
            card = page.locator("[data-testid=job]").first
            card.locator("[data-testid=job-reason]").wait_for(timeout=30_000)
            assert card.locator("[data-testid=job-state]").inner_text() == "denied"
            assert "Basic" in card.locator("[data-testid=job-reason]").inner_text()
            assert sim.state()["ecus"]["DME"]["dtcs"]  # nothing cleared

            page.fill("#ticket", box.issue("basic-1d"))
            page.click("#run")
            card = page.locator("[data-testid=job]").first
            sync_api.expect(card.locator("[data-testid=job-state]")).to_have_text(
                "done", timeout=30_000
            )
            assert sim.state()["ecus"]["DME"]["dtcs"] == []
            states = page.locator("[data-testid=job] [data-testid=job-state]").all_inner_texts()
            assert states == ["done", "denied", "done"]  # newest first, every job kept
            # the box's record of the clearing arrives through its outbox; records of the other
            # jobs (the identify, the remote session log) may arrive before or after it
            clearing = page.locator("[data-testid=record]", has_text="clear_fault_memory")
            clearing.first.wait_for(timeout=20_000)
            assert "done" in clearing.first.inner_text()
            # live data streams until the technician cancels it
            page.select_option("#kind", "read_live_data")
            page.fill("#ecu", "")
            page.fill("#params", "interval:=0.2\nduration:=120")  # numbers as JSON
            page.click("#run")
            card = page.locator("[data-testid=job]").first
            sync_api.expect(card.locator("[data-testid=job-step]")).to_contain_text(
                "engine_speed_rpm", timeout=20_000
            )
            page.screenshot(path=str(SHOTS / "portal-console-live.png"), full_page=True)
            card.locator("button[data-cancel]").click()
            sync_api.expect(card.locator("[data-testid=job-state]")).to_have_text(
                "done", timeout=15_000
            )
            page.screenshot(path=str(SHOTS / "portal-console.png"), full_page=True)
            browser.close()
    finally:
        stop(console)
        gateway.stop()
