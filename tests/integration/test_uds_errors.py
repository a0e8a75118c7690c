"""Every NRC path of the simulated ECUs reaches the user as an error that names the NRC, through
the real UDS layer over real sockets; malformed responses end in a clear error, not a crash."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import pytest

from firmware_py.config import TransportConfig, UdsConfig
from firmware_py.errors import (
    EcuNotRespondingError,
    NegativeResponseError,
    ResponseDeadlineError,
    UnexpectedResponseError,
)
from firmware_py.uds.fault_memory import MAX_DTCS, read_fault_memory
from firmware_py.uds.security import SecurityProvider, register_algorithm
from firmware_py.uds.vehicle import VehicleSession
from tests.conftest import TRANSPORTS, SimHandle


@pytest.fixture(params=TRANSPORTS)
def vehicle(
    request: pytest.FixtureRequest, start_sim
) -> Iterator[tuple[VehicleSession, SimHandle]]:
    sim = start_sim("--security-delay", "2")
    cfg = TransportConfig(
        doip_host=sim.doip_host,
        doip_port=sim.doip_port,
        hsfz_port=sim.hsfz_port,
        can_interface=sim.can_interface,
        can_channel=sim.can_channel,
    )
    v = VehicleSession.open(cfg, request.param)
    yield v, sim
    v.close()


def nrc_of(call) -> NegativeResponseError:
    with pytest.raises(NegativeResponseError) as info:
        call()
    return info.value


def test_wrong_session_names_nrc_7f(vehicle) -> None:
    v, _ = vehicle
    err = nrc_of(lambda: v.ecu("BDC").raw(bytes.fromhex("2E3000") + bytes(16)))  # default session
    assert (
        err.nrc == 0x7F
        and "ServiceNotSupportedInActiveSession" in str(err)
        and "session" in str(err)
    )


def test_wrong_length_names_nrc_13(vehicle) -> None:
    v, _ = vehicle
    err = nrc_of(lambda: v.ecu("DME").raw(bytes.fromhex("22F1")))
    assert err.nrc == 0x13 and "IncorrectMessageLength" in str(err)


def test_out_of_range_names_nrc_31(vehicle) -> None:
    v, _ = vehicle
    err = nrc_of(lambda: v.ecu("DME").raw(bytes.fromhex("221234")))
    assert err.nrc == 0x31 and "RequestOutOfRange" in str(err)


def test_conditions_not_correct_names_nrc_22(vehicle) -> None:
    v, _ = vehicle
    err = nrc_of(lambda: v.ecu("DME").change_session("programming"))  # only from extended
    assert err.nrc == 0x22 and "ConditionsNotCorrect" in str(err)


def test_security_access_denied_names_nrc_33(vehicle) -> None:
    v, _ = vehicle
    bdc = v.ecu("BDC")
    bdc.change_session("extended")
    err = nrc_of(lambda: bdc.raw(bytes.fromhex("2E3000") + bytes(16)))
    assert err.nrc == 0x33 and "SecurityAccessDenied" in str(err)
    bdc.security_access(0x01)  # the right algorithm unlocks it ...
    bdc.raw(bytes.fromhex("2E3000") + bytes(range(16)))  # ... and the write goes through
    bdc.change_session("default")


def test_request_sequence_error_names_nrc_24(vehicle) -> None:
    v, _ = vehicle
    bdc = v.ecu("BDC")
    bdc.change_session("extended")
    err = nrc_of(lambda: bdc.raw(bytes.fromhex("270211223344")))  # a key before any seed
    assert err.nrc == 0x24 and "RequestSequenceError" in str(err)


def test_invalid_key_then_exceeded_attempts_then_delay(vehicle) -> None:
    v, _ = vehicle
    register_algorithm("test-wrong", lambda seed, level, address: b"\x00\x00\x00\x01")
    kombi = v.ecu("KOMBI")
    kombi.security = SecurityProvider({0x60: "test-wrong"})
    kombi.change_session("extended")
    assert nrc_of(lambda: kombi.security_access(0x01)).nrc == 0x35
    assert nrc_of(lambda: kombi.security_access(0x01)).nrc == 0x35
    err = nrc_of(lambda: kombi.security_access(0x01))
    assert err.nrc == 0x36 and "ExceedNumberOfAttempts" in str(err).replace("Exceeded", "Exceed")
    err = nrc_of(lambda: kombi.security_access(0x01))
    assert err.nrc == 0x37 and "RequiredTimeDelayNotExpired" in str(err)
    kombi.change_session("default")


def test_a_forced_nrc_is_reported_by_name(vehicle) -> None:
    v, sim = vehicle
    sim.inject(ecu="EGS", nrc={"0x22": 0x21})
    err = nrc_of(lambda: v.ecu("EGS").read_dids(0xF190))
    assert err.nrc == 0x21 and "BusyRepeatRequest" in str(err)


def test_a_response_of_the_wrong_length_is_an_unexpected_response(vehicle) -> None:
    v, sim = vehicle
    sim.inject(ecu="EGS", truncate=True)
    with pytest.raises(UnexpectedResponseError, match="EGS"):
        v.ecu("EGS").read_dids(0xF190)
    sim.inject(ecu="EGS", truncate=False)
    assert v.ecu("EGS").read_dids(0xF190)[0xF190] == "WBAJA71090B123456"


def test_a_slow_ecu_is_waited_for_and_a_silent_one_times_out(vehicle) -> None:
    v, sim = vehicle
    sim.inject(ecu="DME", delay=0.5)
    assert v.ecu("DME").read_dids(0xF190)[0xF190] == "WBAJA71090B123456"  # P2 1.0 s > 0.5 s
    sim.inject(ecu="DME", silent=True)
    with pytest.raises(EcuNotRespondingError, match="DME"):
        v.ecu("DME").read_dids(0xF190)
    sim.inject(ecu="DME", silent=False, delay=0)
    assert v.ecu("DME").read_dids(0xF190)[0xF190] == "WBAJA71090B123456"


def test_tester_present_keeps_a_session_open_past_s3(vehicle) -> None:
    v, sim = vehicle
    dme = v.ecu("DME", timing=UdsConfig(tester_present_interval=0.5))
    dme.change_session("extended")
    deadline = time.monotonic() + 6.0  # S3 is 5 s in the simulated ECUs
    while time.monotonic() < deadline:
        time.sleep(0.5)
    assert sim.state()["ecus"]["DME"]["session"] == 0x03
    dme.change_session("default")
    assert sim.state()["ecus"]["DME"]["session"] == 0x01


def test_response_pending_for_ever_ends_at_the_request_deadline(vehicle) -> None:
    """udsoncan's path (not the TransferData one): the overall deadline holds, 0x78 included."""
    v, sim = vehicle
    sim.inject(ecu="DME", pending_forever=["0x19"])
    dme = v.ecu("DME", timing=UdsConfig(request_deadline=1.5))
    with pytest.raises(ResponseDeadlineError) as info:
        dme.dtcs_by_status_mask(0xFF, limit=100)
    assert "response pending" in str(info.value) and "1.5 s" in str(info.value)
    assert info.value.code == "ecu_response_deadline" and "ignition" in str(info.value)
    assert v.ecu("DSC").read_dids(0xF190)[0xF190] == "WBAJA71090B123456"  # the others answer


def test_a_huge_fault_memory_answer_costs_bounded_memory(vehicle) -> None:
    """200 001 DTCs from one ECU: over DoIP the list is cut to MAX_DTCS with a warning before
    udsoncan makes an object per DTC; on CAN and HSFZ the answer does not fit the transport and the
    ECU says so (NRC 0x14). Peak memory of the read is measured with tracemalloc, not timed."""
    v, sim = vehicle
    sim.inject(ecu="DSC", dtc_flood=200_000)
    info = v.catalog.find("DSC")
    v.ecu(info)  # connected before measuring
    tracemalloc.start()
    try:
        (result,) = read_fault_memory(v, [info])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if v.kind in ("can", "hsfz"):  # ISO-TP carries 4095 bytes, HSFZ 64 KiB: responseTooLong
        assert result.error is not None and result.error["nrc"] == 0x14
    else:
        assert result.error is None and result.reported == 200_001
        assert len(result.dtcs) == MAX_DTCS and result.dtcs[0].dtc == 0x480A00
        assert result.warning is not None and "200001 DTCs" in result.warning
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    print(f"peak while reading {v.kind}: {peak / 1e6:.1f} MB")
