"""The tablet page in a real browser (headless Chromium from Debian, driven by Playwright) against
``vci gateway`` and ``vci sim``, each in its own process: pairing by the button, fault memory read
and clear, live data, a coding change, a whole programming run to 100 %, and a lost WebSocket.
Screenshots of every page go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import ENET_PROTOCOLS, start_gateway_process, vci

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        "Debian's chromium is not installed (scripts/test installs it)", allow_module_level=True
    )

SHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module", params=ENET_PROTOCOLS)
def stack(request, tmp_path_factory):
    """vci sim + a box (ticket, trusted publisher) + vci gateway, all on loopback; the gateway
    reaches the car over each ENET protocol in turn."""
    from firmware_py.keys import load_private_key
    from firmware_py.uds.flash.package import SequenceParams, build_package
    from portal import keys, tickets
    from tests.conftest import _start, _stop
    from tests.flash.conftest import image

    root = tmp_path_factory.mktemp("browser")
    sim = _start(("--battery", "13.6"))
    keys.generate(root / "portal", "test-portal")
    keys.generate(root / "publisher", "test-publisher")
    for d, k in (
        ("trust-portal", "portal/test-portal.pub"),
        ("trust-publisher", "publisher/test-publisher.pub"),
    ):
        (root / d).mkdir()
        shutil.copy(root / k, root / d)
    env = {
        **os.environ,
        "VCI_STORAGE_STATE_DIR": str(root / "state"),
        "VCI_DEVICE_ID": "box-browser",
        "VCI_SECURITY_PORTAL_KEYS_DIR": str(root / "trust-portal"),
        "VCI_SECURITY_PUBLISHER_KEYS_DIR": str(root / "trust-publisher"),
    }
    kid, key = keys.load_signing_key(root / "portal")
    token = tickets.issue(key, kid, tariff="basic-1d", device="box-browser")
    added = vci("ticket", "add", token, env=env)
    assert added.returncode == 0, added.stderr
    pkid, pkey = load_private_key(root / "publisher" / "test-publisher.key")
    pkg = root / "egs-12.05.00.vcipkg"
    pkg.write_bytes(
        build_package(
            ecu_name="EGS",
            ecu_address=0x18,
            version="12.05.00",
            segments=[(0x80000, image("12.05.00", 512 * 1024))],
            key=pkey,
            kid=pkid,
            sequence=SequenceParams(max_block_length=0x402),
        )
    )
    gateway = start_gateway_process(sim.cli_args(request.param), env)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        page.on("dialog", lambda dialog: dialog.accept())
        yield {
            "page": page,
            "url": gateway.url + "/",
            "sim": sim,
            "env": env,
            "package": pkg,
        }
        browser.close()
    gateway.stop()
    _stop(sim)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def tab(page, view: str) -> None:
    page.click(f"#tabs button[data-view={view}]")


def pair_by_button(page, env: dict[str, str]) -> None:
    """Pair the page at its pairing screen by the box's button (``vci pair --approve``); returns
    once the page shows its tabs."""
    page.fill("#name", "Werkstatt-Tablet")
    # the button approves only a tablet whose long poll the box has: press it once the page sent it
    with page.expect_request(lambda r: r.url.endswith("/collect"), timeout=10_000):
        page.click("#pair")
    page.wait_for_selector("#waiting:not([hidden])")
    approve = vci("pair", "--approve", env=env)
    assert approve.returncode == 0, approve.stderr
    page.wait_for_selector("#tabs", timeout=10_000)


def test_pairing_by_the_button(stack) -> None:
    page = stack["page"]
    page.goto(stack["url"])
    assert page.locator("text=Pair this tablet").is_visible()
    shot(page, "01-pairing")
    pair_by_button(page, stack["env"])
    page.click("text=Identify vehicle")
    page.wait_for_selector("[data-testid=vehicle-vin]", timeout=20_000)
    assert page.inner_text("[data-testid=vehicle-vin]") == "WBAJA71090B123456"
    assert page.inner_text("[data-testid=model]") == "BMW 5 Series Sedan (G30) 530i"
    shot(page, "02-vehicle")
    page.set_viewport_size({"width": 768, "height": 1024})  # the tablet held upright
    shot(page, "02-vehicle-portrait")
    page.set_viewport_size({"width": 1024, "height": 768})


def test_the_header_says_where_the_battery_voltage_comes_from(stack) -> None:
    # this gateway runs without the box's ADC (a PC): the car's reported 13.6 V, said so
    stack["page"].wait_for_function(
        "() => document.querySelector('#battery').textContent === '13.6 V (reported by the car)'",
        timeout=20_000,
    )


def test_fault_memory_read_and_clear(stack) -> None:
    page, sim = stack["page"], stack["sim"]
    tab(page, "faults")
    page.click("text=Read all ECUs")
    page.wait_for_selector("[data-testid=ecu-faults]", timeout=30_000)
    assert page.locator("text=Boost pressure too low").is_visible()
    shot(page, "03-fault-memory")
    page.click("button[data-job=clear_fault_memory]:not([data-ecu])")  # "Clear all", confirmed
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(e["dtcs"] for e in sim.state()["ecus"].values()):
        time.sleep(0.2)
    assert not any(e["dtcs"] for e in sim.state()["ecus"].values())


def test_live_data(stack) -> None:
    page = stack["page"]
    tab(page, "live")
    page.click("button[data-action=live-start]")
    page.wait_for_selector("[data-testid=live-value] svg", timeout=15_000)
    assert page.locator("[data-testid=live-value]").count() == 3
    shot(page, "04-live-data")
    page.click("button[data-action=live-stop]")
    page.wait_for_selector("button[data-action=live-start]:not([disabled])", timeout=10_000)


def test_coding_change(stack) -> None:
    page, sim = stack["page"], stack["sim"]
    before = sim.state()["ecus"]["BDC"]["coding"]
    tab(page, "coding")
    page.wait_for_function("() => S.coding !== null")
    page.click("button[data-action=coding-read]")
    page.wait_for_selector("button[data-action=coding-write]:not([disabled])", timeout=15_000)
    page.select_option("select[data-param=daytime_running_lights]", "off")
    page.click("button[data-action=coding-write]")
    page.wait_for_selector("[data-testid=coding-verified]", timeout=20_000)
    assert sim.state()["ecus"]["BDC"]["coding"] != before
    shot(page, "05-coding")


def test_service_reset_and_battery_registration(stack) -> None:
    page, sim = stack["page"], stack["sim"]
    tab(page, "service")
    page.click("button[data-action=service-read]")
    page.wait_for_selector("[data-testid=cbs-item]", timeout=15_000)
    oil = page.locator("[data-testid=cbs-item]", has_text="Engine oil")
    assert "due" in oil.inner_text()
    oil.locator("button[data-action=service-reset]").click()
    page.wait_for_selector("[data-testid=service-verified]", timeout=20_000)
    assert "Engine oil reset: 100 %" in page.inner_text("[data-testid=service-verified]")
    kept = {c["id"]: c for c in sim.state()["ecus"]["KOMBI"]["cbs"]}
    assert kept[1]["availability"] == 100 and kept[2]["availability"] < 100
    page.fill("#battery-ah", "70")
    page.dispatch_event("#battery-ah", "change")
    page.select_option("#battery-tech", "efb")
    page.click("button[data-action=battery-register]")
    page.wait_for_function(
        "() => (document.querySelector('[data-testid=battery]') || {}).textContent"
        "?.includes('70 Ah EFB')",
        timeout=20_000,
    )
    assert sim.state()["ecus"]["DME"]["battery"]["capacity_ah"] == 70
    shot(page, "06-service")


def test_programming_to_one_hundred_percent(stack) -> None:
    page, sim = stack["page"], stack["sim"]
    tab(page, "programming")
    page.wait_for_function("() => S.packagesLoaded === true")
    page.set_input_files("#pkg-upload", str(stack["package"]))  # uploads on choosing
    page.wait_for_selector("[data-testid=precheck]", timeout=10_000)
    assert page.locator("text=valid").first.is_visible()
    page.click("button[data-action=flash-start]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=progress] > div')].some(d => d.style.width === '100%')",
        timeout=60_000,
    )
    page.wait_for_selector("text=done", timeout=30_000)
    shot(page, "07-programming")
    egs = sim.state()["ecus"]["EGS"]
    assert egs["region"]["valid"] and egs["sw_version"] == "12.05.00"


def test_a_lost_websocket_reconnects_and_shows_the_true_state(stack) -> None:
    page = stack["page"]
    tab(page, "vehicle")
    page.evaluate("() => S.ws.close()")
    page.wait_for_function(
        "() => document.querySelector('#ws').textContent === 'reconnecting'", timeout=5_000
    )
    page.wait_for_function(
        "() => document.querySelector('#ws').textContent === 'live'", timeout=10_000
    )
    assert page.inner_text("#vin") == "WBAJA71090B123456"
    tab(page, "log")
    assert page.locator("[data-testid=log-kind]", has_text="Programming").first.is_visible()
    shot(page, "08-session-log")


def test_a_ticket_added_from_a_file_shows_what_it_allows(stack, tmp_path) -> None:
    from portal import keys, tickets

    page = stack["page"]
    portal_dir = Path(stack["env"]["VCI_SECURITY_PORTAL_KEYS_DIR"]).parent / "portal"
    kid, key = keys.load_signing_key(portal_dir)
    ticket_file = tmp_path / "ticket.txt"
    ticket_file.write_text(tickets.issue(key, kid, tariff="helpdesk", device="box-browser") + "\n")
    tab(page, "tickets")
    page.wait_for_function("() => S.ticketsLoaded === true")
    page.set_input_files("#ticket-file", str(ticket_file))
    page.wait_for_selector("text=Technical Help Desk request", timeout=10_000)
    assert page.locator("text=help_desk").first.is_visible()
    shot(page, "09-tickets")


def test_the_page_in_german(stack) -> None:
    """The DE switch: the tabs, the vehicle page, the header's voltage (13,6 V), the fault texts
    from the data file and the status bits in German; the choice survives a reload; no text of
    the catalogue is left in English on the main views (docs/translating.md)."""
    from firmware_py.i18n import language, messages

    page = stack["page"]
    de = language("de")
    # every English text of the catalogue that reads differently in German
    english = {m for m, t in messages("de").items() if len(m) > 4 and t != m and "{" not in m}
    # a new German tablet (its browser's language) meets the pairing page in German
    fresh = page.context.browser.new_context(
        locale="de-DE", viewport={"width": 1024, "height": 768}
    )
    try:
        newcomer = fresh.new_page()
        newcomer.goto(stack["url"])
        newcomer.wait_for_selector("text=Dieses Tablet mit der Box koppeln", timeout=10_000)
        assert newcomer.inner_text("#pair") == "Koppeln"
        shot(newcomer, "de-01-pairing")
    finally:
        fresh.close()
    try:
        page.click("[data-testid=lang-de]")
        page.wait_for_function("() => document.documentElement.lang === 'de'")
        assert page.inner_text("#tabs button[data-view=faults]") == "Fehlerspeicher"
        page.reload()  # remembered on the tablet
        page.wait_for_function("() => document.documentElement.lang === 'de'")
        page.wait_for_selector("#tabs button[data-view=faults]:text('Fehlerspeicher')")
        tab(page, "vehicle")
        page.click("button[data-job=identify]")
        page.wait_for_selector("text=Motorelektronik", timeout=20_000)  # the catalogue's German
        page.wait_for_function(
            "() => document.querySelector('#battery').textContent === '13,6 V (vom Fahrzeug gemeldet)'",
            timeout=20_000,
        )
        view = page.inner_text("#view")
        assert "Fahrzeug identifizieren" in view and "Basic, 1 Tag" in view, view
        shot(page, "de-02-vehicle")
        stack["sim"].reset()  # the faults an earlier test cleared are back
        tab(page, "faults")
        page.click("button[data-job=read_fault_memory]")
        page.wait_for_selector(
            "text=Ladedruck zu niedrig", timeout=30_000
        )  # the data file's German
        assert "Boost pressure" not in page.inner_text("#view")
        shot(page, "de-03-fault-memory")
        tab(page, "coding")  # one coding step in German: read, then the form in German
        page.wait_for_function("() => S.coding !== null")
        page.click("button[data-action=coding-read]")
        page.wait_for_selector("button[data-action=coding-write]:not([disabled])", timeout=15_000)
        assert de.gettext("Write changes") in page.inner_text("#view")
        # the values read in the data file's German; the job is still given the value's name
        lights = "select[data-param=daytime_running_lights]"
        assert page.locator(f"{lights} option").all_inner_texts() == ["aus", "ein"]
        assert page.eval_on_selector(lights, "s => [...s.options].map(o => o.value)") == [
            "off",
            "on",
        ]
        shot(page, "de-04-coding")
        views = ("vehicle", "faults", "live", "coding", "service", "reports", "programming")
        for name in (*views, "bridge", "helpdesk", "tickets", "log"):
            tab(page, name)
            shown = page.inner_text("#view") + page.inner_text("#tabs") + page.inner_text("header")
            # whole words: an NRC's name (SubFunctionNotSupported) is not the text "Supported"
            left = sorted(
                m
                for m in english
                if re.search(rf"\b{re.escape(m)}\b", shown) and de.gettext(m) not in shown
            )
            assert not left, f"{name}: still English: {left}"
        assert "Fehlerspeicher lesen" in page.inner_text("#view")  # the log's job kinds
        # a step with values as the box publishes it (gateway/jobs.py _step): the page fills the
        # German template, a data file's {en, de} value chosen for the page
        steps = page.evaluate(
            """() => [tr({message: "erase segment {segment}", values: {segment: "2"}}),
                      tr({message: "reset {item}", values: {item: {en: "Engine oil", de: "Motoröl"}}})]"""
        )
        assert steps == ["Segment 2 löschen", "Motoröl zurücksetzen"], steps
        shot(page, "de-05-programming")
    finally:
        page.click("[data-testid=lang-en]")
        page.wait_for_function("() => document.documentElement.lang === 'en'")
