"""OBD-II decoding by the data table (byte vectors laid out as SAE J1979 draws them), the
functional collection's bookkeeping with a fake clock, the readiness verdict, and the PDF's
standard fonts printing German text."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from firmware_py.errors import FrameError
from firmware_py.reports.emissions import judge, load_limits
from firmware_py.reports.pdf import render_pdf
from firmware_py.transport.functional import Collector
from firmware_py.uds.obd import (
    decode_pid,
    dtc_bytes,
    dtc_code,
    monitor_status,
    parse_dtcs,
    parse_info,
    split_mode01,
    supported_pids,
    tables,
)


def test_pid01_compression_ignition() -> None:
    # A: MIL on, 3 DTCs. B: compression (bit 3), misfire/fuel/components supported, misfire
    # incomplete. C: NMHC, NOx/SCR, boost, exhaust gas sensor, PM filter, EGR. D: PM filter
    # incomplete.
    status = monitor_status(bytes.fromhex("83 1F EB 40"))
    assert status["mil"] and status["dtc_count"] == 3 and status["ignition"] == "compression"
    monitors = {m["name"]: (m["supported"], m["complete"]) for m in status["monitors"]}
    assert monitors == {
        "misfire": (True, False),
        "fuel_system": (True, True),
        "components": (True, True),
        "nmhc_catalyst": (True, True),
        "nox_scr": (True, True),
        "boost_pressure": (True, True),
        "exhaust_gas_sensor": (True, True),
        "pm_filter": (True, False),
        "egr_vvt": (True, True),
    }


def test_pid01_spark_ignition() -> None:
    status = monitor_status(bytes.fromhex("00 07 65 01"))
    assert not status["mil"] and status["ignition"] == "spark"
    supported = [m["name"] for m in status["monitors"] if m["supported"] and not m["continuous"]]
    assert supported == ["catalyst", "evaporative_system", "oxygen_sensor", "oxygen_sensor_heater"]
    incomplete = [m["name"] for m in status["monitors"] if not m["complete"]]
    assert incomplete == ["catalyst"]
    with pytest.raises(FrameError):
        monitor_status(b"\x00\x07")


def test_values_by_table() -> None:
    parts = split_mode01(bytes.fromhex("41 0C 1A F8 05 7B 1C 06 42 31 9C"))
    pids = tables().pids
    assert decode_pid(pids[0x0C], parts[0x0C]) == 1726  # (256 * 0x1A + 0xF8) / 4
    assert decode_pid(pids[0x05], parts[0x05]) == 83  # 0x7B - 40
    assert decode_pid(pids[0x1C], parts[0x1C]) == "EOBD (Europe)"
    assert decode_pid(pids[0x42], parts[0x42]) == 12.7
    assert supported_pids(0x00, bytes.fromhex("BE 1F A8 13"))[:6] == [1, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("01 33", "P0133"),
        ("C1 58", "U0158"),
        ("43 00", "C0300"),
        ("81 23", "B0123"),
        ("1A 2F", "P1A2F"),
    ],
)
def test_dtc_codes(raw: str, code: str) -> None:
    assert dtc_code(bytes.fromhex(raw)) == code and dtc_bytes(code) == bytes.fromhex(raw)


def test_dtc_lists_and_vehicle_information() -> None:
    assert parse_dtcs(0x03, bytes.fromhex("43 02 03 00 01 33")) == ["P0300", "P0133"]
    assert parse_dtcs(0x0A, bytes.fromhex("4A 00")) == []
    with pytest.raises(FrameError):
        parse_dtcs(0x03, bytes.fromhex("43 02 03 00"))  # says two, carries one
    assert parse_info(bytes.fromhex("49 06 02 12 34 56 78 9A BC DE F0")) == (
        0x06,
        ["12345678", "9ABCDEF0"],
    )
    assert parse_info(b"\x49\x04\x01" + b"CAL-1".ljust(16, b"\0")) == (0x04, ["CAL-1"])


def test_collector_waits_for_pending_and_stops_when_all_answered() -> None:
    c = Collector(0x01, now=100.0, window=0.5, expect={0x7E8, 0x7E9}, p2_star=5.0)
    assert c.deadline() == 100.5
    c.add(0x7E8, b"\x41\x00\xbe\x1f\xa8\x13", 100.01)
    c.add(0x7E9, b"\x7f\x01\x78", 100.02)  # response pending: up to P2* more
    assert c.deadline() == pytest.approx(105.02)
    c.add(0x7E9, b"\x41\x00\x80\x00\x00\x00", 101.0)
    assert c.deadline() == 0.0 and set(c.answers) == {0x7E8, 0x7E9}


def _ecu(**status: object) -> dict[str, object]:
    monitors = [
        {"name": "catalyst", "text": "Catalyst", "supported": True, "complete": True},
        {"name": "evaporative_system", "text": "Evaporative system", "supported": True,
         "complete": status.pop("evap_complete", True)},
    ]  # fmt: skip
    return {
        "name": "DME",
        "monitor_status": {"mil": status.pop("mil", False), "monitors": monitors},
        "dtcs": {"stored": [], "pending": [], "permanent": [], **status},
    }


def test_verdict_reasons() -> None:
    assert judge([_ecu()])["ok"]
    assert not judge([])["ok"] and "ignition" in judge([])["reasons"][0]
    incomplete = judge([_ecu(evap_complete=False)])
    assert not incomplete["ok"] and "Evaporative system (DME)" in incomplete["reasons"][0]
    assert judge([_ecu(evap_complete=False)], allowed_incomplete=1)["ok"]
    assert "MIL" in judge([_ecu(mil=True)])["reasons"][0]
    assert "P0420" in judge([_ecu(stored=["P0420"])])["reasons"][0]
    pending = judge([_ecu(pending=["P0171"])])
    assert pending["ok"] and "P0171" in pending["notes"][0]


def test_local_limits_replace_the_sample(tmp_path) -> None:
    assert load_limits(tmp_path).source == "sample"
    (tmp_path / "emission_limits.toml").write_text(
        'source = "portal"\nversion = "2026-11"\n'
        '[[engine]]\ntype_codes = ["JA71"]\nlimit = [{ name = "co", text = "CO", max = 0.3 }]\n'
    )
    limits = load_limits(tmp_path)
    assert limits.source == "portal" and limits.for_type("ja71")["limit"][0]["max"] == 0.3


def test_pdf_prints_german_text() -> None:
    words = "Prüfbericht: Ölstand, Bremsflüssigkeit, Größe, 25 € (ÄÖÜ äöü ß)"
    pdf = render_pdf(
        {"title": words, "vehicle": {"vin": "WBAJA71090B123456"},
         "sections": [{"title": "Wartung", "rows": [["Ölwechsel", "fällig"]]}]}
    )  # fmt: skip
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert words in text and "Ölwechsel" in text and "fällig" in text


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([0x03, 0x07, 0x0A]))
def test_any_answer_decodes_or_is_a_frame_error(data: bytes, mode: int) -> None:
    """What an ECU (or something pretending to be one) sends never crashes the decoder: it is
    decoded or refused as a malformed frame."""
    for decode in (
        split_mode01,
        lambda d: parse_dtcs(mode, d),
        parse_info,
        monitor_status,
        lambda d: [decode_pid(spec, d[: spec.size]) for spec in tables().pids.values()],
    ):
        try:
            decode(data)
        except FrameError:
            pass
    for prefix in (b"\x41", bytes([mode + 0x40]), b"\x49"):
        try:
            split_mode01(prefix + data) if prefix == b"\x41" else None
            parse_dtcs(mode, prefix + data) if prefix[0] == mode + 0x40 else parse_info(
                prefix + data
            )
        except FrameError:
            pass
