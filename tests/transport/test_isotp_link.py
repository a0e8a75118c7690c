"""ISO-TP channels (can-isotp) over the python-can virtual bus: both addressing modes against a
can-isotp peer, flow control honoured, and a misbehaving peer that sends truncated or
out-of-order frames: a clean timeout, and the channel works again afterwards."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import can
import isotp
import pytest
from udsoncan.exceptions import TimeoutException

from firmware_py.errors import UnknownTargetError
from firmware_py.transport.isotp_link import CanLink, isotp_params

NORMAL = {0x12: (0x7E0, 0x7E8)}


@pytest.fixture
def channel() -> str:
    return f"isotp-{uuid.uuid4().hex}"


class EcuPeer:
    def __init__(self, channel: str, address: isotp.Address, **params: object) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.notifier = can.Notifier(self.bus, [], timeout=0.1)
        self.stack = isotp.NotifierBasedCanStack(
            self.bus, self.notifier, address=address, params={**isotp_params(0, 0), **params}
        )
        self.stack.start()

    def close(self) -> None:
        self.stack.stop()
        self.notifier.stop()
        self.bus.shutdown()


@pytest.fixture
def link(channel: str) -> Iterator[CanLink]:
    link = CanLink(
        can.Bus(interface="virtual", channel=channel),
        addressing="bmw",
        normal_ids=NORMAL,
        owns_bus=True,
    )
    yield link
    link.close()


BMW_ECU = isotp.Address(
    isotp.AddressingMode.Extended_11bits,
    rxid=0x6F1,
    txid=0x612,
    target_address=0xF1,
    source_address=0x12,
)


def test_bmw_addressing_round_trip(channel: str, link: CanLink) -> None:
    ecu = EcuPeer(channel, BMW_ECU)
    try:
        conn = link.ecu_connection(0x12)
        conn.open()
        conn.send(bytes.fromhex("22F190"))
        assert ecu.stack.recv(block=True, timeout=2) == bytes.fromhex("22F190")
        ecu.stack.send(bytes.fromhex("62F190") + b"WBAJA71090B123456")
        assert (
            conn.wait_frame(timeout=2, exception=True)
            == bytes.fromhex("62F190") + b"WBAJA71090B123456"
        )
    finally:
        ecu.close()


def test_normal_addressing_round_trip(channel: str) -> None:
    link = CanLink(
        can.Bus(interface="virtual", channel=channel),
        addressing="normal",
        normal_ids=NORMAL,
        owns_bus=True,
    )
    ecu = EcuPeer(
        channel, isotp.Address(isotp.AddressingMode.Normal_11bits, rxid=0x7E0, txid=0x7E8)
    )
    try:
        conn = link.ecu_connection(0x12)
        conn.open()
        conn.send(b"\x3e\x00")
        assert ecu.stack.recv(block=True, timeout=2) == b"\x3e\x00"
        with pytest.raises(UnknownTargetError):
            link.ecu_connection(0x40)  # no identifiers known for it in normal addressing
    finally:
        ecu.close()
        link.close()


def test_the_receivers_block_size_is_honoured(channel: str, link: CanLink) -> None:
    ecu = EcuPeer(channel, BMW_ECU, blocksize=8, stmin=1)
    spy = can.Bus(interface="virtual", channel=channel)
    try:
        conn = link.ecu_connection(0x12)
        conn.open()
        payload = bytes(range(256)) * 4
        conn.send(payload)
        assert ecu.stack.recv(block=True, timeout=5) == payload
        frames = []
        while (msg := spy.recv(0.05)) is not None:
            frames.append(msg)
        flow_controls = [m for m in frames if m.arbitration_id == 0x612 and m.data[1] >> 4 == 3]
        consecutive = [m for m in frames if m.arbitration_id == 0x6F1 and m.data[1] >> 4 == 2]
        assert len(consecutive) == math.ceil(
            (len(payload) - 5) / 6
        )  # extended addressing: 6 bytes per CF
        assert len(flow_controls) == math.ceil(len(consecutive) / 8)  # one FC per block of 8
    finally:
        spy.shutdown()
        ecu.close()


def raw(bus: can.BusABC, data: str) -> None:
    bus.send(can.Message(arbitration_id=0x612, data=bytes.fromhex(data), is_extended_id=False))


@pytest.mark.parametrize(
    "frames",
    [
        ["F1100A62F190574241"],  # a first frame and then nothing: truncated
        [
            "F1100A62F190574241",
            "F1224A4137313039",
        ],  # consecutive frame with the wrong sequence number
        ["F1214A4137313039"],  # a consecutive frame without a first frame
        ["F1"],  # nothing behind the address byte
    ],
)
def test_misbehaving_peer_gives_a_clean_timeout_and_the_channel_recovers(
    channel: str, link: CanLink, frames: list[str]
) -> None:
    bus = can.Bus(interface="virtual", channel=channel)
    try:
        conn = link.ecu_connection(0x12)
        conn.open()
        for frame in frames:
            raw(bus, frame)
        with pytest.raises(TimeoutException):
            conn.wait_frame(timeout=0.3, exception=True)
        raw(bus, "F1027E00CCCCCCCC")  # a good single frame afterwards
        assert conn.wait_frame(timeout=2, exception=True) == b"\x7e\x00"
    finally:
        bus.shutdown()


def test_params_follow_iso_names() -> None:
    assert isotp_params(0.005, 8)["stmin"] == 5 and isotp_params(0.005, 8)["blocksize"] == 8
    with pytest.raises(ValueError):
        isotp_params(0.2, 0)
    with pytest.raises(ValueError):
        isotp_params(0.0, 256)


def test_a_can_trace_holds_both_directions_as_socketcan_pcap(channel: str, tmp_path) -> None:
    from scapy.layers.can import CAN
    from scapy.utils import rdpcap

    path = tmp_path / "trace-can.pcap"
    link = CanLink(
        can.Bus(interface="virtual", channel=channel),
        addressing="bmw",
        owns_bus=True,
        trace_path=path,
    )
    ecu = EcuPeer(channel, BMW_ECU)
    try:
        conn = link.ecu_connection(0x12)
        conn.open()
        conn.send(bytes.fromhex("22F190"))
        assert ecu.stack.recv(block=True, timeout=2) == bytes.fromhex("22F190")
        ecu.stack.send(bytes.fromhex("62F190") + b"WBAJA71090B123456")
        assert conn.wait_frame(timeout=2, exception=True)
    finally:
        ecu.close()
        link.close()
    frames = [p[CAN] for p in rdpcap(str(path))]
    ids = [f.identifier for f in frames]
    assert ids[0] == 0x6F1 and bytes(frames[0].data)[:5] == bytes.fromhex(
        "120322F190"
    )  # our request
    assert 0x612 in ids and ids.count(0x6F1) >= 2  # the ECU's frames, and our flow control


def test_a_first_frame_longer_than_the_box_accepts_is_refused_with_overflow(
    channel: str, link: CanLink
) -> None:
    """An ECU announcing 1 000 000 bytes (ISO 15765-2:2016 escape first frame) gets flow control
    "overflow" (FS=2) at once: nothing is buffered for it, and the channel works afterwards."""
    bus = can.Bus(interface="virtual", channel=channel)
    try:
        conn = link.ecu_connection(0x12)
        conn.open()
        raw(bus, "F11000" + (1_000_000).to_bytes(4, "big").hex() + "7E")
        flow_status = None
        for _ in range(50):  # bounded: the answer comes within a few frames
            msg = bus.recv(timeout=0.5)
            if msg is None:
                break
            if msg.arbitration_id == 0x6F1 and msg.data[1] & 0xF0 == 0x30:
                flow_status = msg.data[1] & 0x0F
                break
        assert flow_status == 2  # overflow
        raw(bus, "F1027E00CCCCCCCC")
        assert conn.wait_frame(timeout=2, exception=True) == b"\x7e\x00"
    finally:
        bus.shutdown()
