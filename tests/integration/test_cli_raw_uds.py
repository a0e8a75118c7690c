"""``vci uds`` end to end (the real CLI against ``vci sim``): a raw request needs the entitlement
of what it does. With a Basic ticket (tests/integration/conftest.py) reads go through, erase and
download are refused before anything reaches the ECU; with an Engineering ticket they need the
battery floor of programming, and what was sent is kept for the portal with its class."""

from __future__ import annotations

from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.store import Store
from tests.conftest import vci


def test_raw_erase_and_download_need_engineering_and_the_battery_floor(
    basic_box, start_sim
) -> None:
    sim = start_sim("--battery", "13.6")
    link = sim.cli_args("doip")

    def egs_requests() -> int:
        return int(sim.state()["ecus"]["EGS"]["requests"])

    read = vci("uds", "--ecu", "EGS", "22F190", *link)
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "62 f1 90 " + b"WBAJA71090B123456".hex(" ")
    before = egs_requests()
    for request, what in (
        ("3101FF00", "RoutineControl EraseMemory (0xFF00)"),
        ("3400441234000004", "RequestDownload"),
        ("1082", "programmingSession"),
    ):
        denied = vci("uds", "--ecu", "EGS", request, *link)
        assert denied.returncode != 0
        assert what in denied.stderr and "does not include raw_programming" in denied.stderr
        assert "Engineering, 1 day" in denied.stderr  # the tariff that would allow it
    assert egs_requests() == before  # nothing reached the ECU

    added = basic_box.vci("ticket", "add", basic_box.issue("engineering-1d"))
    assert added.returncode == 0, added.stderr
    sim.set_battery(11.8)
    low = vci("uds", "--ecu", "EGS", "3101FF00", *link)
    assert low.returncode != 0
    assert (
        "battery voltage 11.8 V is below 13.0 V" in low.stderr and "Nothing was sent" in low.stderr
    )
    assert egs_requests() == before

    sim.set_battery(13.6)
    sent = vci("uds", "--ecu", "EGS", "3101FF00", *link)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("7f 31")  # the ECU's own answer: not in the programming session
    assert egs_requests() == before + 1

    pending = Outbox(Store(basic_box.root / "state")).pending()
    records = [r.body["job"] for r in pending if isinstance(r.body.get("job"), dict)]
    erase = [j for j in records if j["kind"] == "raw_uds" and j["params"]["request"] == "3101FF00"]
    refused, done = erase  # the refusal below the floor, then the request sent
    assert refused["state"] == "failed" and "battery" in refused["error"]["message"]
    assert done["state"] == "done"
    assert done["result"]["class"] == "programming"
    assert done["result"]["request"] == "31 01 ff 00"
