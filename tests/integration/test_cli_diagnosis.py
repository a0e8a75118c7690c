"""Diagnosis end to end: the real ``vci`` CLI against ``vci sim`` in its own process, over
DoIP on loopback TCP/UDP and ISO-TP on the loopback CAN bus."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import TRANSPORTS, SimHandle, vci
from tests.integration.helpers import vci_json

SIM_ECUS = {"ZGW", "DME", "EGS", "DSC", "ACSM", "BDC", "KOMBI", "HU"}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_identify_returns_the_vin_and_every_ecu_with_versions(
    sim_process: SimHandle, transport: str
) -> None:
    result = vci_json(sim_process, transport, "identify")
    state = sim_process.state()
    assert result["vin"] == state["vin"] == "WBAJA71090B123456"
    assert (
        result["model"] == "BMW 5 Series Sedan (G30) 530i"
    )  # from the box's own table, by type code
    present = {e["name"]: e for e in result["ecus"] if e["present"]}
    assert set(present) == SIM_ECUS
    for name, ecu in present.items():
        assert ecu["sw_version"] == state["ecus"][name]["sw_version"]
        assert len(ecu["part_number"]) == 7 and ecu["hw_version"].count(".") == 2
        assert ecu["svk"] and all(
            s["process_class"] in ("HWEL", "BTLD", "SWFL", "CAFD") for s in ecu["svk"]
        )
    absent = {e["name"] for e in result["ecus"] if not e["present"]}
    assert absent == {"FZD", "TCB", "EPS", "SAS"}  # in the catalogue, not in this car


def test_identify_human_output_names_the_vin_and_the_ecus(sim_process: SimHandle) -> None:
    proc = vci("identify", *sim_process.cli_args("doip"))
    assert proc.returncode == 0, proc.stderr
    assert (
        "WBAJA71090B123456" in proc.stdout
        and "41.07.12" in proc.stdout
        and "no answer" in proc.stdout
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fault_memory_read_on_every_ecu_matches_the_vehicle(
    sim_process: SimHandle, transport: str
) -> None:
    result = vci_json(sim_process, transport, "dtc", "read")
    state = sim_process.state()["ecus"]
    read = {e["name"]: e for e in result["ecus"] if e["name"] in SIM_ECUS}
    assert set(read) == SIM_ECUS
    for name, ecu in read.items():
        assert ecu["error"] is None, ecu
        assert [(d["id"], d["status"]) for d in ecu["dtcs"]] == [
            (d["code"], d["status"]) for d in state[name]["dtcs"]
        ]
    dme = {d["id"]: d for d in read["DME"]["dtcs"]}
    assert dme["12A100"]["snapshots"] == [{"record": 1, "mileage_km": 48011, "voltage_v": 13.9}]
    assert dme["12A100"]["extended"] == {"occurrence_counter": 3, "aging_counter": 12}
    assert "confirmed" in dme["12A100"]["status_names"]
    # the ACSM answers "response pending" three times, 0.3 s apart, longer than our probe P2
    assert [d["id"] for d in read["ACSM"]["dtcs"]] == ["930B00"]


def test_fault_texts_follow_the_locale(sim_process: SimHandle) -> None:
    """The CLI stays English by default; with a German locale the data file's fault texts are
    German (where the data file has them)."""
    plain = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    args = ("dtc", "read", "--ecu", "DME", "--brief", *sim_process.cli_args("doip"))
    english = vci(*args, env={**plain, "LANG": "C.UTF-8"})
    german = vci(*args, env={**plain, "LANG": "de_DE.UTF-8"})
    assert english.returncode == german.returncode == 0, (english.stderr, german.stderr)
    assert "Boost pressure too low" in english.stdout and "Ladedruck" not in english.stdout
    assert "Ladedruck zu niedrig" in german.stdout, german.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fault_memory_clear_on_every_ecu(sim_process: SimHandle, transport: str) -> None:
    result = vci_json(sim_process, transport, "dtc", "clear", "--yes")
    cleared = {e["name"] for e in result["ecus"] if e["cleared"]}
    assert cleared == SIM_ECUS
    assert all(not ecu["dtcs"] for ecu in sim_process.state()["ecus"].values())
    again = vci_json(sim_process, transport, "dtc", "read")
    assert all(not e["dtcs"] for e in again["ecus"] if e["name"] in SIM_ECUS)


def test_clear_one_ecu_leaves_the_others(sim_process: SimHandle) -> None:
    vci_json(sim_process, "doip", "dtc", "clear", "--ecu", "ACSM", "--yes")
    state = sim_process.state()["ecus"]
    assert state["ACSM"]["dtcs"] == [] and state["DME"]["dtcs"]


def test_a_state_directory_that_cannot_be_written_does_not_fail_a_done_job(
    sim_process: SimHandle, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault memory is cleared whatever happens to the record for the portal afterwards."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("VCI_SECURITY_TICKETS", "off")  # a workshop box without the portal
    monkeypatch.setenv("VCI_STORAGE_STATE_DIR", str(blocked / "state"))
    proc = vci("dtc", "clear", "--ecu", "DSC", "--yes", *sim_process.cli_args("doip"))
    assert proc.returncode == 0, proc.stderr
    assert "not kept for the portal" in proc.stdout + proc.stderr
    assert sim_process.state()["ecus"]["DSC"]["dtcs"] == []


def test_clear_without_yes_and_without_a_terminal_changes_nothing(sim_process: SimHandle) -> None:
    proc = vci("dtc", "clear", *sim_process.cli_args("doip"))
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert sim_process.state()["ecus"]["DME"]["dtcs"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_ecu_that_does_not_answer_gives_a_clear_error_and_the_others_are_read(
    sim_process: SimHandle, transport: str
) -> None:
    sim_process.inject(ecu="DSC", silent=True)
    started = time.monotonic()
    one = vci_json(sim_process, transport, "dtc", "read", "--ecu", "DSC", expect_rc=1)
    assert one["ecus"][0]["error"]["error"] == "ecu_not_responding"
    assert "DSC" in one["ecus"][0]["error"]["message"] and one["ecus"][0]["error"]["hint"]
    everyone = vci_json(sim_process, transport, "dtc", "read")
    by_name = {e["name"]: e for e in everyone["ecus"]}
    assert by_name["DSC"]["error"]["error"] == "ecu_not_responding"
    assert by_name["DME"]["error"] is None and len(by_name["DME"]["dtcs"]) == 2
    assert time.monotonic() - started < 30  # bounded: P2 timeouts, no hang


def test_no_vehicle_is_a_clear_error(tmp_path) -> None:
    proc = vci("identify", "--doip", "127.0.0.1:9")  # nothing listens on the discard port
    assert proc.returncode == 2
    assert "no DoIP entity answers" in proc.stderr or "no vehicle answered" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_read_did_names_values_and_reports_unknown_dids(sim_process: SimHandle) -> None:
    result = vci_json(sim_process, "can", "read-did", "--ecu", "DME", "vin", "F189", "DAD0", "1234")
    dids = result["dids"]
    assert dids["F190"]["value"] == "WBAJA71090B123456"
    assert dids["F189"]["value"] == "41.07.12"
    assert dids["DAD0"]["value"] == pytest.approx(12.6)
    assert (
        dids["1234"]["error"]["nrc"] == 0x31
        and "RequestOutOfRange" in dids["1234"]["error"]["message"]
    )


def test_scan_finds_the_vehicle_and_its_ecus(sim_process: SimHandle) -> None:
    result = vci_json(sim_process, "doip", "scan")
    doip = [v for v in result["vehicles"] if v["protocol"] == "doip"]
    assert doip[0]["vin"] == "WBAJA71090B123456" and doip[0]["gateway_address"] == 0x10
    assert result["link"] == "doip"
    assert {e["name"] for e in result["ecus"] if e["present"]} == SIM_ECUS


@pytest.mark.parametrize("enet", ["auto", "hsfz"])
def test_scan_asks_both_enet_protocols_and_says_which_each_speaks(
    sim_process: SimHandle, monkeypatch: pytest.MonkeyPatch, enet: str
) -> None:
    monkeypatch.setenv("VCI_TRANSPORT_DOIP_PORT", str(sim_process.doip_port))
    monkeypatch.setenv("VCI_TRANSPORT_HSFZ_PORT", str(sim_process.hsfz_port))
    monkeypatch.setenv("VCI_TRANSPORT_HSFZ_CONTROL_PORT", str(sim_process.hsfz_control_port))
    proc = vci("--json", "scan", "--enet", enet, "--enet-host", sim_process.doip_host)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert sorted((v["protocol"], v["vin"]) for v in result["vehicles"]) == [
        ("doip", "WBAJA71090B123456"),
        ("hsfz", "WBAJA71090B123456"),
    ]
    # both answer: auto takes DoIP, unless HSFZ is asked for
    assert result["link"] == ("doip" if enet == "auto" else "hsfz")
    assert {e["name"] for e in result["ecus"] if e["present"]} == SIM_ECUS


# -- ECUs that differ from the others (the simulated HU and BDC, docs/simulator.md) -------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_multi_did_read_answered_in_part_keeps_the_other_values(
    sim_process: SimHandle, transport: str
) -> None:
    """The HU has no serial number DID and leaves it out (ISO 14229-1 allows it)."""
    result = vci_json(sim_process, transport, "read-did", "--ecu", "HU", "F187", "F18C", "F189")
    dids = result["dids"]
    assert dids["F187"]["value"] == "6829123" and dids["F189"]["value"] == "21.07.50"
    assert dids["F18C"]["value"] is None and dids["F18C"]["error"]["error"] == "did_not_answered"
    ident = vci_json(sim_process, transport, "identify", "--ecu", "HU")
    hu = ident["ecus"][0]
    assert hu["present"] and hu["error"] is None and hu["svk"] and hu["serial"] is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_ecu_without_snapshots_or_extended_data_still_lists_its_dtcs(
    sim_process: SimHandle, transport: str
) -> None:
    """The HU answers 0x19 04 with NRC 0x12 and 0x19 06 with NRC 0x31."""
    result = vci_json(sim_process, transport, "dtc", "read", "--ecu", "HU")
    hu = result["ecus"][0]
    assert hu["error"] is None and [d["id"] for d in hu["dtcs"]] == ["B7F320"]
    dtc = hu["dtcs"][0]
    assert dtc["snapshots"] == [] and "not supported" in dtc["snapshots_note"]
    assert dtc["extended"] == {} and "RequestOutOfRange" in dtc["extended_note"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_records_the_box_cannot_decode_are_shown_raw(
    sim_process: SimHandle, transport: str
) -> None:
    """The BDC's snapshots carry a manufacturer DID (0x2F0C) and its extended data has records
    (0x30, 0x31) of sizes the box does not know: what is known is decoded, the rest is raw hex."""
    result = vci_json(sim_process, transport, "dtc", "read", "--ecu", "BDC")
    (dtc,) = result["ecus"][0]["dtcs"]
    assert dtc["snapshots"] == [
        {"record": 1, "mileage_km": 47999, "voltage_v": 11.6, "raw": "2f 0c 1e 05 00 0a"}
    ]
    assert dtc["extended"] == {
        "occurrence_counter": 4,
        "aging_counter": 5,
        "raw": "30 00 12 a4 07 31 02",
    }
    assert dtc["snapshots_note"] is None and dtc["extended_note"] is None


def test_an_f_series_car_answers_hsfz_only_and_auto_finds_it(
    start_sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = start_sim("--vehicle", "f30")
    assert sim.doip_port == 0 and sim.hsfz_port  # no DoIP entity at all
    monkeypatch.setenv("VCI_TRANSPORT_HSFZ_PORT", str(sim.hsfz_port))
    monkeypatch.setenv("VCI_TRANSPORT_HSFZ_CONTROL_PORT", str(sim.hsfz_control_port))
    monkeypatch.setenv("VCI_TRANSPORT_DOIP_PORT", str(sim.hsfz_control_port + 1))
    proc = vci("--json", "scan", "--enet-host", sim.hsfz_host)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert [(v["protocol"], v["vin"]) for v in result["vehicles"]] == [
        ("hsfz", "WBA8E9C50GK123456")
    ]
    assert result["link"] == "hsfz"
    faults = vci("--json", "dtc", "read", "--ecu", "DME", "--enet-host", sim.hsfz_host)
    assert faults.returncode == 0, faults.stderr
    assert json.loads(faults.stdout)["ecus"][0]["dtcs"]
    refused = vci("--json", "identify", "--enet", "doip", "--enet-host", sim.hsfz_host)
    assert refused.returncode == 2 and "DoIP" in refused.stdout
