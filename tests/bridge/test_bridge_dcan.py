"""The ENET bridge on a car the box reaches only over D-CAN (E-series, or only the OBD CAN pins
connected): HSFZ and DoIP from Scapy's sockets translated to ISO-TP with BMW extended addressing
against the simulator's CAN face - the ICOM's role for older cars."""

from __future__ import annotations

import socket

import pytest

from firmware_py.transport import hsfz
from tests.bridge.test_bridge_scapy import (
    VIN,
    doip_tester,
    download,
    hsfz_tester,
    scapy_doip,
    scapy_uds,
    unlock_for_programming,
)


@pytest.mark.parametrize("protocol", ["hsfz", "doip"])
def test_translation_to_dcan_identification_vin_and_download(bridge_box, protocol) -> None:
    gw = bridge_box(transport="can")
    gw.sim.set_battery(13.6)
    opened = gw.open()
    assert opened["mode"] == "translate"
    ports = opened["ports"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        if protocol == "hsfz":
            s.sendto(hsfz.IDENTIFICATION_REQUEST, ("127.0.0.1", ports["hsfz_control"]))
            identity = hsfz.parse_identification(s.recv(2048))
            assert (identity.vin, identity.diag_address) == (VIN, 0x10)
        else:
            s.sendto(bytes(scapy_doip.DoIP(payload_type=0x0001)), ("127.0.0.1", ports["doip"]))
            answer = scapy_doip.DoIP(s.recv(4096))
            assert answer.vin == VIN.encode() and answer.logical_address == 0x0010
    make = hsfz_tester if protocol == "hsfz" else doip_tester
    tester = make(ports, target=0x12)
    try:
        assert tester.ask(b"\x22\xf1\x90") == b"\x62\xf1\x90" + VIN.encode()
        assert tester.ask(b"\x22\xf1\x23")[:1] == b"\x7f"  # the ECU's own refusal comes through
    finally:
        tester.close()
    tester = make(ports)
    try:
        unlock_for_programming(tester)
        # a TransferData longer than ISO-TP carries is refused by the bridge as too large
        too_long = scapy_uds.UDS(b"\x36\x01" + bytes(4095))
        tester.sock.send(too_long)
        refused = tester.sock.recv()
        if protocol == "hsfz":
            assert refused.control == hsfz.ControlWord.MESSAGE_TOO_LARGE
        else:
            assert refused.payload_type == 0x8003 and refused.nack_code == 0x04
        assert download(tester, bytes(range(256)) * 32, max_message=4095) >= 2  # 8 KiB
    finally:
        tester.close()
    gw.vci("bridge", "close")
    record = gw.wait_closed()
    assert record["mode"] == "translate" and record["refusals"] == []


def test_translation_refuses_an_erase_below_the_floor(bridge_box) -> None:
    gw = bridge_box(transport="can")
    gw.sim.set_battery(12.0)
    tester = hsfz_tester(gw.open()["ports"])
    try:
        unlock_for_programming(tester)
        assert tester.ask(b"\x31\x01\xff\x00" + bytes(8)) == b"\x7f\x31\x22"
    finally:
        tester.close()
    assert gw.sim.state()["ecus"]["EGS"]["region"]["erased"] is False
    gw.vci("bridge", "close")
    assert gw.wait_closed()["refusals"][0]["volts"] == pytest.approx(12.0)
