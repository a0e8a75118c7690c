"""Searching the box's pcap traces (:mod:`.trace`) for bytes the vehicle sent, as they were meant,
not as they were framed: a VIN (UDS 0xF190's answer, a DoIP vehicle announcement) is 17 ASCII
bytes in the car's message, but on CAN an ISO-TP message is cut into frames of 6 or 7 bytes
with a protocol byte (and, with BMW's extended addressing, an address byte) before each, and
through the ENET bridge one TCP read may end in the middle of it.

So each trace is searched three ways, file by file, with memory bounded by the longest needle:
the file's bytes as they are; the payloads of every TCP/UDP flow joined in order (link type 228,
IPv4); and on CAN (link type 227, SocketCAN) the ISO-TP payloads joined per CAN identifier, read
both with normal addressing and with one address byte first (extended and mixed addressing).

Why not can-isotp: its stack is a live state machine (timers, flow control, one address pair
configured up front); a trace of unknown addressing is only read here, and a frame out of
sequence must not hide the bytes around it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from firmware_py.transport.trace import LINKTYPE_CAN_SOCKETCAN, LINKTYPE_IPV4

READ_SIZE = 1 << 20


class _Streams:
    """Byte streams by key, each searched for the needles as it grows (only a tail is kept)."""

    def __init__(self, needles: Sequence[bytes]) -> None:
        self.needles = [n for n in needles if n]
        self.keep = max((len(n) for n in self.needles), default=1) - 1
        self.tails: dict[object, bytes] = {}
        self.found = False

    def add(self, key: object, data: bytes) -> None:
        if not data or self.found:
            return
        joined = self.tails.get(key, b"") + data
        if any(n in joined for n in self.needles):
            self.found = True
        self.tails[key] = joined[-self.keep :] if self.keep else b""


def _records(f: object) -> Iterator[tuple[int, bytes]]:
    """(link type, packet bytes) of a pcap file (either byte order, µs or ns stamps)."""
    read = f.read  # type: ignore[attr-defined]
    head = read(24)
    if len(head) < 24:
        return
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        return
    linktype = struct.unpack(order + "I", head[20:24])[0] & 0xFFFF
    while True:
        rec = read(16)
        if len(rec) < 16:
            return
        incl = struct.unpack(order + "IIII", rec)[2]
        data = read(incl)
        if len(data) < incl:
            return
        yield linktype, data


def _ipv4(data: bytes) -> tuple[object, bytes] | None:
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl, proto = (data[0] & 0x0F) * 4, data[9]
    src, dst = data[12:16], data[16:20]
    if proto == 6 and len(data) >= ihl + 20:
        offset = ihl + (data[ihl + 12] >> 4) * 4
    elif proto == 17 and len(data) >= ihl + 8:
        offset = ihl + 8
    else:
        return None
    ports = data[ihl : ihl + 4]
    return (proto, src, dst, ports), data[offset:]


def _isotp_payload(data: bytes) -> bytes:
    """The payload bytes one ISO-TP frame carries (ISO 15765-2 table 9: SF, FF, CF; FC none)."""
    if not data:
        return b""
    kind = data[0] >> 4
    if kind == 0:  # single frame (CAN FD: length in the next byte when the nibble is 0)
        size = data[0] & 0x0F
        return data[1 : 1 + size] if size else data[2 : 2 + (data[1] if len(data) > 1 else 0)]
    if kind == 1:  # first frame (a length of 0 escapes to 32 bits)
        return data[2:] if (data[0] & 0x0F or data[1:2] != b"\0") else data[6:]
    if kind == 2:  # consecutive frame
        return data[1:]
    return b""


def trace_contains(path: Path, needles: Sequence[bytes]) -> bool:
    """Whether the trace at ``path`` carries any of ``needles`` (its bytes, or what its flows
    and ISO-TP messages carried). Raises ``OSError`` if it cannot be read."""
    raw = _Streams(needles)
    with open(path, "rb") as f:
        while chunk := f.read(READ_SIZE):
            raw.add("file", chunk)
            if raw.found:
                return True
    flows = _Streams(needles)
    with open(path, "rb") as f:
        for linktype, data in _records(f):
            if linktype == LINKTYPE_IPV4:
                flow = _ipv4(data)
                if flow is not None:
                    flows.add(flow[0], flow[1])
            elif linktype == LINKTYPE_CAN_SOCKETCAN and len(data) >= 8:
                can_id = struct.unpack("!I", data[:4])[0] & 0x1FFFFFFF
                frame = data[8 : 8 + data[4]]
                flows.add(("normal", can_id), _isotp_payload(frame))
                if frame:
                    flows.add(("extended", can_id, frame[0]), _isotp_payload(frame[1:]))
            if flows.found:
                return True
    return False
