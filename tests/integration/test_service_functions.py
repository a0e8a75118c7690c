"""Service functions end to end: ``vci service`` against ``vci sim`` over DoIP and CAN - the
status the cluster keeps, a reset read back from the ECU, battery registration, and refusals that
change nothing."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import TRANSPORTS, SimHandle, vci
from tests.integration.helpers import vci_json


def _cluster(sim: SimHandle) -> dict[int, dict[str, Any]]:
    return {c["id"]: c for c in sim.state()["ecus"]["KOMBI"]["cbs"]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_status_shows_what_the_cluster_keeps(sim_process: SimHandle, transport: str) -> None:
    result = vci_json(sim_process, transport, "service", "status")
    cluster = _cluster(sim_process)
    items = {i["name"]: i for i in result["cbs"]}
    assert list(items) == [
        "engine_oil",
        "brakes_front",
        "brakes_rear",
        "brake_fluid",
        "vehicle_check",
    ]
    for item in result["cbs"]:
        sim = cluster[item["id"]]
        assert item["availability"] == sim["availability"]
        assert item["remaining_months"] == sim["remaining_months"]
    assert items["engine_oil"]["due"] and items["engine_oil"]["remaining_km"] == -350
    assert items["brake_fluid"]["remaining_km"] is None  # a time-only item
    assert not items["brakes_rear"]["due"]
    assert result["battery"] == {"capacity_ah": 90, "technology": "agm", "registered_km": 12040}


def test_reset_is_read_back_from_the_cluster(sim_process: SimHandle) -> None:
    result = vci_json(sim_process, "doip", "service", "reset", "engine_oil", "--yes")
    assert result["before"]["due"] and result["verified"]
    assert result["after"] == {
        "id": 1,
        "name": "engine_oil",
        "text": "Engine oil",
        "texts": {
            "en": "Engine oil",
            "de": "Motoröl",
        },  # the data file's, for the reader's language
        "availability": 100,
        "remaining_km": 15000,
        "remaining_months": 12,
        "due": False,
    }
    cluster = _cluster(sim_process)
    assert cluster[1]["availability"] == 100 and cluster[1]["remaining_km"] == 15000
    assert cluster[2]["remaining_km"] == 9400  # the other items are untouched
    human = vci("service", "status", *sim_process.cli_args("doip"))
    assert human.returncode == 0 and "Engine oil" in human.stdout and "DUE" not in human.stdout
    plain = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    german = vci("service", "status", *sim_process.cli_args("doip"),
                 env={**plain, "LANG": "de_DE.UTF-8"})  # fmt: skip
    assert german.returncode == 0 and "Motoröl" in german.stdout, german.stdout


def test_refusals_name_the_problem_and_change_nothing(sim_process: SimHandle) -> None:
    before = sim_process.state()["ecus"]
    unknown = vci("service", "reset", "wiper_blades", "--yes", *sim_process.cli_args("doip"))
    assert unknown.returncode == 2 and "no service item 'wiper_blades'" in unknown.stderr
    assert "engine_oil" in unknown.stderr  # the hint lists the known items
    unasked = vci("service", "reset", "engine_oil", *sim_process.cli_args("doip"))
    assert unasked.returncode == 2 and "without --yes" in unasked.stderr
    big = vci(
        "service", "battery", "--capacity", "200", "--technology", "agm", "--yes",
        *sim_process.cli_args("doip"),
    )  # fmt: skip
    assert big.returncode == 2 and "200 Ah cannot be registered" in big.stderr
    sim_process.inject(ecu="KOMBI", nrc={"0x31": 0x22})  # conditions not correct
    refused = vci("service", "reset", "engine_oil", "--yes", *sim_process.cli_args("doip"))
    assert refused.returncode == 2 and "0x22" in refused.stderr + refused.stdout
    after = sim_process.state()["ecus"]
    assert after["KOMBI"]["cbs"] == before["KOMBI"]["cbs"]
    assert after["DME"]["battery"] == before["DME"]["battery"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_new_battery_is_registered(sim_process: SimHandle, transport: str) -> None:
    result = vci_json(
        sim_process,
        transport,
        "service",
        "battery",
        "--capacity",
        "80",
        "--technology",
        "efb",
        "--yes",
    )
    assert result["before"]["capacity_ah"] == 90 and result["verified"]
    mileage = 48211  # the odometer of the simulated car: the registration records it
    assert result["battery"] == {"capacity_ah": 80, "technology": "efb", "registered_km": mileage}
    assert sim_process.state()["ecus"]["DME"]["battery"] == {
        "capacity_ah": 80,
        "technology": 1,
        "registered_km": mileage,
    }
