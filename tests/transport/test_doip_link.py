"""The DoIP link against the simulator and against a misbehaving DoIP peer written here
(raw sockets on loopback): NACKs, bad headers, a connection reset mid-response, reconnect."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from udsoncan.exceptions import TimeoutException

from firmware_py.errors import (
    ConnectionLostError,
    FrameError,
    UnknownTargetError,
    VehicleNotFoundError,
)
from firmware_py.transport import discover_doip, open_doip_link
from firmware_py.transport.doip_link import MAX_RECEIVE_PAYLOAD, DoipLink, _FastParser
from firmware_py.transport.mux import MAX_QUEUED

HEADER = struct.Struct(">BBHI")


def pack(pt: int, payload: bytes) -> bytes:
    return HEADER.pack(2, 0xFD, pt, len(payload)) + payload


class Peer:
    """A one-connection-at-a-time DoIP peer whose answers to diagnostic messages a test scripts."""

    def __init__(self, on_diag: Callable[[socket.socket, bytes], None]) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port = self.server.getsockname()[1]
        self.on_diag = on_diag
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = conn.recv(8, socket.MSG_WAITALL)
                if len(head) < 8:
                    return
                _, _, pt, length = HEADER.unpack(head)
                body = conn.recv(length, socket.MSG_WAITALL) if length else b""
                if pt == 0x0005:
                    conn.sendall(pack(0x0006, body[:2] + b"\x00\x10\x10" + bytes(4)))
                elif pt == 0x8001:
                    try:
                        self.on_diag(conn, body)
                    except OSError:
                        return

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def peer_factory() -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], Peer]]:
    peers: list[Peer] = []

    def make(on_diag: Callable[[socket.socket, bytes], None]) -> Peer:
        p = Peer(on_diag)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.close()


def ack_and(answer: bytes | None) -> Callable[[socket.socket, bytes], None]:
    def on_diag(conn: socket.socket, body: bytes) -> None:
        source, target = body[:2], body[2:4]
        conn.sendall(pack(0x8002, target + source + b"\x00"))
        if answer is not None:
            conn.sendall(pack(0x8001, target + source + answer))

    return on_diag


def test_request_and_response(peer_factory) -> None:
    peer = peer_factory(ack_and(bytes.fromhex("7E00")))
    link = DoipLink("127.0.0.1", peer.port, gateway_address=0x10)
    conn = link.ecu_connection(0x12).open()
    conn.send(bytes.fromhex("3E00"))
    assert conn.wait_frame(timeout=1, exception=True) == bytes.fromhex("7E00")
    link.close()


def test_nack_unknown_target_is_an_unknown_target_error(peer_factory) -> None:
    def nack(conn: socket.socket, body: bytes) -> None:
        conn.sendall(pack(0x8003, body[2:4] + body[:2] + b"\x03"))

    link = DoipLink("127.0.0.1", peer_factory(nack).port, gateway_address=0x10)
    with pytest.raises(UnknownTargetError, match="0x12"):
        link.ecu_connection(0x12).open().send(b"\x3e\x00")
    link.close()


def test_silence_is_a_timeout_not_a_hang(peer_factory) -> None:
    link = DoipLink("127.0.0.1", peer_factory(ack_and(None)).port, gateway_address=0x10)
    conn = link.ecu_connection(0x12).open()
    conn.send(b"\x3e\x00")
    with pytest.raises(TimeoutException):
        conn.wait_frame(timeout=0.3, exception=True)
    link.close()


def test_bad_header_then_good_message_is_read(peer_factory) -> None:
    def garbage_first(conn: socket.socket, body: bytes) -> None:
        conn.sendall(b"\x02\x00")  # two bytes of a broken header (wrong inverse): skipped
        ack_and(bytes.fromhex("7E00"))(conn, body)

    link = DoipLink("127.0.0.1", peer_factory(garbage_first).port, gateway_address=0x10)
    conn = link.ecu_connection(0x12).open()
    conn.send(b"\x3e\x00")
    assert conn.wait_frame(timeout=1, exception=True) == bytes.fromhex("7E00")
    link.close()


def test_generic_nack_is_a_frame_error(peer_factory) -> None:
    def generic_nack(conn: socket.socket, body: bytes) -> None:
        conn.sendall(pack(0x0000, b"\x01"))

    link = DoipLink("127.0.0.1", peer_factory(generic_nack).port, gateway_address=0x10)
    with pytest.raises(FrameError):
        link.ecu_connection(0x12).open().send(b"\x3e\x00")
    link.close()


def test_reset_mid_response_then_reconnect(peer_factory) -> None:
    calls = []

    def reset_first(conn: socket.socket, body: bytes) -> None:
        calls.append(body)
        if len(calls) == 1:
            conn.sendall(
                pack(0x8002, body[2:4] + body[:2] + b"\x00")
                + HEADER.pack(2, 0xFD, 0x8001, 50)
                + b"\x00\x12"
            )
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST in the middle of the response
            raise OSError("reset")
        ack_and(bytes.fromhex("7E00"))(conn, body)

    peer = peer_factory(reset_first)
    link = DoipLink("127.0.0.1", peer.port, gateway_address=0x10)
    conn = link.ecu_connection(0x12).open()
    conn.send(b"\x3e\x00")
    with pytest.raises(ConnectionLostError):
        conn.wait_frame(timeout=2, exception=True)
    conn.send(b"\x3e\x00")  # the link reconnects and activates routing again
    assert conn.wait_frame(timeout=2, exception=True) == bytes.fromhex("7E00")
    assert peer.connections == 2
    link.close()


def test_nobody_listening_is_vehicle_not_found() -> None:
    with pytest.raises(VehicleNotFoundError):
        open_doip_link("127.0.0.1", 9, gateway_address=0x10)


def test_discovery_and_link_against_the_simulator(sim_process) -> None:
    found = discover_doip(sim_process.doip_host, sim_process.doip_port, timeout=1)
    assert [(a.vin, a.logical_address) for a in found] == [("WBAJA71090B123456", 0x10)]
    assert (
        discover_doip(
            sim_process.doip_host, sim_process.doip_port, timeout=0.5, vin="WBA00000000000000"
        )
        == []
    )
    link = open_doip_link(sim_process.doip_host, sim_process.doip_port)
    assert link.gateway_address == 0x10
    conn = link.ecu_connection(0x63).open()
    conn.send(bytes.fromhex("22F190"))
    assert (
        conn.wait_frame(timeout=2, exception=True) == bytes.fromhex("62F190") + b"WBAJA71090B123456"
    )
    link.close()


def test_reconnect_after_the_vehicle_dropped_the_connection(sim_process) -> None:
    link = open_doip_link(sim_process.doip_host, sim_process.doip_port)
    conn = link.ecu_connection(0x12).open()
    sim_process.inject(doip_reset_after=1)
    with pytest.raises(ConnectionLostError):  # the reset comes before the acknowledgement
        conn.send(bytes.fromhex("3E00"))
    conn.send(bytes.fromhex("3E00"))
    assert conn.wait_frame(timeout=2, exception=True) == bytes.fromhex("7E00")
    link.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_parser_never_raises_anything_but_frame_error(chunks: list[bytes]) -> None:
    parser = _FastParser()
    for chunk in chunks:
        try:
            parser.read_message(chunk)
            while parser.read_message(b"") is not None:
                pass
        except FrameError:
            parser = _FastParser()


def test_the_vehicle_announces_itself_at_start_up(start_sim) -> None:
    """Three vehicle announcements (A_DoIP_Announce_Num) reach a tester listening on UDP, and our
    parser reads them as doipclient's VehicleIdentificationResponse."""
    from doipclient.messages import VehicleIdentificationResponse

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        start_sim("--announce-to", f"127.0.0.1:{listener.getsockname()[1]}")
        got = []
        for _ in range(3):
            message = _FastParser().read_message(listener.recv(4096))
            assert isinstance(message, VehicleIdentificationResponse)
            got.append((message.vin, message.logical_address))
    assert got == [("WBAJA71090B123456", 0x10)] * 3


def test_messages_from_unknown_sources_and_unread_answers_are_bounded(peer_factory) -> None:
    """A gateway that sends answers from addresses nobody asked (or more than anyone reads) costs
    a bounded queue: they are dropped and counted, and the real answer still arrives."""

    def flood(conn: socket.socket, body: bytes) -> None:
        source, target = body[:2], body[2:4]
        conn.sendall(pack(0x8002, target + source + b"\x00"))
        junk = b"".join(
            pack(0x8001, struct.pack(">H", 0x2000 + i) + source + b"\x7e\x00") for i in range(5000)
        )
        unread = b"".join(pack(0x8001, b"\x00\x29" + source + b"\x7e\x00") for _ in range(500))
        conn.sendall(junk + unread + pack(0x8001, target + source + b"\x62\xf1\x90"))

    link = DoipLink("127.0.0.1", peer_factory(flood).port, gateway_address=0x10)
    link.ecu_connection(0x29)  # a connection to the DSC exists, but nobody reads its answers
    conn = link.ecu_connection(0x12).open()
    conn.send(b"\x22\xf1\x90")
    assert conn.wait_frame(timeout=5, exception=True) == b"\x62\xf1\x90"
    stats = link.stats()
    assert stats["dropped"] >= 5000 + 500 - MAX_QUEUED and stats["queued"] <= MAX_QUEUED
    link.close()


def test_an_oversized_doip_message_is_refused_before_it_is_buffered(peer_factory) -> None:
    """The length in the header is checked before any payload is kept; the message is skipped
    (the stream stays in step) and the next answer is read."""

    def huge(conn: socket.socket, body: bytes) -> None:
        source, target = body[:2], body[2:4]
        conn.sendall(pack(0x8002, target + source + b"\x00"))
        size = MAX_RECEIVE_PAYLOAD + 1
        conn.sendall(HEADER.pack(2, 0xFD, 0x8001, size) + target + source)
        left = size - 4
        while left:
            conn.sendall(bytes(min(left, 64 * 1024)))
            left -= min(left, 64 * 1024)
        conn.sendall(pack(0x8001, target + source + b"\x7e\x00"))

    link = DoipLink("127.0.0.1", peer_factory(huge).port, gateway_address=0x10)
    conn = link.ecu_connection(0x12).open()
    conn.send(b"\x3e\x00")
    with pytest.raises(FrameError, match="more than the box accepts"):
        conn.wait_frame(timeout=5, exception=True)
    assert conn.wait_frame(timeout=5, exception=True) == b"\x7e\x00"
    link.close()


@pytest.mark.parametrize("version", [0x02, 0x03])
def test_the_protocol_version_sent_is_the_configured_one(sim_process, tmp_path, version) -> None:
    from firmware_py.config import TransportConfig
    from firmware_py.uds.vehicle import VehicleSession

    cfg = TransportConfig(
        doip_host=sim_process.doip_host,
        doip_port=sim_process.doip_port,
        doip_protocol_version=version,
    )
    vehicle = VehicleSession.open(cfg, "doip", trace_path=tmp_path / "t.pcap")
    try:
        assert vehicle.ecu("DME").read_dids(0xF190)[0xF190] == "WBAJA71090B123456"
    finally:
        vehicle.close()
        vehicle.link.close()
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    sent = [
        bytes(p[TCP].payload)
        for p in rdpcap(str(tmp_path / "t.pcap"))
        if p[TCP].dport == sim_process.doip_port and bytes(p[TCP].payload)
    ]
    assert sent and all(s[:2] == bytes([version, version ^ 0xFF]) for s in sent)


@pytest.mark.parametrize("kind", ["doip", "enet"])
def test_identification_is_sent_with_the_configured_protocol_version(kind: str) -> None:
    from firmware_py.config import TransportConfig
    from firmware_py.transport import open_link

    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as doip,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hsfz,
    ):
        doip.bind(("127.0.0.1", 0))
        hsfz.bind(("127.0.0.1", 0))
        cfg = TransportConfig(
            enet="auto",
            doip_host="127.0.0.1",
            doip_port=doip.getsockname()[1],
            hsfz_control_port=hsfz.getsockname()[1],
            doip_protocol_version=0x03,
        )
        with pytest.raises(VehicleNotFoundError):  # nobody answers: the request is what counts
            open_link(cfg, kind)
        doip.settimeout(1)
        request = doip.recv(64)
    assert request[:4] == bytes([0x03, 0xFC, 0x00, 0x01])  # version 3, identification request


def test_vci_scan_identifies_with_the_configured_protocol_version(tmp_path) -> None:
    """`vci scan` sends its own identification (ENET auto detection); it carries the version
    that [transport] doip_protocol_version configures, like the links'."""
    import os

    from tests.conftest import vci

    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as doip,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hsfz,
    ):
        doip.bind(("127.0.0.1", 0))
        hsfz.bind(("127.0.0.1", 0))
        config = tmp_path / "vci.toml"
        config.write_text(
            "[transport]\n"
            'doip_host = "127.0.0.1"\n'
            f"doip_port = {doip.getsockname()[1]}\n"
            f"hsfz_control_port = {hsfz.getsockname()[1]}\n"
            "doip_protocol_version = 3\n"
            f'[storage]\nstate_dir = "{tmp_path / "state"}"\n'
        )
        run = vci("scan", env={**os.environ, "VCI_CONFIG": str(config)})
        assert run.returncode != 0 and "no vehicle answered" in run.stderr.lower()
        doip.settimeout(1)
        request = doip.recv(64)
    assert request[:4] == bytes([0x03, 0xFC, 0x00, 0x01])
