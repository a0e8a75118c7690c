"""pcap traces of TCP links (DoIP, HSFZ): a message longer than one IPv4 packet carries (a 64 KiB
TransferData, or what one read returned) is written as several segments that Scapy reads back
whole, in order."""

from __future__ import annotations

import pytest

from firmware_py.transport.trace import DoipTrace

scapy_inet = pytest.importorskip("scapy.layers.inet")
scapy_utils = pytest.importorskip("scapy.utils")


def test_a_message_longer_than_an_ip_packet_is_split_into_segments(tmp_path) -> None:
    path = tmp_path / "big.pcap"
    trace = DoipTrace(path, ("127.0.0.1", 40000), ("127.0.0.1", 6801))
    message = bytes(range(256)) * 300  # 76,800 bytes
    trace.tx(message)
    trace.rx(b"\x00\x00\x00\x05\x00\x02\xf4\x12\x36\x01\x00")
    trace.close()
    packets = scapy_utils.rdpcap(str(path))
    sent = [p for p in packets if p[scapy_inet.TCP].sport == 40000]
    assert len(sent) == 2
    assert b"".join(bytes(p[scapy_inet.TCP].payload) for p in sent) == message
    assert sent[1][scapy_inet.TCP].seq == sent[0][scapy_inet.TCP].seq + len(
        bytes(sent[0][scapy_inet.TCP].payload)
    )
    assert all(p[scapy_inet.IP].len == len(bytes(p[scapy_inet.IP])) for p in packets)
