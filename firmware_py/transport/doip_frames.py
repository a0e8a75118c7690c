"""DoIP (ISO 13400-2) messages as a sans-I/O codec, for code that sits on the *server* side of a
DoIP socket (the ENET bridge faces the workshop's tester; the simulated vehicle's entity):
bytes in, messages out.

doipclient is a client library: its parser lives inside its socket client. Its payload classes
(``doipclient.messages``, one class per payload type with ``pack``/``unpack``) are what we use
here for the payloads; this module adds only the generic header (ISO 13400-2 table 16), its
validation as an entity does it (:func:`check_header`, figure 7 of the 2019 edition, with the
code tables), and a bounded stream decoder, so a peer that announces a huge payload cannot make
us buffer it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from doipclient.messages import payload_message_to_type, payload_type_to_message

from firmware_py.errors import FrameError
from firmware_py.i18n import N_

HEADER = struct.Struct(">BBHI")
SUPPORTED_VERSIONS = (0x01, 0x02, 0x03)
DEFAULT_VERSION = 0xFF
"""allowed in vehicle identification requests only (ISO 13400-2 table 16)"""
MAX_PAYLOAD = 0x10010 + 4
"""the largest payload accepted from a peer: what HSFZ carries in one frame (a TransferData of
64 KiB with its header, as EdiabasLib's buffer) plus the four address bytes"""


class PayloadType(IntEnum):
    """ISO 13400-2 table 17."""

    GENERIC_NACK = 0x0000
    VEHICLE_IDENTIFICATION_REQUEST = 0x0001
    VEHICLE_IDENTIFICATION_REQUEST_EID = 0x0002
    VEHICLE_IDENTIFICATION_REQUEST_VIN = 0x0003
    VEHICLE_ANNOUNCEMENT = 0x0004
    ROUTING_ACTIVATION_REQUEST = 0x0005
    ROUTING_ACTIVATION_RESPONSE = 0x0006
    ALIVE_CHECK_REQUEST = 0x0007
    ALIVE_CHECK_RESPONSE = 0x0008
    ENTITY_STATUS_REQUEST = 0x4001
    ENTITY_STATUS_RESPONSE = 0x4002
    POWER_MODE_REQUEST = 0x4003
    POWER_MODE_RESPONSE = 0x4004
    DIAGNOSTIC_MESSAGE = 0x8001
    DIAGNOSTIC_ACK = 0x8002
    DIAGNOSTIC_NACK = 0x8003


# the names the ENET bridge uses
DIAGNOSTIC_MESSAGE = PayloadType.DIAGNOSTIC_MESSAGE
ROUTING_ACTIVATION_REQUEST = PayloadType.ROUTING_ACTIVATION_REQUEST
ALIVE_CHECK_REQUEST = PayloadType.ALIVE_CHECK_REQUEST
ALIVE_CHECK_RESPONSE = PayloadType.ALIVE_CHECK_RESPONSE
GENERIC_NACK = PayloadType.GENERIC_NACK


class GenericNack(IntEnum):
    """ISO 13400-2 table 19."""

    INCORRECT_PATTERN = 0x00
    UNKNOWN_PAYLOAD_TYPE = 0x01
    MESSAGE_TOO_LARGE = 0x02
    OUT_OF_MEMORY = 0x03
    INVALID_PAYLOAD_LENGTH = 0x04


class RoutingCode(IntEnum):
    """ISO 13400-2 table 25."""

    UNKNOWN_SOURCE_ADDRESS = 0x00
    ALL_SOCKETS_REGISTERED = 0x01
    DIFFERENT_SOURCE_ADDRESS = 0x02
    SOURCE_ADDRESS_ACTIVE_ELSEWHERE = 0x03
    UNSUPPORTED_ACTIVATION_TYPE = 0x06
    SUCCESS = 0x10


class DiagNack(IntEnum):
    """ISO 13400-2 table 29."""

    INVALID_SOURCE_ADDRESS = 0x02
    UNKNOWN_TARGET_ADDRESS = 0x03
    MESSAGE_TOO_LARGE = 0x04
    TARGET_UNREACHABLE = 0x06


@dataclass(frozen=True)
class Message:
    """One DoIP message: protocol version, payload type and the payload bytes."""

    version: int
    payload_type: int
    payload: bytes

    def encode(self) -> bytes:
        return pack(self.payload_type, self.payload, self.version)

    def parsed(self) -> Any:
        """The payload as doipclient's message object (None for a type it does not know)."""
        cls: Any = payload_type_to_message.get(self.payload_type)
        if cls is None:
            return None
        try:
            return cls.unpack(self.payload, len(self.payload))
        except (struct.error, IndexError, ValueError) as err:
            raise FrameError(
                N_("malformed DoIP message type 0x{payload_type}: {err}"),
                values={"payload_type": format(self.payload_type, "04X"), "err": err},
            ) from err

    @property
    def diagnostic(self) -> tuple[int, int, bytes] | None:
        """(source, target, UDS bytes) of a diagnostic message, else None."""
        if self.payload_type != DIAGNOSTIC_MESSAGE or len(self.payload) < 5:
            return None
        source, target = struct.unpack_from(">HH", self.payload)
        return source, target, self.payload[4:]


def pack(payload_type: int, payload: bytes, version: int = 0x02) -> bytes:
    return HEADER.pack(version, version ^ 0xFF, payload_type, len(payload)) + payload


def pack_message(message: Any, version: int = 0x02) -> bytes:
    """A doipclient message object with its generic header."""
    return pack(payload_message_to_type[type(message)], bytes(message.pack()), version)


class Decoder:
    """Splits a TCP byte stream into DoIP messages. A header with a broken pattern (the version's
    inverse) or announcing more than ``max_payload`` raises :class:`FrameError`: the stream is out
    of step and the connection must be closed (ISO 13400-2 figure 7 closes the socket too)."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        out = []
        buf = self._buffer
        while len(buf) >= HEADER.size:
            version, inverse, payload_type, length = HEADER.unpack_from(buf)
            if inverse != version ^ 0xFF:
                buf.clear()
                raise FrameError(N_("DoIP header with a broken pattern (version and its inverse)"))
            if length > self.max_payload:
                buf.clear()
                raise FrameError(
                    N_(
                        "DoIP message announces {length} bytes, more than the {max_payload} accepted"
                    ),
                    values={"length": length, "max_payload": self.max_payload},
                )
            end = HEADER.size + length
            if len(buf) < end:
                break
            out.append(Message(version, payload_type, bytes(buf[HEADER.size : end])))
            del buf[:end]
        return out

    @property
    def pending(self) -> int:
        return len(self._buffer)


def decode_datagram(data: bytes) -> Message:
    """One message from one UDP datagram."""
    decoder = Decoder()
    messages = decoder.feed(data)
    if len(messages) != 1 or decoder.pending:
        raise FrameError(N_("not one DoIP message: {value}"), values={"value": data[:16].hex(" ")})
    return messages[0]


# -- header validation as a DoIP entity does it (ISO 13400-2:2019 figure 7) ----------------------

#: fixed payload lengths of what an entity receives (others: see _length_ok)
FIXED_LENGTH = {
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST: 0,
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST_EID: 6,
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST_VIN: 17,
    PayloadType.ALIVE_CHECK_REQUEST: 0,
    PayloadType.ALIVE_CHECK_RESPONSE: 2,
    PayloadType.ENTITY_STATUS_REQUEST: 0,
    PayloadType.POWER_MODE_REQUEST: 0,
}
#: payload types only an entity sends: one it receives is an unknown payload type
ENTITY_SENDS = frozenset(
    {
        PayloadType.GENERIC_NACK,
        PayloadType.VEHICLE_ANNOUNCEMENT,
        PayloadType.ROUTING_ACTIVATION_RESPONSE,
        PayloadType.ENTITY_STATUS_RESPONSE,
        PayloadType.POWER_MODE_RESPONSE,
        PayloadType.DIAGNOSTIC_ACK,
        PayloadType.DIAGNOSTIC_NACK,
    }
)


@dataclass
class HeaderCheck:
    """Result of checking one generic header (ISO 13400-2 figure 7)."""

    version: int
    payload_type: int
    length: int
    nack: GenericNack | None = None
    close: bool = False


def check_header(data: bytes, *, max_length: int) -> HeaderCheck:
    """Validate an 8-byte generic DoIP header as an entity receives it: the NACK it answers with
    (None: accepted) and whether it then closes the socket. Pure; never raises for any 8 bytes."""
    version, inverse, payload_type, length = HEADER.unpack(data)
    result = HeaderCheck(version, payload_type, length)
    identification = payload_type in (0x0001, 0x0002, 0x0003)
    if inverse != version ^ 0xFF or not (
        version in SUPPORTED_VERSIONS or (version == DEFAULT_VERSION and identification)
    ):
        result.nack, result.close = GenericNack.INCORRECT_PATTERN, True
    elif payload_type not in PayloadType._value2member_map_ or payload_type in ENTITY_SENDS:
        result.nack = GenericNack.UNKNOWN_PAYLOAD_TYPE
    elif length > max_length:
        result.nack = GenericNack.MESSAGE_TOO_LARGE
    elif not _length_ok(PayloadType(payload_type), length):
        result.nack, result.close = GenericNack.INVALID_PAYLOAD_LENGTH, True
    return result


def _length_ok(payload_type: PayloadType, length: int) -> bool:
    if payload_type in FIXED_LENGTH:
        return length == FIXED_LENGTH[payload_type]
    if payload_type == PayloadType.ROUTING_ACTIVATION_REQUEST:
        return length in (7, 11)
    if payload_type == PayloadType.DIAGNOSTIC_MESSAGE:
        return length >= 5
    return True
