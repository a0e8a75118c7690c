"""The simulator's HSFZ face (BMW ENET) against a raw socket and against Scapy's HSFZ sockets, an
implementation we did not write: identification on UDP, acknowledgement then answer on TCP,
refusals, and the same ECU answers as on DoIP."""

from __future__ import annotations

import logging
import socket

import pytest

from firmware_py.transport import hsfz
from firmware_py.transport.hsfz import ControlWord, Decoder, Frame

scapy_hsfz = pytest.importorskip("scapy.contrib.automotive.bmw.hsfz")
scapy_uds = pytest.importorskip("scapy.contrib.automotive.uds")
logging.getLogger("scapy").setLevel(logging.ERROR)

VIN = "WBAJA71090B123456"


def _identify(sim) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(hsfz.IDENTIFICATION_REQUEST, (sim.hsfz_host, sim.hsfz_control_port))
        return s.recv(1024)


def _exchange(sim, raw: bytes, frames: int) -> list[Frame]:
    with socket.create_connection((sim.hsfz_host, sim.hsfz_port), timeout=3) as s:
        s.sendall(raw)
        decoder, got = Decoder(), []
        while len(got) < frames:
            data = s.recv(4096)
            if not data:
                break
            got += decoder.feed(data)
        return got


def test_identification_on_udp(sim_process) -> None:
    ident = hsfz.parse_identification(_identify(sim_process))
    assert (ident.diag_address, ident.mac, ident.vin) == (0x10, "001A37C0FFEE", VIN)


def test_scapys_identification_request_is_answered(sim_process) -> None:
    # Scapy builds the request with a length of 2 and no data
    request = bytes(scapy_hsfz.HSFZ(control=0x11))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(request, (sim_process.hsfz_host, sim_process.hsfz_control_port))
        answer = scapy_hsfz.HSFZ(s.recv(1024))
    assert answer.control == 0x11
    assert VIN.encode() in bytes(answer.identification_string)


def test_vin_read_is_acknowledged_then_answered(sim_process) -> None:
    request = hsfz.diagnostic_message(0xF4, 0x12, bytes.fromhex("22F190"))
    ack, answer = _exchange(sim_process, request.encode(), 2)
    assert ack.encode() == bytes.fromhex("00000005 0002 F412 22F190")
    assert (answer.control, answer.source, answer.target) == (1, 0x12, 0xF4)
    assert answer.payload == bytes.fromhex("62F190") + VIN.encode()


def test_unknown_target_and_bad_control_word(sim_process) -> None:
    (refused,) = _exchange(
        sim_process, hsfz.diagnostic_message(0xF4, 0x77, b"\x3e\x00").encode(), 1
    )
    assert refused.control == ControlWord.INCORRECT_DESTINATION_ADDRESS
    (refused,) = _exchange(sim_process, Frame(0x0033, b"\xf4\x12").encode(), 1)
    assert refused.control == ControlWord.INCORRECT_CONTROL_WORD


def test_identification_terminal15_and_alive_check_on_the_tcp_socket(sim_process) -> None:
    raw = b"".join(Frame(c).encode() for c in (0x0011, 0x0010, 0x0012))
    ident, terminal15, alive = _exchange(sim_process, raw, 3)
    assert ident == Frame(
        ControlWord.VEHICLE_IDENTIFICATION, hsfz.decode_datagram(_identify(sim_process)).data
    )
    assert terminal15 == Frame(ControlWord.TERMINAL15, b"\x05")
    assert alive == Frame(ControlWord.ALIVE_CHECK, b"\x10")


def test_a_frame_announcing_too_much_closes_the_socket(sim_process) -> None:
    frames = _exchange(sim_process, bytes.fromhex("7FFFFFFF 0001 F412"), 5)
    assert [f.control for f in frames] == [ControlWord.MESSAGE_TOO_LARGE]  # then EOF


def _scapy_ask(sock, request):
    """Send with Scapy's socket and read its packets until the UDS answer: the gateway's
    acknowledgement comes first (Scapy hands it back as an HSFZ packet)."""
    sock.send(request)
    for _ in range(5):
        packet = sock.recv()
        if isinstance(packet, scapy_uds.UDS):
            return packet
        assert packet.control == ControlWord.ACKNOWLEDGE
    raise AssertionError("no UDS answer")


def test_scapy_reads_vin_and_fault_memory(sim_process) -> None:
    sock = scapy_hsfz.UDS_HSFZSocket(0xF4, 0x12, sim_process.hsfz_host, sim_process.hsfz_port)
    sock.ins.settimeout(5)
    try:
        answer = _scapy_ask(sock, scapy_uds.UDS() / scapy_uds.UDS_RDBI(identifiers=[0xF190]))
        assert answer.service == 0x62
        assert bytes(answer)[3:] == VIN.encode()
        faults = _scapy_ask(
            sock, scapy_uds.UDS() / scapy_uds.UDS_RDTCI(reportType=2, DTCStatusMask=0xFF)
        )
        assert faults.service == 0x59
        assert faults.reportType == 2
        assert len(faults.DTCAndStatusRecord) >= 1
    finally:
        sock.close()
