"""Traces of the vehicle link in pcap files, which Wireshark (and Scapy) decode: DoIP as TCP
segments in IPv4 (link type 228, port 13400: Wireshark's DoIP and UDS dissectors), CAN frames as
SocketCAN frames (link type 227: its ISO-TP and UDS dissectors).

The IPv4/TCP headers around DoIP messages are reconstructed from the connection's addresses with
running sequence numbers (the kernel's own segments are not visible from user space); every DoIP
message is one segment, or several when it is longer than an IPv4 packet carries."""

from __future__ import annotations

import io
import logging
import struct
import threading
import time
from pathlib import Path
from typing import BinaryIO

import can

log = logging.getLogger(__name__)

LINKTYPE_IPV4 = 228
LINKTYPE_CAN_SOCKETCAN = 227
MAX_SEGMENT = 0xFFFF - 40
"""TCP payload bytes per traced segment: a longer message (a 64 KiB TransferData, or what one
read returned) is written as several segments, as TCP would have carried it"""


class PcapWriter:
    """A pcap file. Each packet reaches the file at once, or with ``flush_every`` (seconds) at
    the first packet after that time and at close (a busy relay then writes in batches)."""

    def __init__(self, path: Path, linktype: int, *, flush_every: float = 0.0) -> None:
        self.path = path
        self.flush_every = flush_every
        self._flushed = time.monotonic()
        self._lock = threading.Lock()
        self._f: BinaryIO
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(path, "wb")  # noqa: SIM115 - kept open for the link's lifetime
        except OSError as err:
            log.warning("no trace %s: %s", path, err)
            self._f = io.BytesIO()
            self._f.close()
            return
        try:
            self._f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        except OSError as err:
            log.warning("trace %s not written: %s", path, err)
            self._close()

    def packet(
        self, data: bytes | memoryview, ts: float | None = None, *, head: bytes = b""
    ) -> None:
        """One captured packet: ``head`` (e.g. reconstructed IP and TCP headers) then ``data``,
        written without joining them (a 64 KiB segment is not copied again). A trace that cannot
        be written (a full disk) stops, with one warning; it never breaks the link it watches."""
        ts = time.time() if ts is None else ts
        sec, usec = int(ts), int((ts % 1) * 1e6)
        size = len(head) + len(data)
        with self._lock:
            if self._f.closed:
                return
            try:
                self._f.write(struct.pack("<IIII", sec, usec, min(size, 65535), size) + head)
                self._f.write(memoryview(data)[: max(0, 65535 - len(head))])
                if self.flush_every <= 0 or time.monotonic() - self._flushed >= self.flush_every:
                    self._f.flush()
                    self._flushed = time.monotonic()
            except OSError as err:
                log.warning("trace %s stopped: %s", self.path, err)
                self._close()

    def _close(self) -> None:
        try:
            self._f.close()
        except OSError as err:  # the last buffered bytes did not fit: the trace is cut short
            log.warning("trace %s cut short: %s", self.path, err)

    def close(self) -> None:
        with self._lock:
            self._close()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class DoipTrace:
    """DoIP (or HSFZ) messages of one TCP connection, both directions. Several connections may
    share one file: pass ``pcap`` (a :class:`PcapWriter` of link type 228) instead of ``path``;
    the owner of a shared writer closes it."""

    def __init__(
        self,
        path: Path | None,
        local: tuple[str, int],
        remote: tuple[str, int],
        *,
        pcap: PcapWriter | None = None,
    ) -> None:
        if pcap is None:
            if path is None:
                raise ValueError("DoipTrace needs a path or a shared pcap writer")
            pcap = PcapWriter(path, LINKTYPE_IPV4)
        self.owns_pcap = path is not None
        self.pcap = pcap
        self.local, self.remote = local, remote
        self.seq = {"tx": 1000, "rx": 5000}

    def _segment(
        self, src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, length: int
    ) -> bytes:
        """The IPv4 and TCP headers of a segment carrying ``length`` payload bytes."""
        import socket

        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, 0x18, 65535, 0, 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(tcp) + length,
            0,
            0x4000,
            64,
            6,
            0,
            socket.inet_aton(src[0]),
            socket.inet_aton(dst[0]),
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        return ip + tcp

    def tx(self, data: bytes) -> None:
        view = memoryview(data)
        for at in range(0, len(data), MAX_SEGMENT):  # an IPv4 packet carries at most 64 KiB
            chunk = view[at : at + MAX_SEGMENT]
            head = self._segment(
                self.local, self.remote, self.seq["tx"], self.seq["rx"], len(chunk)
            )
            self.pcap.packet(chunk, head=head)
            self.seq["tx"] = (self.seq["tx"] + len(chunk)) & 0xFFFFFFFF

    def rx(self, data: bytes) -> None:
        view = memoryview(data)
        for at in range(0, len(data), MAX_SEGMENT):
            chunk = view[at : at + MAX_SEGMENT]
            head = self._segment(
                self.remote, self.local, self.seq["rx"], self.seq["tx"], len(chunk)
            )
            self.pcap.packet(chunk, head=head)
            self.seq["rx"] = (self.seq["rx"] + len(chunk)) & 0xFFFFFFFF

    def close(self) -> None:
        if self.owns_pcap:
            self.pcap.close()


class CanTrace(can.Listener):
    """CAN frames in SocketCAN's layout; received frames come from the notifier, sent ones from
    :meth:`tx` (the link wraps its bus's ``send``)."""

    def __init__(self, path: Path) -> None:
        self.pcap = PcapWriter(path, LINKTYPE_CAN_SOCKETCAN)

    def _frame(self, msg: can.Message) -> bytes:
        can_id = msg.arbitration_id | (0x80000000 if msg.is_extended_id else 0)
        data = bytes(msg.data)[:8]
        return struct.pack("!IB3x", can_id, len(data)) + data.ljust(8, b"\0")

    def on_message_received(self, msg: can.Message) -> None:
        self.pcap.packet(self._frame(msg), msg.timestamp or None)

    def tx(self, msg: can.Message) -> None:
        self.pcap.packet(self._frame(msg))

    def stop(self) -> None:
        self.pcap.close()
