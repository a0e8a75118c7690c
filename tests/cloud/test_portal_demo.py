"""``scripts/portal-demo`` as a workshop runs it: it starts the broker, the simulated car, a box
that enrols by itself, the portal with its enrolment endpoint and the demo data, and prints where
to log in; the printed login works over HTTP and /boxes shows the demo box online; Ctrl-C
(SIGINT) stops it and every process it started. A second start finds its state again (the same
login, one box, no second top-up)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cloud.conftest import HAVE_MOSQUITTO, REPO
from tests.conftest import ProcessOutput, free_port
from tests.portal.web_client import Browser

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto not installed")


def _group(pgid: int) -> list[int]:
    """The processes still in process group ``pgid`` (the demo script's and its children's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _run_demo(env: dict[str, str]) -> tuple[str, str, str, ProcessOutput, subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "portal-demo")], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    output = ProcessOutput(proc)
    line = output.wait_for("Log in at", 120)
    url = line.split()[-1]
    owner = re.search(r"workshop owner: (\S+)\s+password: (\S+)", output.text)
    assert owner, output.text
    return url, owner[1], owner[2], output, proc


def _boxes_page(url: str, login: str, password: str, timeout: float) -> str:
    """/boxes as the owner sees it, once it shows the demo box online (at most ``timeout`` s)."""

    async def look() -> str:
        browser = Browser(url)
        try:
            assert (await browser.log_in(login, password)).status == 303
            deadline = time.monotonic() + timeout
            while True:
                page = (await browser.get("/boxes")).text
                if "online" in page or time.monotonic() > deadline:
                    return page
                await asyncio.sleep(0.3)
        finally:
            await browser.close()

    return asyncio.run(look())


def _interrupt(proc: subprocess.Popen[str], output: ProcessOutput) -> None:
    """Ctrl-C: SIGINT to the script; it and all its processes end within 30 s."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group(proc.pid) == [], output.text


def test_portal_demo_starts_shows_its_box_online_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "VCI_PORTAL_DEMO_DIR": str(tmp_path / "demo"),
        "HOME": str(tmp_path / "home"),
        **{name: str(free_port()) for name in (
            "VCI_DEMO_PORTAL_PORT", "VCI_DEMO_MQTT_PORT", "VCI_DEMO_ENROL_PORT", "VCI_DEMO_PORT",
            "VCI_DEMO_DOIP_PORT", "VCI_DEMO_HSFZ_PORT", "VCI_DEMO_HSFZ_CONTROL_PORT",
        )},
    }  # fmt: skip
    procs: list[subprocess.Popen[str]] = []
    try:
        url, login, password, output, proc = _run_demo(env)
        procs.append(proc)
        assert login == "owner@demo.example" and len(password) >= 12
        page = _boxes_page(url, login, password, 30)
        assert "demo-box" in page and "online" in page, page
        assert "bought a basic-1d ticket" in output.text
        _interrupt(proc, output)

        # a second start: the same workshop, box and ticket; nothing booked or bought again
        url, login, again, output, proc = _run_demo(env)
        procs.append(proc)
        assert again == password
        for first_time_only in ("booked 200 EUR", "claimed the box", "bought a basic-1d"):
            assert first_time_only not in output.text, output.text
        page = _boxes_page(url, login, password, 30)
        assert page.count('href="/boxes/demo-box"') == 1 and "online" in page, page
        _interrupt(proc, output)
    finally:
        for started in procs:  # a failed test leaves nothing running either
            if _group(started.pid):
                os.killpg(started.pid, signal.SIGKILL)
