"""The simulator's DoIP entity over real sockets on loopback: identification, routing
activation, diagnostic messages, and malformed input that must neither hang nor crash it."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.sim.doip_server import MAX_DATA_SIZE
from firmware_py.sim.runtime import SimOptions, SimulatedVehicle
from firmware_py.sim.vehicle import load_vehicle
from firmware_py.transport.doip_frames import HEADER, check_header, pack

VIN = b"WBAJA71090B123456"


@pytest.fixture
def entity() -> Iterator[SimulatedVehicle]:
    options = SimOptions(
        doip_port=0,
        can_interface=None,
        announce_to=None,
        general_inactivity=1.0,
        initial_inactivity=1.0,
    )
    with SimulatedVehicle(load_vehicle(), options) as vehicle:
        yield vehicle


def udp(vehicle: SimulatedVehicle, datagram: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(datagram, ("127.0.0.1", vehicle.doip_port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return None


def tcp(vehicle: SimulatedVehicle) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", vehicle.doip_port), timeout=3)
    return s


def read_message(s: socket.socket) -> tuple[int, bytes]:
    head = b""
    while len(head) < 8:
        chunk = s.recv(8 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    _, _, pt, length = HEADER.unpack(head)
    body = b""
    while len(body) < length:
        body += s.recv(length - len(body))
    return pt, body


def activate(s: socket.socket, source: int = 0x0E80) -> tuple[int, bytes]:
    s.sendall(pack(0x0005, struct.pack(">HB", source, 0) + bytes(4)))
    return read_message(s)


def closed(s: socket.socket, within: float | None = None) -> bool:
    """The entity closed the socket (EOF or reset); ``within``: seconds to wait for it, shorter
    than the fixture's inactivity timers when the close must come from the rule under test."""
    if within is not None:
        s.settimeout(within)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "request_",
    [
        pack(1, b""),
        pack(1, b"", version=0xFF),
        pack(2, bytes.fromhex("001A37C0FFEE")),
        pack(3, VIN),
    ],
)
def test_vehicle_identification(entity: SimulatedVehicle, request_: bytes) -> None:
    answer = udp(entity, request_)
    assert answer is not None
    _, _, pt, length = HEADER.unpack(answer[:8])
    assert pt == 0x0004 and length == 33
    assert (
        answer[8:25] == VIN
        and answer[25:27] == b"\x00\x10"
        and answer[27:33] == bytes.fromhex("001A37C0FFEE")
    )


def test_identification_for_another_vin_or_eid_is_not_answered(entity: SimulatedVehicle) -> None:
    assert udp(entity, pack(3, b"WBA00000000000000")) is None
    assert udp(entity, pack(2, bytes(6))) is None


def test_entity_status_and_power_mode(entity: SimulatedVehicle) -> None:
    status = udp(entity, pack(0x4001, b""))
    assert status is not None and HEADER.unpack(status[:8])[2] == 0x4002 and status[8] == 0x00
    power = udp(entity, pack(0x4003, b""))
    assert power is not None and power[8:] == b"\x01"


def test_routing_activation_and_a_diagnostic_message(entity: SimulatedVehicle) -> None:
    with tcp(entity) as s:
        pt, body = activate(s)
        assert pt == 0x0006 and body[4] == 0x10 and body[2:4] == b"\x00\x10"
        s.sendall(pack(0x8001, bytes.fromhex("0E800012") + bytes.fromhex("22F190")))
        assert read_message(s) == (0x8002, bytes.fromhex("00120E8000"))
        pt, body = read_message(s)
        assert (
            pt == 0x8001
            and body[:4] == bytes.fromhex("00120E80")
            and body[4:7] == bytes.fromhex("62F190")
            and body[7:] == VIN
        )


def test_unknown_target_gets_a_nack(entity: SimulatedVehicle) -> None:
    with tcp(entity) as s:
        activate(s)
        s.sendall(pack(0x8001, bytes.fromhex("0E800077") + bytes.fromhex("3E00")))
        assert read_message(s) == (0x8003, bytes.fromhex("00770E8003"))
        s.sendall(pack(0x0007, b""))
        assert read_message(s) == (0x0008, b"\x00\x10")  # the socket still works


def test_unknown_source_address_is_refused(entity: SimulatedVehicle) -> None:
    with tcp(entity) as s:
        pt, body = activate(s, source=0x1234)
        assert pt == 0x0006 and body[4] == 0x00
        assert closed(s)


def test_second_tester_with_the_same_address_is_refused_while_the_first_answers(
    entity: SimulatedVehicle,
) -> None:
    with tcp(entity) as first, tcp(entity) as second:
        activate(first)
        second.sendall(pack(0x0005, struct.pack(">HB", 0x0E80, 0) + bytes(4)))
        assert read_message(first) == (0x0007, b"")  # the entity checks whether the first is alive
        first.sendall(pack(0x0008, b"\x0e\x80"))
        pt, body = read_message(second)
        assert pt == 0x0006 and body[4] == 0x03


def test_second_tester_takes_over_from_a_dead_one(entity: SimulatedVehicle) -> None:
    with tcp(entity) as first, tcp(entity) as second:
        activate(first)
        pt, body = activate(second)  # the first never answers the alive check
        assert body[4] == 0x10


def test_diagnostic_message_before_routing_activation_closes_the_socket(
    entity: SimulatedVehicle,
) -> None:
    with tcp(entity) as s:
        s.sendall(pack(0x8001, bytes.fromhex("0E800012") + bytes.fromhex("3E00")))
        assert read_message(s) == (0x8003, bytes.fromhex("00120E8002"))
        assert closed(s)


def test_diagnostic_message_with_another_source_address_gets_nack_02_and_is_closed(
    entity: SimulatedVehicle,
) -> None:
    with tcp(entity) as s:
        assert activate(s, source=0x0E80)[1][4] == 0x10
        s.sendall(pack(0x8001, bytes.fromhex("0E810012") + bytes.fromhex("3E00")))
        assert read_message(s) == (0x8003, bytes.fromhex("00120E8102"))
        assert closed(s, within=0.5)  # at once, not by T_TCP_General_Inactivity (1 s here)


def four_registered(entity: SimulatedVehicle) -> list[socket.socket]:
    testers = [tcp(entity) for _ in range(4)]  # MAX_SOCKETS
    for i, s in enumerate(testers):
        assert activate(s, source=0x0E80 + i)[1][4] == 0x10
    return testers


def test_all_sockets_taken_the_entity_checks_them_and_frees_the_silent_one(
    entity: SimulatedVehicle,
) -> None:
    testers = four_registered(entity)
    try:
        with tcp(entity) as new:
            new.sendall(pack(0x0005, struct.pack(">HB", 0x0E90, 0) + bytes(4)))
            for s in testers:  # an alive check request on every registered socket first
                assert read_message(s) == (0x0007, b"")
            for i, s in enumerate(testers[:3]):  # three testers answer, the fourth is gone
                s.sendall(pack(0x0008, struct.pack(">H", 0x0E80 + i)))
            pt, body = read_message(new)  # after T_TCP_Alive_Check
            assert pt == 0x0006 and body[:2] == b"\x0e\x90" and body[4] == 0x10
            assert closed(testers[3])
            for s in testers[:3]:  # the ones that answered keep their routing
                s.sendall(pack(0x0007, b""))
                assert read_message(s) == (0x0008, b"\x00\x10")
            new.sendall(pack(0x8001, bytes.fromhex("0E900012") + bytes.fromhex("3E00")))
            assert read_message(new) == (0x8002, bytes.fromhex("00120E9000"))
    finally:
        for s in testers:
            s.close()


def test_all_sockets_taken_and_every_tester_answers_refuses_with_01(
    entity: SimulatedVehicle,
) -> None:
    testers = four_registered(entity)
    try:
        with tcp(entity) as new:
            new.sendall(pack(0x0005, struct.pack(">HB", 0x0E90, 0) + bytes(4)))
            for i, s in enumerate(testers):
                assert read_message(s) == (0x0007, b"")
                s.sendall(pack(0x0008, struct.pack(">H", 0x0E80 + i)))
            pt, body = read_message(new)
            assert pt == 0x0006 and body[4] == 0x01  # all sockets registered and active
            assert closed(new, within=0.5)
    finally:
        for s in testers:
            s.close()


@pytest.mark.parametrize(
    ("raw", "nack", "closes"),
    [
        (bytes([0x02, 0xFE, 0x80, 0x01, 0, 0, 0, 5]), 0x00, True),  # wrong inverse version
        (bytes([0x07, 0xF8, 0x80, 0x01, 0, 0, 0, 5]), 0x00, True),  # unknown version
        (pack(0x1234, b"xx"), 0x01, False),  # unknown payload type
        (HEADER.pack(2, 0xFD, 0x8001, 0x7FFFFFFF), 0x02, True),  # larger than allowed
        (pack(0x0005, b"\x0e"), 0x04, True),  # invalid length for routing activation
    ],
)
def test_bad_headers_get_the_generic_nack(
    entity: SimulatedVehicle, raw: bytes, nack: int, closes: bool
) -> None:
    with tcp(entity) as s:
        activate(s)
        s.sendall(raw)
        assert read_message(s) == (0x0000, bytes([nack]))
        if closes:
            assert closed(s)
        else:
            s.sendall(pack(0x0007, b""))
            assert read_message(s)[0] == 0x0008


def test_a_length_larger_than_sent_does_not_hold_the_socket_forever(
    entity: SimulatedVehicle,
) -> None:
    with tcp(entity) as s:
        activate(s)
        s.sendall(
            HEADER.pack(2, 0xFD, 0x8001, 100) + bytes.fromhex("0E8000123E00")
        )  # 6 of 100 bytes
        s.settimeout(5)
        assert closed(s)  # T_TCP_General_Inactivity (1 s here) closed it
    with tcp(entity) as s:  # and the entity still serves a new connection
        assert activate(s)[1][4] == 0x10


def test_silence_after_connect_is_closed_by_the_initial_inactivity_timer(
    entity: SimulatedVehicle,
) -> None:
    with tcp(entity) as s:
        s.settimeout(5)
        assert closed(s)


def test_garbage_udp_gets_a_nack_and_the_entity_keeps_answering(entity: SimulatedVehicle) -> None:
    answer = udp(entity, b"\x00\x01\x02")
    assert answer is not None and HEADER.unpack(answer[:8])[2] == 0x0000
    assert udp(entity, pack(1, b"")) is not None


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=8, max_size=8))
def test_header_check_never_raises(header: bytes) -> None:
    result = check_header(header, max_length=MAX_DATA_SIZE)
    if header[1] != header[0] ^ 0xFF:
        assert result.nack == 0x00 and result.close  # incorrect pattern: NACK and close
    if result.nack is None:
        assert header[1] == header[0] ^ 0xFF and not result.close
    if result.close:
        assert result.nack is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_udp_answer_is_a_valid_doip_message_or_none(data: bytes) -> None:
    from firmware_py.sim.doip_server import DoipEntity
    from firmware_py.sim.faults import BusFaults

    entity = DoipEntity(
        vin=VIN.decode(),
        logical_address=0x10,
        eid=bytes(6),
        gid=bytes(6),
        ecus={},
        faults=BusFaults(),
    )
    answer = entity.udp_answer(data)
    if answer is not None:
        version, inverse, pt, length = HEADER.unpack(answer[:8])
        assert (
            inverse == version ^ 0xFF
            and len(answer) == 8 + length
            and pt in (0x0000, 0x0004, 0x4002, 0x4004)
        )
