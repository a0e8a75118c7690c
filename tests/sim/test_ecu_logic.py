"""The simulated ECU's UDS server as pure logic: byte vectors in the shape of ISO 14229-1,
time passed explicitly (no sleeping)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.sim.ecu import Battery, EcuModel, sim_key
from firmware_py.sim.programming import HEADER_MAGIC
from firmware_py.sim.vehicle import load_vehicle

VEHICLE = load_vehicle("g30")


def ecu(name: str = "DME") -> EcuModel:
    spec = next(e for e in VEHICLE.ecus if e.name == name)
    return EcuModel(spec, VEHICLE, Battery(12.6), security_delay=10.0)


def ask(model: EcuModel, hex_request: str, now: float = 0.0) -> str:
    reply = model.handle(bytes.fromhex(hex_request), now)
    return reply.response.hex().upper() if reply.response is not None else ""


def unlock(model: EcuModel, level: int, now: float = 0.0) -> None:
    seed = int(ask(model, f"27{level:02X}", now)[4:], 16)
    key = sim_key(seed, model.spec.address, level)
    assert ask(model, f"27{level + 1:02X}{key:08X}", now) == f"67{level + 1:02X}"


def test_session_control_reports_p2_and_p2_star() -> None:
    assert ask(ecu(), "1003") == "5003003201F4"  # P2 50 ms, P2* 500 x 10 ms


def test_programming_session_only_from_extended() -> None:
    m = ecu()
    assert ask(m, "1002") == "7F1022"
    assert ask(m, "1003").startswith("5003")
    assert ask(m, "1002").startswith("5002")


def test_s3_timeout_returns_to_the_default_session() -> None:
    m = ecu("BDC")
    ask(m, "1003", now=100.0)
    ask(m, "3E80", now=104.0)  # tester present within S3 (5 s) keeps it
    assert m.session == 0x03
    assert ask(m, "2E3000" + "00" * 16, now=109.5) == "7F2E7F"  # > 5 s of silence: default again
    assert m.session == 0x01


def test_tester_present_with_and_without_suppress_bit() -> None:
    m = ecu()
    assert ask(m, "3E00") == "7E00"
    assert ask(m, "3E80") == ""
    assert ask(m, "3E01") == "7F3E12"
    assert ask(m, "3E") == "7F3E13"


def test_read_several_dids_in_one_request() -> None:
    out = bytes.fromhex(ask(ecu(), "22F190F189"))
    assert out[:3] == b"\x62\xf1\x90" and out[3:20] == b"WBAJA71090B123456"
    assert out[20:22] == b"\xf1\x89" and out[22:].decode().strip() == "41.07.12"


@pytest.mark.parametrize(
    ("request_hex", "nrc"),
    [
        ("22F1", "13"),
        ("22", "13"),
        ("221234", "31"),
        ("99", "11"),
        ("1904", "13"),
        ("1907FF", "12"),
    ],
)
def test_nrc_vectors(request_hex: str, nrc: str) -> None:
    assert ask(ecu(), request_hex) == f"7F{request_hex[:2]}{nrc}"


def test_fault_memory_sub_functions() -> None:
    m = ecu("DME")
    assert ask(m, "19010C") == "5901FF010002"
    assert ask(m, "19020C") == "5902FF12A1002F0A8E0024"
    assert ask(m, "190A") == "590AFF12A1002F0A8E0024"
    snapshot = bytes.fromhex(ask(m, "190412A100FF"))
    assert snapshot[:6] == bytes.fromhex("590412A1002F")
    assert snapshot[6:] == bytes.fromhex("0102") + struct.pack(
        ">HIHH", 0x1700, 48011, 0x1701, 13900
    )
    assert ask(m, "190612A100FF") == "590612A1002F0103020C"
    assert ask(m, "1904123456FF") == "7F1931"


def test_clear_one_dtc_then_all() -> None:
    m = ecu("DME")
    assert ask(m, "140A8E00") == "54"
    assert ask(m, "19020C") == "5902FF12A1002F"
    assert ask(m, "14FFFFFF") == "54"
    assert ask(m, "19020C") == "5902FF"
    assert ask(m, "14123456") == "7F1431"


def test_slow_ecu_announces_response_pending() -> None:
    reply = ecu("ACSM").handle(bytes.fromhex("19020C"), 0.0)
    assert reply.pending == 3 and reply.response is not None and reply.response[:2] == b"\x59\x02"


def test_security_access_counter_and_delay() -> None:
    m = ecu("BDC")
    ask(m, "1003", now=0)
    for _attempt in range(2):
        ask(m, "2701", now=1)
        assert ask(m, "270200000000", now=1) == "7F2735"
    ask(m, "2701", now=1)
    assert ask(m, "270200000000", now=1) == "7F2736"
    assert ask(m, "2701", now=5) == "7F2737"  # delay of 10 s not over
    ask(m, "3E80", now=9)  # keep the session (S3)
    unlock(m, 0x01, now=11.5)
    assert ask(m, "2701", now=12) == "670100000000"  # already unlocked: zero seed


def test_key_without_seed_is_a_sequence_error() -> None:
    m = ecu("BDC")
    ask(m, "1003")
    assert ask(m, "270211223344") == "7F2724"


def test_coding_write_needs_extended_session_and_security() -> None:
    m = ecu("BDC")
    coding = "00112233445566778899AABBCCDDEEFF"
    assert ask(m, "2E3000" + coding) == "7F2E7F"
    ask(m, "1003")
    assert ask(m, "2E3000" + coding) == "7F2E33"
    unlock(m, 0x01)
    assert ask(m, "2E3000" + coding[:-2]) == "7F2E13"
    assert ask(m, "2E3000" + coding) == "6E3000"
    assert ask(m, "223000") == "623000" + coding


def program(m: EcuModel, image: bytes, now: float = 0.0, block: int | None = None) -> list[str]:
    """A whole programming sequence; returns every response."""
    region = m.region
    assert region is not None
    out = [ask(m, "1003", now), ask(m, "1002", now)]
    unlock(m, 0x11, now)
    out.append(ask(m, "3101FF00" + f"{region.address:08X}{len(image):08X}", now))
    out.append(ask(m, "340044" + f"{region.address:08X}{len(image):08X}", now))
    max_len = int(out[-1][4:], 16)
    size = (block or max_len) - 2
    counter = 1
    for offset in range(0, len(image), size):
        out.append(ask(m, f"36{counter:02X}" + image[offset : offset + size].hex(), now))
        counter = (counter + 1) & 0xFF
    out.append(ask(m, "37", now))
    digest = hashlib.sha256(image).hexdigest()
    out.append(ask(m, "31010202" + f"{region.address:08X}{len(image):08X}" + digest, now))
    out.append(ask(m, "3101FF01", now))
    return out


def image(version: str, size: int) -> bytes:
    header = HEADER_MAGIC + version.encode().ljust(16, b" ")
    body = bytes((i * 7) & 0xFF for i in range(size - len(header)))
    return header + body


def test_programming_sequence_with_counter_wrap_sets_the_new_version() -> None:
    m = ecu("EGS")
    img = image("12.05.01", 300 * 100)
    responses = program(m, img, block=102)  # 300 blocks of 100 bytes: the counter wraps
    assert responses[-2] == "71010202" + "00" and responses[-1] == "7101FF0100"
    assert m.region is not None and m.region.valid
    assert m.region.memory[: len(img)] == img
    assert ask(m, "22F189") == "62F189" + b"12.05.01        ".hex().upper()
    svk = bytes.fromhex(ask(m, "22F101"))
    assert bytes([0x06]) + (0x00003C02).to_bytes(4, "big") + bytes([12, 5, 1]) in svk


def test_transfer_rules() -> None:
    m = ecu("EGS")
    region = m.region
    assert region is not None
    ask(m, "1003")
    ask(m, "1002")
    assert ask(m, "340044" + f"{region.address:08X}00000010") == "7F3433"  # locked
    unlock(m, 0x11)
    assert ask(m, "340044" + f"{region.address:08X}00000010") == "7F3470"  # not erased
    assert ask(m, "3601AA") == "7F3624"  # no download active
    ask(m, "3101FF00" + f"{region.address:08X}00000100")
    assert ask(m, "340044" + f"{region.address - 1:08X}00000010") == "7F3431"
    assert ask(m, "340044" + f"{region.address:08X}00000004") == "74201002"
    assert ask(m, "3602AABB") == "7F3673"  # wrong counter
    assert ask(m, "37") == "7F3724"  # not complete
    assert ask(m, "3601AABB") == "7601"
    assert ask(m, "3601AABB") == "7601"  # a repeated block is accepted, not written twice
    assert ask(m, "3602CCDDEE") == "7F3671"  # more than announced
    assert ask(m, "3602CCDD") == "7602"
    assert ask(m, "37") == "77"
    assert bytes(region.memory[:4]) == bytes.fromhex("AABBCCDD")


def test_check_memory_with_a_wrong_hash_keeps_the_region_invalid() -> None:
    m = ecu("EGS")
    img = image("99.99.99", 4096)
    responses = program(m, img)
    assert responses[-2].endswith("00")
    m2 = ecu("EGS")
    region = m2.region
    assert region is not None
    ask(m2, "1003")
    ask(m2, "1002")
    unlock(m2, 0x11)
    ask(m2, "3101FF00" + f"{region.address:08X}00001000")
    assert ask(m2, "31010202" + f"{region.address:08X}00001000" + "00" * 32) == "7101020201"
    assert not region.valid
    assert ask(m2, "3101FF01") == "7101FF0101"  # dependencies not ok
    assert ask(m2, "1101") == "5101"
    assert m2.session == 0x02  # no valid application: the bootloader stays


def test_reset_fault_during_transfer() -> None:
    m = ecu("EGS")
    m.faults.reset_after_blocks = 3
    img = image("12.05.02", 4096 * 8)
    region = m.region
    assert region is not None
    ask(m, "1003")
    ask(m, "1002")
    unlock(m, 0x11)
    ask(m, "3101FF00" + f"{region.address:08X}{len(img):08X}")
    ask(m, "340044" + f"{region.address:08X}{len(img):08X}")
    assert ask(m, "3601" + img[:4094].hex()) == "7601"
    assert ask(m, "3602" + img[4094:8188].hex()) == "7602"
    assert ask(m, "3603" + img[8188:12282].hex()) == ""  # reset instead of an answer
    assert m.transfer is None and m.session == 0x02 and not region.valid


def test_low_voltage_refuses_erase() -> None:
    m = ecu("EGS")
    m.battery.volts = 11.2
    region = m.region
    assert region is not None
    ask(m, "1003")
    ask(m, "1002")
    unlock(m, 0x11)
    assert ask(m, "3101FF00" + f"{region.address:08X}00001000") == "7F3122"


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=64), st.floats(min_value=0, max_value=1e6))
def test_any_request_gets_a_valid_answer_or_none(request_bytes: bytes, now: float) -> None:
    m = ecu("BDC")
    reply = m.handle(request_bytes, now)
    if reply.response is None:
        return
    r = reply.response
    if r[0] == 0x7F:
        assert len(r) == 3 and r[1] == request_bytes[0]
    else:
        assert r[0] == request_bytes[0] + 0x40


def test_cbs_record_reset_and_its_refusals() -> None:
    m = ecu("KOMBI")
    record = bytes.fromhex(ask(m, "222500"))[3:]
    assert record[0] == 5 and len(record) == 1 + 5 * 7
    oil = struct.unpack(">BBib", record[1:8])
    assert oil == (1, 0, -350, -1)  # overdue: no availability left
    fluid = struct.unpack(">BBib", record[1 + 3 * 7 : 1 + 4 * 7])
    assert fluid == (4, 20, 0x7FFFFFFF, 5)  # time-only: 5 of 24 months
    assert ask(m, "3101101001") == "7F3131"  # not in the default session: out of range there
    ask(m, "1003")
    assert ask(m, "3101101009") == "7F3131"  # no such item
    assert ask(m, "31011010") == "7F3113"  # the item id is missing
    assert ask(m, "3101101001") == "7101101000"
    after = bytes.fromhex(ask(m, "222500"))[3:]
    assert struct.unpack(">BBib", after[1:8]) == (1, 100, 15000, 12)
    assert after[8:] == record[8:]  # the other items are untouched
    assert ask(ecu("DME"), "3101101001") == "7F3131"  # the engine keeps no CBS items


def test_battery_registration_checks_capacity_and_technology() -> None:
    m = ecu("DME")
    assert ask(m, "222510") == "622510" + "5A02" + f"{12040:08X}"
    ask(m, "1003")
    assert ask(m, "310110208302") == "7F3131"  # 131 Ah: more than any car battery here
    assert ask(m, "310110202703") == "7F3131"  # 39 Ah, and no technology 3
    assert ask(m, "310110205003") == "7F3131"  # no technology 3
    assert ask(m, "3101102050") == "7F3113"
    assert ask(m, "310110205001") == "7101102000"  # 80 Ah EFB
    assert ask(m, "222510") == "622510" + "5001" + f"{VEHICLE.mileage_km:08X}"


def answer(model: EcuModel, hex_request: str, now: float = 0.0, functional: bool = False) -> str:
    reply = model.handle(bytes.fromhex(hex_request), now, functional=functional)
    return reply.response.hex().upper() if reply.response is not None else ""


@pytest.mark.parametrize(
    ("ecu_name", "setup", "request_hex", "expected"),
    [
        # figure 5: "not supported in active session" (0x7F) comes before any length check
        ("DME", [], "85", "7F857F"),
        ("DME", [], "2E", "7F2E7F"),
        ("DME", [], "28", "7F287F"),
        ("DME", [], "34", "7F347F"),
        ("DME", [], "2703", "7F277F"),  # before the sub-function check too
        # ... and security for the whole service (0x33) before length and sequence
        ("DME", ["1003", "1002"], "34", "7F3433"),
        ("DME", ["1003", "1002"], "3601", "7F3624"),  # 0x36/0x37 have no 0x33: no download
        ("DME", ["1003", "1002"], "37", "7F3724"),
        ("DME", ["1003"], "3601", "7F367F"),
        # figure 6: minimum length, sub-function, sub-function in session, sequence
        ("DME", [], "10", "7F1013"),
        ("DME", [], "1004", "7F1012"),
        ("DME", ["1003"], "2711", "7F277E"),
        ("DME", ["1003"], "2702", "7F2724"),  # sequence (no seed) before the key's length
        ("DME", ["1003"], "2705", "7F2712"),
        # an ECU without a bootloader has no programming session, level or download
        ("ZGW", [], "1002", "7F1012"),
        ("ZGW", ["1003"], "2711", "7F2712"),
        ("ZGW", [], "3400440010000000000010", "7F3411"),
        # a routine not allowed in the active session is out of range, not 0x7F
        ("DME", [], "3101FF000010000000001000", "7F3131"),
        ("DME", [], "31010203", "7F3131"),
        ("DME", ["1003"], "3101FF000010000000001000", "7F3131"),
        # optional trailing parameters are accepted
        ("DME", ["1003"], "8502FFFFFF", "C502"),  # DTCSettingControlOptionRecord (DTC group)
        ("DME", ["1003"], "8501", "C501"),
        ("DME", ["1003"], "8581", ""),  # suppressPosRspMsgIndicationBit
    ],
)
def test_nrc_order_of_the_general_server_response_behaviour(
    ecu_name: str, setup: list[str], request_hex: str, expected: str
) -> None:
    m = ecu(ecu_name)
    for step in setup:
        assert ask(m, step)[:2] in ("50", "67")
    assert ask(m, request_hex) == expected


def test_transfer_exit_accepts_a_transfer_request_parameter_record() -> None:
    m = ecu("EGS")
    region = m.region
    assert region is not None
    ask(m, "1003")
    ask(m, "1002")
    unlock(m, 0x11)
    ask(m, "3101FF00" + f"{region.address:08X}00000100")
    assert ask(m, "340044" + f"{region.address:08X}00000002") == "74201002"
    assert ask(m, "3601AABB") == "7601"
    assert ask(m, "37C0FFEE") == "77"  # transferRequestParameterRecord (e.g. a checksum)


def test_request_download_takes_any_address_and_length_format() -> None:
    m = ecu("EGS")
    region = m.region
    assert region is not None
    ask(m, "1003")
    ask(m, "1002")
    unlock(m, 0x11)
    ask(m, "3101FF00" + f"{region.address:08X}00000100")
    # addressAndLengthFormatIdentifier 0x24: 4-byte address, 2-byte size
    assert ask(m, "340024" + f"{region.address:08X}0010") == "74201002"
    assert ask(m, "340024" + f"{region.address:08X}00") == "7F3413"  # one size byte missing
    assert ask(m, "340004" + f"{region.address:08X}") == "7F3431"  # no size length
    assert ask(m, "341144" + f"{region.address:08X}00000010") == "7F3431"  # compressed


def test_reentering_a_non_default_session_locks_security_again() -> None:
    m = ecu("BDC")
    ask(m, "1003")
    unlock(m, 0x01)
    assert ask(m, "2701") == "670100000000"  # unlocked: zero seed
    assert ask(m, "1003").startswith("5003")  # the same session again
    assert ask(m, "2701") != "670100000000"  # locked again: a real seed
    assert ask(m, "2E3000" + "00" * 16) == "7F2E33"


@pytest.mark.parametrize(
    ("setup", "request_hex"),
    [
        ([], "99"),  # 0x11
        ([], "1004"),  # 0x12
        ([], "221234"),  # 0x31
        (["1003"], "2711"),  # 0x7E
        ([], "8502"),  # 0x7F
        ([], "3101FF000010000000001000"),  # 0x31: routine not allowed in this session
    ],
)
def test_functional_requests_get_no_nrc_11_12_31_7e_7f(setup: list[str], request_hex: str) -> None:
    m = ecu("DME")
    for step in setup:
        ask(m, step)
    assert answer(m, request_hex, functional=True) == ""
    assert answer(m, request_hex) != ""  # physically addressed: the NRC is sent


def test_functional_requests_still_get_other_nrcs() -> None:
    m = ecu("DME")
    assert answer(m, "22F1", functional=True) == "7F2213"
    assert answer(m, "3E00", functional=True) == "7E00"
    assert answer(m, "3E80", functional=True) == ""


def test_suppressed_positive_response_is_sent_after_response_pending() -> None:
    m = ecu("EGS")
    region = m.region
    assert region is not None
    ask(m, "1003")
    ask(m, "1002")
    unlock(m, 0x11)
    reply = m.handle(bytes.fromhex("3181FF00" + f"{region.address:08X}00001000"), 0.0)
    assert reply.pending == 2  # the erase takes time: 7F 31 78 first ...
    assert reply.response == bytes.fromhex("7101FF0000")  # ... so the final answer is owed
    quick = m.handle(bytes.fromhex("3181FF01"), 0.0)
    assert quick.pending == 0 and quick.response is None


# -- ECUs that differ (vehicle file fields, docs/simulator.md) --------------------------------


def test_an_ecu_without_a_did_leaves_it_out_of_a_multi_did_answer() -> None:
    m = ecu("HU")
    out = bytes.fromhex(ask(m, "22F187F18CF189"))
    assert out[:3] == bytes.fromhex("62F187") and out[10:12] == b"\xf1\x89"  # no F18C
    assert ask(m, "22F18C") == "7F2231"


def test_an_ecu_without_snapshots_or_extended_data_answers_their_nrc() -> None:
    m = ecu("HU")
    assert ask(m, "19020C").startswith("5902FFB7F32009")
    assert ask(m, "1904B7F320FF") == "7F1912"
    assert ask(m, "1906B7F320FF") == "7F1931"


def test_manufacturer_snapshot_dids_and_extended_records_follow_the_standard_ones() -> None:
    m = ecu("BDC")
    snapshot = bytes.fromhex(ask(m, "1904A0C100FF"))
    assert snapshot[6:8] == bytes.fromhex("0103")  # record 1, three DIDs
    assert snapshot[-6:] == bytes.fromhex("2F0C1E05000A")
    assert ask(m, "1906A0C100FF") == "5906A0C10028" + "0104" + "0205" + "300012A407" + "3102"
    assert ask(m, "1906A0C10030") == "5906A0C10028300012A407"
    assert ask(m, "1906A0C10040") == "7F1931"


def test_dtc_flood_fault_makes_a_huge_fault_memory_answer() -> None:
    m = ecu("DSC")
    m.faults.dtc_flood = 100_000
    out = bytes.fromhex(ask(m, "19020C"))
    assert (
        len(out) == 3 + 4 * 100_001 and out[-4:] == (0x500000 + 99_999).to_bytes(3, "big") + b"\x08"
    )
    assert ask(m, "19010C") == "5901FF01FFFF"  # the count saturates at 0xFFFF


def test_pending_forever_fault_answers_only_response_pending() -> None:
    m = ecu("EGS")
    m.faults.pending_forever.add(0x36)
    reply = m.handle(bytes.fromhex("360100"), 0.0)
    assert reply.response is None and reply.pending < 0
    assert ask(m, "3E00") == "7E00"  # other services answer as before


def test_fault_specs_for_endless_pending_and_a_dtc_flood() -> None:
    from firmware_py.sim.faults import parse_fault

    assert parse_fault("pending-forever:EGS:0x36") == {"ecu": "EGS", "pending_forever": ["0x36"]}
    assert parse_fault("dtc-flood:DSC=200000") == {"ecu": "DSC", "dtc_flood": 200000}
