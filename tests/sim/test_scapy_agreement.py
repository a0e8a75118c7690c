"""An implementation we did not write agrees with the simulator: Scapy's automotive layers
(DoIP and UDS) do vehicle identification, routing activation and read the VIN from ``vci sim``
running in its own process; Scapy's packets drive the ISO 14229-1 NRC order (figures 5 and 6,
functional addressing) and the ISO 13400-2 routing rules (alive checks before 0x01, NACK 0x02 and
close for a wrong source address)."""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Iterator

import pytest

scapy_doip = pytest.importorskip("scapy.contrib.automotive.doip")
scapy_uds = pytest.importorskip("scapy.contrib.automotive.uds")
DoIP, DoIPSocket, UDS_DoIPSocket = scapy_doip.DoIP, scapy_doip.DoIPSocket, scapy_doip.UDS_DoIPSocket
UDS, UDS_RDBI, UDS_NR = scapy_uds.UDS, scapy_uds.UDS_RDBI, scapy_uds.UDS_NR

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


def uds_answers(sock, request, count: int = 1, timeout: float = 3.0) -> list:
    """Send one UDS request and collect the next ``count`` UDS messages (the DoIP
    acknowledgement and "response pending" frames are skipped), within ``timeout`` seconds."""
    sock.send(request)
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for pkt in sock.sniff(count=1, timeout=max(0.05, deadline - time.monotonic())):
            uds = pkt if isinstance(pkt, UDS) else None
            if uds is not None and not (uds.service == 0x7F and uds.negativeResponseCode == 0x78):
                got.append(uds)
    assert len(got) == count, f"{len(got)} of {count} UDS answers to {bytes(request).hex()}"
    return got


def nrc(sock, request) -> int | None:
    """The NRC the ECU answers ``request`` with (None: a positive response)."""
    (answer,) = uds_answers(sock, request)
    return int(answer[UDS_NR].negativeResponseCode) if answer.service == 0x7F else None


@pytest.fixture
def dme(sim_process) -> Iterator:
    sock = UDS_DoIPSocket(
        ip=sim_process.doip_host,
        port=sim_process.doip_port,
        source_address=0x0E80,
        target_address=0x0012,
    )
    try:
        yield sock
    finally:
        sock.close()


def test_nrc_order_with_scapy_uds(dme) -> None:
    u = scapy_uds
    # figure 5: a too-short request to a service the default session lacks: 0x7F, not 0x13
    assert nrc(dme, UDS(service=0x85)) == 0x7F
    assert nrc(dme, UDS() / u.UDS_CDTCS(DTCSettingType=0x02)) == 0x7F
    assert nrc(dme, UDS(service=0x34)) == 0x7F
    # a routine the active session does not allow is out of range (0x31)
    assert nrc(dme, UDS() / u.UDS_RC(routineControlType=1, routineIdentifier=0xFF00)) == 0x31
    # figure 6: minimum length, then sub-function (0x12), then sub-function in session (0x7E)
    assert nrc(dme, UDS(service=0x10)) == 0x13
    assert nrc(dme, UDS() / u.UDS_DSC(diagnosticSessionType=0x04)) == 0x12
    assert nrc(dme, UDS() / u.UDS_DSC(diagnosticSessionType=0x03)) is None
    assert nrc(dme, UDS() / u.UDS_SA(securityAccessType=0x11)) == 0x7E
    assert nrc(dme, UDS() / u.UDS_SA(securityAccessType=0x02)) == 0x24  # no seed asked for
    # optional trailing parameters are accepted
    option = u.UDS_CDTCS(DTCSettingType=0x02, DTCSettingControlOptionRecord=b"\xff\xff\xff")
    assert nrc(dme, UDS() / option) is None
    # programming session: RequestDownload's security (0x33) comes before its length check
    assert nrc(dme, UDS() / u.UDS_DSC(diagnosticSessionType=0x02)) is None
    assert nrc(dme, UDS(service=0x34)) == 0x33
    assert nrc(dme, UDS() / u.UDS_RTE(transferRequestParameterRecord=b"\x01")) == 0x24


def test_functional_requests_get_no_nrc_11_with_scapy(sim_process) -> None:
    sock = UDS_DoIPSocket(
        ip=sim_process.doip_host,
        port=sim_process.doip_port,
        source_address=0x0E80,
        target_address=0xE400,  # functional
    )
    try:
        u = scapy_uds
        sock.send(UDS(service=0x99))  # 0x11 from every ECU: none is sent
        sock.send(UDS() / u.UDS_CDTCS(DTCSettingType=0x02))  # 0x7F in the default session
        sock.send(UDS() / u.UDS_DSC(diagnosticSessionType=0x04))  # 0x12
        sock.send(UDS() / u.UDS_RC(routineControlType=1, routineIdentifier=0xFF00))  # 0x31
        answers = uds_answers(sock, UDS() / scapy_uds.UDS_TP(), count=8)  # one per ECU
        assert all(a.service == 0x7E for a in answers)  # the first UDS answers are to 0x3E
    finally:
        sock.close()


def test_a_wrong_source_address_gets_nack_02_and_the_socket_closes_with_scapy(
    sim_process,
) -> None:
    sock = DoIPSocket(ip=sim_process.doip_host, port=sim_process.doip_port, source_address=0x0E80)
    try:
        wrong = DoIP(payload_type=0x8001, source_address=0x0E81, target_address=0x0012)
        sock.send(wrong / UDS() / scapy_uds.UDS_TP())
        (nack,) = sock.sniff(count=1, timeout=3)
        assert nack.payload_type == 0x8003 and nack.nack_code == 0x02
        sock.ins.settimeout(1.0)  # closed at once, not by an inactivity timer
        assert sock.ins.recv(100) == b""
    finally:
        sock.close()


def test_routing_activation_with_all_sockets_taken_frees_silent_testers_with_scapy(
    sim_process,
) -> None:
    # Scapy's DoIPSocket does not answer alive checks: four of them hold every socket
    held = [
        DoIPSocket(ip=sim_process.doip_host, port=sim_process.doip_port, source_address=sa)
        for sa in range(0x0E80, 0x0E84)
    ]
    try:
        fifth = DoIPSocket(  # raises unless routing is activated (0x10)
            ip=sim_process.doip_host, port=sim_process.doip_port, source_address=0x0E90
        )
        fifth.close()
    finally:
        for sock in held:
            sock.close()


def test_routing_activation_is_refused_with_01_when_every_tester_answers_with_scapy(
    sim_process,
) -> None:
    address = (sim_process.doip_host, sim_process.doip_port)

    def read(s: socket.socket):
        head = s.recv(8, socket.MSG_WAITALL)
        length = struct.unpack(">I", head[4:8])[0]
        return DoIP(head + (s.recv(length, socket.MSG_WAITALL) if length else b""))

    testers = [socket.create_connection(address, timeout=3) for _ in range(4)]
    try:
        for i, s in enumerate(testers):
            s.sendall(bytes(DoIP(payload_type=0x0005, source_address=0x0E80 + i)))
            assert read(s).routing_activation_response == 0x10
        with socket.create_connection(address, timeout=3) as new:
            new.sendall(bytes(DoIP(payload_type=0x0005, source_address=0x0E90)))
            for i, s in enumerate(testers):
                assert read(s).payload_type == 0x0007  # alive check request
                s.sendall(bytes(DoIP(payload_type=0x0008, source_address=0x0E80 + i)))
            answer = read(new)
            assert answer.payload_type == 0x0006 and answer.routing_activation_response == 0x01
    finally:
        for s in testers:
            s.close()
