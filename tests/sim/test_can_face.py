"""The simulator's ECUs on a CAN bus (python-can virtual bus, in-process), driven by can-isotp as
the tester: both addressing schemes, response pending, and malformed ISO-TP frames."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import can
import isotp
import pytest

from firmware_py.sim.runtime import SimOptions, SimulatedVehicle
from firmware_py.sim.vehicle import load_vehicle


@pytest.fixture
def bus() -> Iterator[tuple[SimulatedVehicle, can.BusABC]]:
    channel = f"vci-test-{uuid.uuid4().hex}"
    options = SimOptions(
        doip_port=None, can_interface="virtual", can_channel=channel, announce_to=None
    )
    with SimulatedVehicle(load_vehicle(), options) as vehicle:
        tester = can.Bus(interface="virtual", channel=channel)
        yield vehicle, tester
        tester.shutdown()


def stack(
    tester: can.BusABC, address: isotp.Address
) -> tuple[isotp.NotifierBasedCanStack, can.Notifier]:
    notifier = can.Notifier(tester, [], timeout=0.1)
    s = isotp.NotifierBasedCanStack(
        tester, notifier, address=address, params={"tx_padding": 0xCC, "tx_data_min_length": 8}
    )
    s.start()
    return s, notifier


def request(s: isotp.TransportLayer, payload: bytes, timeout: float = 3.0) -> bytes | None:
    s.send(payload)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = s.recv(block=True, timeout=0.1)
        if answer and not (answer[0] == 0x7F and answer[2] == 0x78):
            return bytes(answer)
    return None


BMW_DME = isotp.Address(
    isotp.AddressingMode.Extended_11bits,
    txid=0x6F1,
    rxid=0x612,
    target_address=0x12,
    source_address=0xF1,
)
NORMAL_DME = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E0, rxid=0x7E8)


@pytest.mark.parametrize("address", [BMW_DME, NORMAL_DME], ids=["bmw", "normal"])
def test_multi_frame_answer_in_both_addressing_modes(bus, address) -> None:
    _, tester = bus
    s, notifier = stack(tester, address)
    try:
        answer = request(s, bytes.fromhex("22F190F101"))
        assert (
            answer is not None
            and answer[3:20] == b"WBAJA71090B123456"
            and answer[20:22] == b"\xf1\x01"
        )
    finally:
        s.stop()
        notifier.stop()


def test_slow_ecu_sends_response_pending_first(bus) -> None:
    _, tester = bus
    acsm = isotp.Address(
        isotp.AddressingMode.Extended_11bits,
        txid=0x6F1,
        rxid=0x601,
        target_address=0x01,
        source_address=0xF1,
    )
    s, notifier = stack(tester, acsm)
    try:
        s.send(bytes.fromhex("19020C"))
        frames = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and (not frames or frames[-1][0] == 0x7F):
            got = s.recv(block=True, timeout=0.1)
            if got:
                frames.append(bytes(got))
        assert frames[:3] == [bytes.fromhex("7F1978")] * 3 and frames[3][:2] == b"\x59\x02"
    finally:
        s.stop()
        notifier.stop()


def raw(tester: can.BusABC, data: str, arbitration_id: int = 0x6F1) -> None:
    tester.send(
        can.Message(arbitration_id=arbitration_id, data=bytes.fromhex(data), is_extended_id=False)
    )


@pytest.mark.parametrize(
    "frames",
    [
        ["12100A22F190F1"],  # first frame, then nothing: truncated message
        ["12100A22F190F1", "1222F1"],  # consecutive frame with the wrong sequence number
        ["1221F190F1"],  # consecutive frame without a first frame
        ["1230000000"],  # flow control nobody asked for
        ["12"],  # an empty frame behind the address byte
    ],
)
def test_malformed_isotp_frames_do_not_break_the_ecu(bus, frames) -> None:
    vehicle, tester = bus
    for frame in frames:
        raw(tester, frame)
    time.sleep(0.05)  # let the ECU see the frames before the good request
    s, notifier = stack(tester, BMW_DME)
    try:
        # after its rx timeout (1 s) at most, the ECU serves a correct request again
        answer = request(s, bytes.fromhex("22F190"), timeout=4)
        assert answer is not None and answer.endswith(b"WBAJA71090B123456")
    finally:
        s.stop()
        notifier.stop()


def test_a_dropped_frame_is_a_lost_request_not_a_broken_ecu(bus) -> None:
    vehicle, tester = bus
    vehicle.inject(drop_can_frame={"0x6F1": 1})
    s, notifier = stack(tester, BMW_DME)
    try:
        assert request(s, bytes.fromhex("22F190"), timeout=0.5) is None
        answer = request(s, bytes.fromhex("22F190"))
        assert answer is not None and answer.endswith(b"WBAJA71090B123456")
    finally:
        s.stop()
        notifier.stop()


def functional_answers(tester: can.BusABC, frame: can.Message, expected: int) -> list[can.Message]:
    """Send one functional single frame; collect answers until ``expected`` came or 2 s passed."""
    tester.send(frame)
    got: list[can.Message] = []
    deadline = time.monotonic() + 2
    while len(got) < expected and time.monotonic() < deadline:
        msg = tester.recv(timeout=0.1)
        if msg is not None and msg.arbitration_id != frame.arbitration_id:
            got.append(msg)
    return got


@pytest.mark.parametrize(
    ("arbitration_id", "head", "answer_head"),
    [(0x6F1, "DF", "F1"), (0x7DF, "", "")],
    ids=["bmw", "normal"],
)
def test_functional_requests_reach_every_ecu_without_nrc_11_12_31_7e_7f(
    bus, arbitration_id: int, head: str, answer_head: str
) -> None:
    vehicle, tester = bus
    ecus = len(vehicle.ecus)

    def frame(uds: str) -> can.Message:
        data = bytes.fromhex(head + f"{len(uds) // 2:02X}" + uds).ljust(8, b"\xcc")
        return can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False)

    for suppressed in ("99", "1004", "8502", "3101FF00"):  # 0x11, 0x12, 0x7F, 0x31
        tester.send(frame(suppressed))
    answers = functional_answers(tester, frame("3E00"), ecus)
    assert len(answers) == ecus  # every ECU, and only to TesterPresent
    assert all(m.data.startswith(bytes.fromhex(answer_head + "027E00")) for m in answers), [
        m.data.hex() for m in answers
    ]
    assert len({m.arbitration_id for m in answers}) == ecus  # each on its own identifier


def test_stopping_the_can_face_takes_one_stack_s_time_not_the_sum() -> None:
    """Every ECU has two ISO-TP stacks (physical, functional), each with threads that wake
    from waits of their own: stopped one after another, the simulator took most of a second to
    end (a cost every test that starts ``vci sim`` paid); stopped together, about one stack's
    time."""
    from firmware_py.sim.can_server import CanFace

    vehicle = SimulatedVehicle(load_vehicle(), SimOptions(doip_port=None, announce_to=None))
    channel = f"vci-test-{uuid.uuid4().hex}"
    with can.Bus(interface="virtual", channel=channel) as bus:
        face = CanFace(bus, vehicle.ecus, vehicle.bus_faults)
        assert len(face.stacks) >= 30
        face.start()
        started = time.monotonic()
        face.stop()
        took = time.monotonic() - started
    assert not [t for t in threading.enumerate() if t.name.startswith("sim-can-")]
    assert took < 0.4, f"stopping {len(face.stacks)} stacks took {took:.2f} s"
