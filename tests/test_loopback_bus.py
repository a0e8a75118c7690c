"""The vci_loopback python-can interface: frames cross processes, stay on loopback, and a bus
does not receive its own frames."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import can
import pytest

from firmware_py.transport.loopback_bus import LoopbackMulticastBus, parse_channel


@pytest.fixture
def channel() -> str:
    return f"239.74.163.{random.randint(10, 250)}:{random.randint(40000, 60000)}"


def test_parse_channel() -> None:
    assert parse_channel("239.1.2.3:5000") == ("239.1.2.3", 5000)
    assert parse_channel("239.1.2.3") == ("239.1.2.3", 43113)
    with pytest.raises(can.CanInitializationError):
        parse_channel("239.1.2.3:port")


def test_frames_reach_other_buses_but_not_the_sender(channel: str) -> None:
    with (
        can.Bus(interface="vci_loopback", channel=channel) as a,
        can.Bus(interface="vci_loopback", channel=channel) as b,
    ):
        assert isinstance(a, LoopbackMulticastBus)
        sent = can.Message(
            arbitration_id=0x6F1, data=bytes.fromhex("12 02 10 03"), is_extended_id=False
        )
        a.send(sent)
        got = b.recv(1.0)
        assert got is not None
        assert got.arbitration_id == 0x6F1 and bytes(got.data) == bytes.fromhex("12021003")
        assert a.recv(0.1) is None


def test_other_groups_are_not_heard(channel: str) -> None:
    group, port = parse_channel(channel)
    with (
        can.Bus(interface="vci_loopback", channel=channel) as a,
        can.Bus(interface="vci_loopback", channel=f"{group}:{port + 1}") as other,
    ):
        a.send(can.Message(arbitration_id=0x100, data=b"\x01", is_extended_id=False))
        assert other.recv(0.2) is None


def test_garbage_datagrams_are_ignored(channel: str) -> None:
    import socket

    group, port = parse_channel(channel)
    with can.Bus(interface="vci_loopback", channel=channel) as bus:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        s.sendto(b"\xc1 not msgpack", (group, port))
        s.close()
        assert bus.recv(0.2) is None


def test_frames_cross_processes(channel: str) -> None:
    echo = textwrap.dedent(
        f"""
        import can
        with can.Bus(interface="vci_loopback", channel={channel!r}) as bus:
            print("ready", flush=True)
            for _ in range(3):
                msg = bus.recv(5.0)
                if msg is None:
                    break
                bus.send(can.Message(arbitration_id=msg.arbitration_id + 1, data=msg.data, is_extended_id=False))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", echo], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with can.Bus(interface="vci_loopback", channel=channel) as bus:
            for i in range(3):
                bus.send(can.Message(arbitration_id=0x700, data=bytes([i]), is_extended_id=False))
                reply = bus.recv(2.0)
                assert reply is not None and reply.arbitration_id == 0x701 and reply.data[0] == i
    finally:
        proc.wait(timeout=10)
