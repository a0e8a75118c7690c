"""The emissions check end to end: ``vci emissions`` against ``vci sim`` over DoIP and CAN, each
field of the report checked against the simulator's state (readiness bits, MIL, DTCs, CALID/CVN,
VIN); the readiness verdict through a clear (OBD mode 04 and UDS 0x14), a drive cycle and a MIL
fault; the PDF's text; refusals without a ticket that includes inspection_data."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from pypdf import PdfReader

from tests.conftest import Box, SimHandle, vci

TRANSPORTS = ("doip", "can")


@pytest.fixture(autouse=True)
def _ticketed(basic_box: Box) -> Box:
    return basic_box


def emissions(sim: SimHandle, transport: str, *extra: str) -> dict[str, Any]:
    proc = vci("emissions", "--json", *extra, *sim.cli_args(transport))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def engine(report: dict[str, Any]) -> dict[str, Any]:
    ecus = report["data"]["ecus"]
    assert [e["name"] for e in ecus] == ["DME"]  # only the engine ECU answers OBD
    return ecus[0]


def assert_matches_simulator(report: dict[str, Any], sim: SimHandle) -> None:
    state = sim.state()
    obd = state["ecus"]["DME"]["obd"]
    dme = engine(report)
    status = dme["monitor_status"]
    assert status["mil"] == obd["mil"]
    assert status["ignition"] == obd["ignition"]
    assert status["dtc_count"] == len(obd["stored"])
    for monitor in status["monitors"]:
        assert monitor["supported"] == (monitor["name"] in obd["supported"]), monitor
        if monitor["supported"]:
            assert monitor["complete"] == (monitor["name"] in obd["complete"]), monitor
    assert {m["name"] for m in status["monitors"] if m["supported"]} == set(obd["supported"])
    assert dme["dtcs"] == {k: obd[k] for k in ("stored", "pending", "permanent")}
    assert dme["cvn"] == obd["cvns"] and dme["calid"] == obd["calids"]
    assert dme["vin"] == state["vin"] == report["vehicle"]["vin"]
    assert dme["pids"]["engine_speed"]["value"] == 780
    assert dme["pids"]["coolant_temperature"]["value"] == 88
    assert dme["pids"]["control_module_voltage"]["value"] == state["battery_voltage"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_report_agrees_with_the_simulator(sim_process: SimHandle, transport: str) -> None:
    report = emissions(sim_process, transport)
    assert_matches_simulator(report, sim_process)
    assert engine(report)["monitor_status"]["ignition"] == "spark"  # the 530i: petrol
    verdict = report["verdict"]
    assert verdict["ok"] and verdict["reasons"] == []
    assert any("P0299" in n for n in verdict["notes"])  # pending: shown, not a reason
    assert report["vehicle"]["type_code"] == "JA71"
    limits = report["data"]["limits"]
    assert limits["source"] == "sample" and limits["engine"]["ignition"] == "spark"


def test_readiness_through_clear_drive_cycle_and_fault(sim_process: SimHandle, tmp_path) -> None:
    sim = sim_process
    sim.obd("clear")  # as mode 04 does
    cleared = emissions(sim, "doip")
    assert_matches_simulator(cleared, sim)
    assert not cleared["verdict"]["ok"]
    assert any(
        "Readiness incomplete" in r and "Catalyst" in r for r in cleared["verdict"]["reasons"]
    )

    sim.obd("drive_cycle")
    driven = emissions(sim, "can")
    assert_matches_simulator(driven, sim)
    assert driven["verdict"]["ok"]

    sim.obd("fault", "P0300")
    pdf = tmp_path / "emissions.pdf"
    faulty = emissions(sim, "doip", "--pdf", str(pdf))
    assert_matches_simulator(faulty, sim)
    reasons = " ".join(faulty["verdict"]["reasons"])
    assert "MIL" in reasons and "P0300 (DME)" in reasons and "Permanent" in reasons
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    for expected in (
        "NOT READY for the emissions check",
        "P0300",
        sim.state()["vin"],
        sim.state()["ecus"]["DME"]["obd"]["cvns"][0],
        sim.state()["ecus"]["DME"]["obd"]["calids"][0],
        "SAMPLE VALUES",
        "CO at raised idle",
    ):
        assert expected in text, expected

    # UDS ClearDiagnosticInformation clears the emissions-related side too
    assert vci("dtc", "clear", "--ecu", "DME", "--yes", *sim.cli_args("doip")).returncode == 0
    after = emissions(sim, "can")
    assert_matches_simulator(after, sim)
    assert engine(after)["dtcs"]["stored"] == [] and engine(after)["dtcs"]["permanent"] == ["P0300"]


def test_text_output_says_plainly_why_not(sim_process: SimHandle) -> None:
    sim_process.obd("clear")
    proc = vci("emissions", *sim_process.cli_args("doip"))
    assert proc.returncode == 0, proc.stderr
    assert "NOT READY for the emissions check" in proc.stdout
    assert "Readiness incomplete" in proc.stdout and "drive cycle" in proc.stdout


def test_refused_without_inspection_data(sim_process: SimHandle, box: Box, monkeypatch) -> None:
    box.root.joinpath("state").mkdir(exist_ok=True)
    other = box.root / "info.toml"
    other.write_text(box.config.read_text().replace("/state", "/state-info"))
    monkeypatch.setenv("VCI_CONFIG", str(other))
    info_box = Box(box.root, other, box.keys_dir, box.device)
    assert info_box.vci("ticket", "add", box.issue("info-1m")).returncode == 0
    before = sim_process.state()["ecus"]["DME"]["requests"]
    for denied in (info_box.vci("emissions", *sim_process.cli_args("doip")),):
        assert denied.returncode == 2
        assert "inspection_data" in denied.stderr, denied.stderr
    # nothing was asked of the engine beyond reading the VIN for the ticket check
    assert sim_process.state()["ecus"]["DME"]["obd"]["complete"]
    assert sim_process.state()["ecus"]["DME"]["requests"] - before <= 1


def test_a_diesel_reads_compression_monitors_and_diesel_limits(start_sim, tmp_path) -> None:
    """A 520d (type code JA31): the same car file with a compression-ignition engine."""
    from importlib import resources

    text = (resources.files("firmware_py.sim") / "vehicles" / "g30.toml").read_text()
    text = text.replace('vin = "WBAJA71090B123456"', 'vin = "WBAJA31090B654321"')
    text = text.replace('ignition = "spark"', 'ignition = "compression"').replace(
        'monitors = ["catalyst", "evaporative_system", "oxygen_sensor", "oxygen_sensor_heater", '
        '"egr_vvt"]',
        'monitors = ["nmhc_catalyst", "nox_scr", "boost_pressure", "exhaust_gas_sensor", '
        '"pm_filter", "egr_vvt"]',
    )
    # the gearbox reports OBD too (as transmission ECUs do): two ECUs answer each request
    text = text.replace(
        '\n[[ecu]]\nname = "DSC"',
        '\n[ecu.obd]\nignition = "compression"\nmonitors = []\n'
        'ecu_name = "TCM-TransmissionCtl"\n\n[[ecu]]\nname = "DSC"',
    )
    diesel = tmp_path / "g30-520d.toml"
    diesel.write_text(text)
    sim = start_sim("--vehicle", str(diesel))
    sim.obd("clear")
    report = emissions(sim, "can")
    ecus = {e["name"]: e for e in report["data"]["ecus"]}
    assert list(ecus) == ["DME", "EGS"]  # by response id: 0x7E8, 0x7E9
    assert (
        ecus["EGS"]["ecu_name"] == "TCM-TransmissionCtl"
        and ecus["EGS"]["vin"] == sim.state()["vin"]
    )
    report["data"]["ecus"] = [ecus["DME"]]
    assert_matches_simulator(report, sim)
    status = engine(report)["monitor_status"]
    assert status["ignition"] == "compression"
    assert not report["verdict"]["ok"]
    assert "Particulate filter (DME)" in report["verdict"]["reasons"][0]
    limits = report["data"]["limits"]["engine"]
    assert limits["ignition"] == "compression"
    assert "opacity" in {lim["name"] for lim in limits["limit"]}
