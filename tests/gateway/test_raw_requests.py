"""Raw UDS requests are classed by what they do (one table, firmware_py/uds/raw_requests.py) and
each class needs its own entitlement: a Basic ticket reads and codes over a raw channel but
neither erases nor downloads; byte vectors as ISO 14229-1 writes them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from firmware_py.gateway.entitlements import Entitlements
from firmware_py.gateway.job_params import check_params
from firmware_py.gateway.store import Store
from firmware_py.gateway.tariffs import RAW_CLASS_SCOPE, TARIFFS, JobKind, Scope, required_scope
from firmware_py.gateway.trusted_time import TrustedClock
from firmware_py.strict_json import StrictJsonError
from firmware_py.uds.raw_requests import SERVICE_CLASS, RawClass, classify
from portal.tickets import issue

DEVICE, VIN = "box-test-0001", "WBAJA71090B123456"

VECTORS = {
    "22F190": RawClass.READ,  # ReadDataByIdentifier VIN
    "1902FF": RawClass.READ,  # ReadDTCInformation by status mask
    "2300120000100004": RawClass.READ,  # ReadMemoryByAddress
    "3E00": RawClass.READ,
    "3E80": RawClass.READ,  # tester present, no positive response
    "1001": RawClass.READ,
    "1003": RawClass.READ,
    "1083": RawClass.READ,  # extended session, suppressPosRspMsgIndicationBit set
    "1002": RawClass.PROGRAMMING,
    "1082": RawClass.PROGRAMMING,  # the bit does not hide the programming session
    "1004": RawClass.UNKNOWN,  # safety system session (airbag disposal)
    "1041": RawClass.UNKNOWN,  # a manufacturer's session
    "10": RawClass.UNKNOWN,  # too short to say which session
    "3101FF00": RawClass.PROGRAMMING,  # eraseMemory
    "3181FF0001": RawClass.PROGRAMMING,
    "3103FF00": RawClass.PROGRAMMING,
    "3101FF01": RawClass.PROGRAMMING,  # checkProgrammingDependencies
    "3101FF02": RawClass.CONTROL,  # eraseMirrorMemoryDTCs
    "31011020": RawClass.ROUTINE,  # manufacturer routine (battery registration in the sim)
    "3101E200": RawClass.UNKNOWN,  # deploy loop routine
    "3101E2FF": RawClass.UNKNOWN,  # safety system routine
    "3101FF03": RawClass.UNKNOWN,  # ISO reserved
    "3101": RawClass.UNKNOWN,  # no routine id
    "3400441234000004": RawClass.PROGRAMMING,  # RequestDownload
    "3500441234000004": RawClass.PROGRAMMING,  # RequestUpload
    "3601AA": RawClass.PROGRAMMING,  # TransferData
    "37": RawClass.PROGRAMMING,  # RequestTransferExit
    "3801": RawClass.PROGRAMMING,  # RequestFileTransfer
    "2EF19001": RawClass.WRITE,  # WriteDataByIdentifier
    "3D1400100001AA": RawClass.WRITE,  # WriteMemoryByAddress
    "2701": RawClass.WRITE,  # SecurityAccess requestSeed
    "1101": RawClass.RESET,
    "1181": RawClass.RESET,
    "14FFFFFF": RawClass.CONTROL,  # ClearDiagnosticInformation
    "2F400103": RawClass.CONTROL,  # InputOutputControlByIdentifier
    "280301": RawClass.CONTROL,  # CommunicationControl
    "8502": RawClass.CONTROL,  # ControlDTCSetting off
    "29": RawClass.UNKNOWN,  # Authentication: not in the table
    "BA": RawClass.UNKNOWN,
    "7F2231": RawClass.UNKNOWN,  # a response is no request
    "": RawClass.UNKNOWN,
}


@pytest.mark.parametrize(("request_hex", "expected"), sorted(VECTORS.items()))
def test_each_request_is_classed_by_what_it_does(request_hex: str, expected: RawClass) -> None:
    assert classify(bytes.fromhex(request_hex)).raw_class is expected


@given(st.binary(max_size=16))
def test_every_request_has_a_class_and_a_scope(request: bytes) -> None:
    """Nothing falls through: any bytes get a class and its scope; a service the table does not
    know needs the most restrictive scope."""
    raw = classify(request)
    scope = required_scope(JobKind.RAW_UDS, {"request": request.hex()})
    assert scope is RAW_CLASS_SCOPE[raw.raw_class]
    if not request or request[0] not in (*SERVICE_CLASS, 0x10, 0x31):
        assert raw.raw_class is RawClass.UNKNOWN and scope is Scope.RAW_PROGRAMMING


def test_no_basic_tariff_erases_or_downloads_over_a_raw_channel() -> None:
    for tariff in TARIFFS.values():
        if tariff.id.startswith("basic"):
            assert Scope.RAW_PROGRAMMING not in tariff.scopes
    assert Scope.RAW_PROGRAMMING in TARIFFS["engineering-1d"].scopes


@pytest.fixture
def entitlements(tmp_path) -> tuple[Entitlements, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()  # TEST key, made for this test
    store = Store(tmp_path)
    clock = TrustedClock(store)
    return Entitlements(store, {"k1": key.public_key()}, DEVICE, clock), key


def test_a_basic_ticket_reads_but_does_not_erase_or_download(entitlements) -> None:
    ent, key = entitlements
    ent.add_ticket(issue(key, "k1", tariff="basic-1d", device=DEVICE))
    for request in ("22F190", "2EF19001", "31011020", "1101"):
        assert ent.check(JobKind.RAW_UDS, vin=VIN, params={"request": request}).allowed, request
    for request in ("3101FF00", "3400441234000004", "1002", "BA"):
        decision = ent.check(JobKind.RAW_UDS, vin=VIN, params={"request": request})
        assert not decision.allowed, request
        assert "does not include raw_programming" in decision.reason
        assert decision.would_allow == ("Engineering, 1 day (90 EUR)",)
    erase = ent.check(JobKind.RAW_UDS, vin=VIN, params={"request": "3101FF00"})
    assert erase.job == "raw request 31 01 ff 00 (programming: RoutineControl EraseMemory (0xFF00))"
    ent.add_ticket(issue(key, "k1", tariff="engineering-1d", device=DEVICE))
    assert ent.check(JobKind.RAW_UDS, vin=VIN, params={"request": "3101FF00"}).allowed


@pytest.mark.parametrize("request_hex", ["", "   ", "22F19", "2 2F190", "22 F1 9G"])
def test_a_request_that_is_not_whole_hex_bytes_is_bad_input_not_a_missing_ticket(
    request_hex: str,
) -> None:
    """Refused with the parameters (job_params owns their shape), before the entitlement check
    would class a typo as an unknown request and name a pricier tariff for it."""
    with pytest.raises(StrictJsonError, match="hex bytes"):
        check_params("raw_uds", {"request": request_hex})
    check_params("raw_uds", {"request": "22 F1 90"})
    check_params("raw_uds", {"request": "22f190"})
