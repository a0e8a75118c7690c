"""The service booklet and the Technical Help Desk on the tablet page in a real browser (Debian's
Chromium driven by Playwright), against ``vci gateway`` linked to a real mosquitto and ``vci sim``:
a service recorded in one flow (reset the items, then record; read back from the car, sent to the
portal's booklet), and a help-desk request sent from the tablet whose answer from the portal
appears on the tablet. Screenshots go to test-artifacts/screenshots/ (docs/helpdesk.md)."""

from __future__ import annotations

import json

import pytest

from portal.records import RecordStore
from portal.remote import RemoteSession
from tests.cloud.conftest import (  # noqa: F401 - broker: the fixture
    BOX,
    HAVE_MOSQUITTO,
    USER,
    broker,
    gateway_env,
    portal,
    wait_online,
    wait_until,
)
from tests.conftest import start_gateway_process
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS, pair_by_button, shot, sync_api, tab

if not HAVE_MOSQUITTO:
    pytest.skip("mosquitto is not installed (scripts/test installs it)", allow_module_level=True)

VIN = "WBAJA71090B123456"


@pytest.fixture
def tablet(box, broker, start_sim, tmp_path):  # noqa: F811 - the imported fixture
    """A paired tablet's page on ``vci gateway`` (box-test-0001, Basic and Help Desk tickets,
    linked to the broker) on the simulated car over DoIP; the portal keeps the box's records."""
    sim = start_sim("--battery", "13.6")
    for tariff in ("basic-1d", "helpdesk"):
        assert box.vci("ticket", "add", box.issue(tariff)).returncode == 0
    env = gateway_env(box, broker)
    gateway = start_gateway_process(sim.cli_args("doip"), env)
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    records = RecordStore(tmp_path / "portal.sqlite")
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        wait_online(session, BOX)
        session.keep_records(records)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(gateway.url + "/")
            pair_by_button(page, env)
            yield {"page": page, "sim": sim, "box": box, "records": records, "broker": broker}
            browser.close()
    finally:
        session.close()
        gateway.stop()


def test_a_service_is_recorded_in_one_flow_and_reaches_the_portal(tablet) -> None:
    page, sim, records = tablet["page"], tablet["sim"], tablet["records"]
    tab(page, "service")
    page.click("button[data-action=booklet-read]")
    page.wait_for_selector("[data-testid=booklet-entry]", timeout=20_000)
    assert page.locator("[data-testid=booklet-entry]").count() == 2
    page.click("button[data-action=service-read]")  # the items to choose from
    page.wait_for_selector(".booklet-item", timeout=20_000)
    for item in ("engine_oil", "brake_fluid"):  # engine oil is overdue, not reset
        page.check(f".booklet-item[value={item}]")
    page.fill("#booklet-note", "oil and brake fluid")
    page.dispatch_event("#booklet-note", "change")
    before = page.locator("[data-testid=cbs-item]").all_inner_texts()
    assert any("due" in r.split() for r in before), before  # engine oil is overdue
    page.click("button[data-action=booklet-record]")  # confirmed: reset, then record
    page.wait_for_selector("[data-testid=booklet-recorded]", timeout=30_000)
    text = page.inner_text("[data-testid=booklet-recorded]")
    assert "Recorded: entry 3 at 48,211 km" in text and "engine_oil" in text
    assert page.locator("[data-testid=booklet-entry]").count() == 3
    kombi = sim.state()["ecus"]["KOMBI"]
    assert kombi["service_history"] == 3
    assert all(c["availability"] == 100 for c in kombi["cbs"] if c["id"] in (1, 4))
    # the status table shows the values read back after the reset, without "Read service status"
    rows = page.locator("[data-testid=cbs-item]")
    reset = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert sum("100 %" in r for r in reset) >= 2 and not any("due" in r.split() for r in reset), (
        reset
    )
    shot(page, "20-service-booklet")
    kept = wait_until(lambda: len(records.booklet.entries(VIN)) == 3, 20, "the portal's booklet")
    assert kept
    newest = records.booklet.entries(VIN)[-1]
    assert newest["note"] == "oil and brake fluid" and newest["workshop"] == BOX


def test_a_helpdesk_request_from_the_tablet_and_its_answer(tablet, tmp_path) -> None:
    page, box, records, brk = tablet["page"], tablet["box"], tablet["records"], tablet["broker"]
    tab(page, "helpdesk")
    page.fill("#hd-question", "Boost pressure too low after the oil service: where to look?")
    page.dispatch_event("#hd-question", "change")
    page.fill("#hd-contact", "Jo Weber, +49 30 1234567")
    page.dispatch_event("#hd-contact", "change")
    page.click("button[data-action=helpdesk-send]")
    page.wait_for_selector("[data-testid=helpdesk-request]", timeout=40_000)
    requests = wait_until(
        lambda: [r for r in records.helpdesk.requests() if r["complete"]], 30, "the request whole"
    )
    rid = requests[0]["id"]
    bundle = records.helpdesk.show(rid)["bundle"]
    assert bundle["identification"]["vin"] == VIN
    assert [j["kind"] for j in bundle["session_log"]] == ["help_desk_request"]
    page.wait_for_selector("[data-testid=helpdesk-request] >> text=delivered", timeout=20_000)
    shot(page, "21-helpdesk-sent")
    answer = portal(
        "helpdesk", "answer", rid, "Check the charge air hose clamps first.",
        "--records", str(tmp_path / "portal.sqlite"), "--broker", f"127.0.0.1:{brk['port']}",
        "--pki", str(brk["pki"]), "--user", USER,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    page.wait_for_selector("[data-testid=helpdesk-answer]", timeout=20_000)
    assert "charge air hose clamps" in page.inner_text("[data-testid=helpdesk-answer]")
    shot(page, "22-helpdesk-answered")
    tickets = json.loads(box.vci("--json", "ticket", "list").stdout)
    assert {t["tariff"]: t["state"] for t in tickets}["helpdesk"] == "used up"


def test_the_portal_console_shows_the_booklet_and_answers_a_request(
    box,
    broker,  # noqa: F811 - the imported fixture
    start_sim,
    tmp_path,
) -> None:
    import subprocess
    import sys

    from tests.conftest import START_TIMEOUT, ProcessOutput, free_port, stop_process

    sim = start_sim("--battery", "13.6")
    for tariff in ("basic-1d", "helpdesk"):
        assert box.vci("ticket", "add", box.issue(tariff)).returncode == 0
    recorded = box.vci(
        "service", "record", "--items", "engine_oil", "--note", "oil", "--reset", "--yes",
        *sim.cli_args("doip"),
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    trace = tmp_path / "t.pcap"
    trace.write_bytes(bytes(range(256)) * 400)
    asked = box.vci(
        "helpdesk", "ask", "--question", "Oil light stays on", "--contact", "Jo",
        "--trace", str(trace), *sim.cli_args("doip"),
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    gateway = start_gateway_process(sim.cli_args("doip"), gateway_env(box, broker))
    port = free_port()
    console = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "console", "--listen", f"127.0.0.1:{port}",
         "--broker", f"127.0.0.1:{broker['port']}", "--pki", str(broker["pki"]), "--user", USER,
         "--records", str(tmp_path / "records.sqlite")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = ProcessOutput(console).wait_for("vci-portal console ready", START_TIMEOUT).split()[-1]
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_selector("[data-testid=portal-helpdesk-request]", timeout=30_000)
            page.fill("#booklet-vin", VIN)
            page.click("#booklet-form button")
            page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=portal-booklet-entry]').length === 3",
                timeout=20_000,
            )
            page.click("[data-testid=portal-helpdesk-request] button")
            page.wait_for_selector("[data-testid=portal-helpdesk-attachments] a", timeout=20_000)
            with page.expect_download() as download:
                page.click("[data-testid=portal-helpdesk-attachments] a >> text=t.pcap")
            assert download.value.path().read_bytes() == trace.read_bytes()
            page.fill("#hd-answer", "Reset the oil service; then read the DME's fault memory.")
            page.click("button[data-answer]")
            page.wait_for_selector("[data-testid=portal-helpdesk-answer]", timeout=20_000)
            shot(page, "23-portal-booklet-helpdesk")
            browser.close()

        def answered() -> bool:
            mine = json.loads(box.vci("--json", "helpdesk", "list").stdout)
            return bool(mine) and (mine[0]["answer"] or "").startswith("Reset the oil service")

        wait_until(answered, 20, "the answer on the box")
    finally:
        stop_process(console)
        gateway.stop()
