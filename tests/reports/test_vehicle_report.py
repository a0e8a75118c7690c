"""The vehicle test report end to end: ``vci report`` against ``vci sim`` - every ECU's fault
memory, the battery voltage and the service items as the simulator keeps them; the report kept in
the state directory and in the outbox for the portal; the PDF's text; refused without a ticket."""

from __future__ import annotations

import io
import json
import sqlite3
from typing import Any

import pytest
from pypdf import PdfReader

from tests.conftest import Box, SimHandle, vci


def report(sim: SimHandle, transport: str, *extra: str) -> dict[str, Any]:
    proc = vci("report", "--json", *extra, *sim.cli_args(transport))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("transport", ["doip", "can"])
def test_report_agrees_with_the_simulator(
    sim_process: SimHandle, basic_box: Box, transport: str, tmp_path
) -> None:
    sim_process.set_battery(11.9)
    pdf = tmp_path / "report.pdf"
    result = report(sim_process, transport, "--pdf", str(pdf))
    state = sim_process.state()
    faults = {e["name"]: e for e in result["data"]["faults"]}
    for name, ecu in state["ecus"].items():
        assert [d["id"] for d in faults[name]["dtcs"]] == [d["code"] for d in ecu["dtcs"]], name
        assert [d["status"] for d in faults[name]["dtcs"]] == [d["status"] for d in ecu["dtcs"]]
    boost = faults["DME"]["dtcs"][0]
    assert boost["snapshots"][0]["mileage_km"] == 48011  # the snapshot the ECU keeps
    assert result["data"]["battery_volts"] == pytest.approx(11.9)
    cbs = {c["id"]: c for c in state["ecus"]["KOMBI"]["cbs"]}
    for item in result["data"]["service"]["cbs"]:
        assert item["availability"] == cbs[item["id"]]["availability"]
    reasons = " ".join(result["verdict"]["reasons"])
    assert not result["verdict"]["ok"] and "11.9 V" in reasons and "Engine oil" in reasons
    assert result["vehicle"]["vin"] == state["vin"]

    state_dir = basic_box.root / "state"
    kept = state_dir / "reports" / result["stored_as"]
    assert json.loads(kept.read_text())["data"] == result["data"]
    db = sqlite3.connect(state_dir / "vci.sqlite3")
    bodies = [
        json.loads(b) for (b,) in db.execute("SELECT body FROM outbox WHERE kind='job.result'")
    ]
    sent = [b for b in bodies if b["job"]["kind"] == "vehicle_test_report"]
    assert len(sent) == 1 and sent[0]["job"]["result"]["data"] == result["data"]
    assert sent[0]["vin"] == state["vin"]

    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    for expected in ("Vehicle test report", state["vin"], "Boost pressure too low", "Engine oil"):
        assert expected in text, expected


def test_refused_without_a_ticket(sim_process: SimHandle, box: Box) -> None:
    proc = box.vci("report", *sim_process.cli_args("doip"))
    assert proc.returncode == 2 and "diagnosis" in proc.stderr, proc.stderr


def test_report_in_german_at_print_time(sim_process: SimHandle, basic_box: Box, tmp_path) -> None:
    pdf = tmp_path / "bericht.pdf"
    proc = basic_box.vci(
        "report", "--language", "de", "--pdf", str(pdf), *sim_process.cli_args("doip")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert "Fahrzeugprüfbericht" in text and "Vehicle test report" not in text
