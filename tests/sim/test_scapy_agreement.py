"""An implementation we did not write agrees with the simulator: Scapy's automotive layers
(DoIP and UDS) do vehicle identification, routing activation and read the VIN from ``vci sim``
running in its own process."""

from __future__ import annotations

import logging
import socket

import pytest

scapy_doip = pytest.importorskip("scapy.contrib.automotive.doip")
scapy_uds = pytest.importorskip("scapy.contrib.automotive.uds")
DoIP, DoIPSocket, UDS_DoIPSocket = scapy_doip.DoIP, scapy_doip.DoIPSocket, scapy_doip.UDS_DoIPSocket
UDS, UDS_RDBI = scapy_uds.UDS, scapy_uds.UDS_RDBI

logging.getLogger("scapy").setLevel(logging.ERROR)


def test_vehicle_identification_with_scapy(sim_process) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(bytes(DoIP(payload_type=0x0001)), (sim_process.doip_host, sim_process.doip_port))
        answer = DoIP(s.recv(4096))
    assert answer.payload_type == 0x0004
    assert answer.vin == b"WBAJA71090B123456"
    assert answer.logical_address == 0x0010
    assert answer.eid == bytes.fromhex("001A37C0FFEE")


def test_routing_activation_with_scapy(sim_process) -> None:
    sock = DoIPSocket(ip=sim_process.doip_host, port=sim_process.doip_port, source_address=0x0E80)
    try:
        assert sock.target_address == 0x0010  # learnt from the routing activation response
    finally:
        sock.close()


def test_read_vin_with_scapy_uds(sim_process) -> None:
    sock = UDS_DoIPSocket(
        ip=sim_process.doip_host,
        port=sim_process.doip_port,
        source_address=0x0E80,
        target_address=0x0012,
    )
    try:
        answer = None
        for _ in range(3):  # the positive DoIP ACK arrives first; sr1 returns the UDS answer
            answer = sock.sr1(UDS() / UDS_RDBI(identifiers=[0xF190]), timeout=2, verbose=False)
            if answer is not None and answer.haslayer(UDS) and answer[UDS].service == 0x62:
                break
        assert answer is not None and answer[UDS].service == 0x62
        assert bytes(answer[UDS].payload).endswith(b"WBAJA71090B123456")
    finally:
        sock.close()
