"""BMW HSFZ ("High-Speed-Fahrzeug-Zugang"), the ENET protocol of most F- and G-series cars, as a
sans-I/O codec: bytes in, frames out, and back. No sockets, no clock (docs/enet.md).

A frame is a 6-byte header - a 32-bit big-endian length of what follows the header, and a 16-bit
control word - then the data. Diagnostic messages (control word 0x0001) and their acknowledgements
(0x0002) start the data with a one-byte source and a one-byte target address; the UDS bytes follow.
The tester is 0xF4 by convention, the central gateway 0x10. Vehicle identification (0x0011) on
UDP 6811 is answered with text of the form ``DIAGADR10BMWMAC001A37...BMWVINWBA...``.

The framing follows the public descriptions of the protocol (Scapy's ``contrib/automotive/bmw/
hsfz.py``, EdiabasLib's ENET interface); our tests check agreement with Scapy's packets.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum

from firmware_py.errors import FrameError
from firmware_py.i18n import N_

HEADER = struct.Struct(">IH")
DIAG_PORT = 6801
CONTROL_PORT = 6811
TESTER_ADDRESS = 0xF4
GATEWAY_ADDRESS = 0x10
MAX_DATA = 0x10010
"""the largest frame data accepted: a TransferData of a 64 KiB block with its service id, counter
and the two address bytes fits; EdiabasLib's ENET buffer has the same size"""


class ControlWord(IntEnum):
    """HSFZ control words (the second field of the header)."""

    DIAGNOSTIC_MESSAGE = 0x0001
    ACKNOWLEDGE = 0x0002
    TERMINAL15 = 0x0010
    VEHICLE_IDENTIFICATION = 0x0011
    ALIVE_CHECK = 0x0012
    STATUS_DATA_INQUIRY = 0x0013
    INCORRECT_TESTER_ADDRESS = 0x0040
    INCORRECT_CONTROL_WORD = 0x0041
    INCORRECT_FORMAT = 0x0042
    INCORRECT_DESTINATION_ADDRESS = 0x0043
    MESSAGE_TOO_LARGE = 0x0044
    DIAGNOSTIC_APPLICATION_NOT_READY = 0x0045
    OUT_OF_MEMORY = 0x00FF


#: control words whose data starts with source and target address
ADDRESSED = frozenset({ControlWord.DIAGNOSTIC_MESSAGE, ControlWord.ACKNOWLEDGE})
#: control words by which the gateway says it could not take a frame
ERRORS = frozenset(c for c in ControlWord if c >= 0x40)


@dataclass(frozen=True)
class Frame:
    control: int
    data: bytes = b""

    def encode(self) -> bytes:
        if len(self.data) > MAX_DATA:
            raise FrameError(
                N_("HSFZ data of {n} bytes is larger than {max_data}"),
                values={"n": len(self.data), "max_data": MAX_DATA},
            )
        return HEADER.pack(len(self.data), self.control) + self.data

    @property
    def addressed(self) -> bool:
        return self.control in ADDRESSED and len(self.data) >= 2

    @property
    def source(self) -> int:
        return self.data[0]

    @property
    def target(self) -> int:
        return self.data[1]

    @property
    def payload(self) -> bytes:
        """The UDS bytes of a diagnostic message or acknowledgement."""
        return self.data[2:] if self.control in ADDRESSED else self.data

    def describe(self) -> str:
        try:
            name = ControlWord(self.control).name.lower()
        except ValueError:
            name = f"control 0x{self.control:04X}"
        if self.addressed:
            return f"{name} 0x{self.source:02X}->0x{self.target:02X} {self.payload.hex(' ')}"
        return f"{name} {self.data[:32].hex(' ')}"


def diagnostic_message(source: int, target: int, payload: bytes) -> Frame:
    if not (0 <= source <= 0xFF and 0 <= target <= 0xFF):
        raise FrameError(N_("HSFZ addresses are one byte each"))
    return Frame(ControlWord.DIAGNOSTIC_MESSAGE, bytes([source, target]) + payload)


def acknowledge(request: Frame, echo: int = 5) -> Frame:
    """The gateway's acknowledgement of a diagnostic message: the request's addresses and its
    first ``echo`` UDS bytes (EdiabasLib reads up to 13 bytes of frame for it)."""
    return Frame(ControlWord.ACKNOWLEDGE, request.data[: 2 + echo])


class Decoder:
    """Splits a TCP byte stream into frames. ``feed`` returns the frames completed so far; a
    header announcing more than ``max_data`` bytes raises :class:`FrameError` before anything is
    buffered for it (the connection must then be closed: the stream is out of step)."""

    def __init__(self, max_data: int = MAX_DATA) -> None:
        self.max_data = max_data
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        if self._buffer:
            self._buffer += data
            buf: bytes | bytearray = self._buffer
        else:
            buf = data  # the common case: frames start at the segment's start, no copy first
        frames, pos, size = [], 0, len(buf)
        while size - pos >= HEADER.size:
            length, control = HEADER.unpack_from(buf, pos)
            if length > self.max_data:
                self._buffer = bytearray()
                raise FrameError(
                    N_("HSFZ frame announces {length} bytes, more than the {max_data} accepted"),
                    values={"length": length, "max_data": self.max_data},
                )
            end = pos + HEADER.size + length
            if size < end:
                break
            frames.append(Frame(control, bytes(buf[pos + HEADER.size : end])))
            pos = end
        if pos == size:
            self._buffer = bytearray()
        elif pos or buf is not self._buffer:  # keep the rest (an incomplete frame) only
            self._buffer = bytearray(buf[pos:])
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buffer)


def decode_datagram(data: bytes) -> Frame:
    """One frame from one UDP datagram (identification on port 6811)."""
    decoder = Decoder()
    frames = decoder.feed(data)
    if len(frames) != 1 or decoder.pending:
        raise FrameError(N_("not one HSFZ frame: {value}"), values={"value": data[:16].hex(" ")})
    return frames[0]


# -- vehicle identification (UDP 6811) -----------------------------------------------------------

IDENTIFICATION_REQUEST = Frame(ControlWord.VEHICLE_IDENTIFICATION).encode()
_IDENT = re.compile(
    rb"DIAGADR(?P<diagadr>[0-9A-Fa-f]{1,2})BMWMAC(?P<mac>[0-9A-Fa-f]{12})BMWVIN(?P<vin>[A-HJ-NPR-Z0-9]{17})"
)


@dataclass(frozen=True)
class HsfzIdentity:
    """What a BMW gateway says of itself on UDP 6811."""

    diag_address: int
    """the gateway's diagnostic address, written in hex after DIAGADR (0x10: ``DIAGADR10``)"""
    mac: str
    vin: str

    def frame(self) -> Frame:
        """The identification answer (on UDP 6811, or on a TCP control connection)."""
        text = f"DIAGADR{self.diag_address:02X}BMWMAC{self.mac.upper()}BMWVIN{self.vin}"
        return Frame(ControlWord.VEHICLE_IDENTIFICATION, text.encode("ascii"))

    def encode(self) -> bytes:
        return self.frame().encode()


def parse_identification(data: bytes) -> HsfzIdentity:
    """The identity in an answer to :data:`IDENTIFICATION_REQUEST` (one datagram)."""
    frame = decode_datagram(data)
    if frame.control != ControlWord.VEHICLE_IDENTIFICATION:
        raise FrameError(
            N_("not an HSFZ identification answer: {value}"), values={"value": frame.describe()}
        )
    match = _IDENT.search(frame.data)
    if match is None:
        raise FrameError(
            N_("HSFZ identification without DIAGADR/MAC/VIN: {value}"),
            values={"value": repr(frame.data[:64])},
        )
    return HsfzIdentity(
        int(match["diagadr"], 16), match["mac"].decode().upper(), match["vin"].decode("ascii")
    )
