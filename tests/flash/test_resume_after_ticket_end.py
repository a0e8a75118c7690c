"""A flash interrupted under a valid ticket is finished after the ticket ended: the journaled
resume is not checked again (it flashes only what the journal holds), and ``vci gateway
--resume-flash`` never exits on a refused or failed resume (under systemd: a crash loop)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from firmware_py.gateway.store import Store
from firmware_py.gateway.trusted_time import TrustedClock
from tests.conftest import start_gateway_process
from tests.flash.conftest import image, sha

REGION = 1024 * 1024
TWO_DAYS = 2 * 86400


def interrupted_flash(flash_box, publisher, sim) -> tuple[Path, bytes]:
    """A flash the ECU breaks off (it resets itself after 5 blocks): the ECU is left erased."""
    data = image("12.05.00", 64 * 1024)
    pkg = publisher.package("egs.vcipkg", "EGS", 0x18, "12.05.00", data, max_block=0x402)
    sim.inject(ecu="EGS", reset_after_blocks=5)
    broken = flash_box.vci("--json", "flash", str(pkg), *sim.cli_args("doip"), timeout=120)
    assert broken.returncode == 2, broken.stdout[-2000:]
    [record] = json.loads(flash_box.vci("--json", "flash", "--status").stdout)
    assert record["state"] == "stopped", record
    assert not sim.state()["ecus"]["EGS"]["region"]["valid"]
    return pkg, data


def end_the_ticket(flash_box) -> None:
    """Trusted time two days on: the box's Basic 1-day ticket (activated by the flash) ended."""
    store = Store(flash_box.root / "state")
    clock = TrustedClock(store, system=lambda: time.time() + TWO_DAYS)
    clock.persist()
    listed = json.loads(flash_box.vci("--json", "ticket", "list").stdout)
    assert [t["state"] for t in listed] == ["expired"]


def test_vci_flash_resume_finishes_after_the_ticket_ended(flash_box, publisher, start_sim) -> None:
    sim = start_sim("--battery", "13.6")
    pkg, data = interrupted_flash(flash_box, publisher, sim)
    end_the_ticket(flash_box)
    new = flash_box.vci("--json", "flash", str(pkg), *sim.cli_args("doip"))
    assert new.returncode == 2 and "expired" in new.stdout  # a new flash needs a valid ticket
    done = flash_box.vci("--json", "flash", "--resume", *sim.cli_args("doip"), timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    egs = sim.state()["ecus"]["EGS"]
    assert egs["region"]["valid"] and egs["sw_version"] == "12.05.00"
    assert egs["region"]["sha256"] == sha(data + b"\xff" * (REGION - len(data)))


def test_gateway_resumes_after_the_ticket_ended_and_keeps_serving(
    flash_box, publisher, start_sim
) -> None:
    sim = start_sim("--battery", "13.6")
    _, data = interrupted_flash(flash_box, publisher, sim)
    end_the_ticket(flash_box)
    gateway = start_gateway_process(["--resume-flash", *sim.cli_args("doip")])
    try:
        gateway.output.wait_for("resumed and verified", 120)
        egs = sim.state()["ecus"]["EGS"]
        assert egs["region"]["valid"] and egs["sw_version"] == "12.05.00"
        with urllib.request.urlopen(gateway.url + "/", timeout=5) as page:
            assert page.status == 200  # still serving
    finally:
        output = gateway.stop()
    assert "Traceback" not in output


def test_gateway_keeps_serving_when_the_resume_fails(flash_box, publisher, start_sim) -> None:
    sim = start_sim("--battery", "13.6")
    pkg, _ = interrupted_flash(flash_box, publisher, sim)
    pkg.write_bytes(pkg.read_bytes()[:-10])  # the package the journal names is damaged
    gateway = start_gateway_process(["--resume-flash", *sim.cli_args("doip")])
    try:
        gateway.output.wait_for("resuming programming job", 60)
        assert gateway.process.poll() is None
        with urllib.request.urlopen(gateway.url + "/", timeout=5) as page:
            assert page.status == 200
    finally:
        output = gateway.stop()
    assert "Traceback" not in output  # refused, logged, and serving on
