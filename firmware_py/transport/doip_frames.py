"""DoIP (ISO 13400-2) messages as a sans-I/O stream codec, for code that sits on the *server*
side of a DoIP socket (the ENET bridge faces the workshop's tester): bytes in, messages out.

doipclient is a client library: its parser lives inside its socket client. Its payload classes
(``doipclient.messages``, one class per payload type with ``pack``/``unpack``) are what we use
here for the payloads; this module adds only the generic header (ISO 13400-2 table 16) and a
bounded stream decoder, so a peer that announces a huge payload cannot make us buffer it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from doipclient.messages import payload_message_to_type, payload_type_to_message

from firmware_py.errors import FrameError

HEADER = struct.Struct(">BBHI")
SUPPORTED_VERSIONS = (0x01, 0x02, 0x03)
DEFAULT_VERSION = 0xFF
"""allowed in vehicle identification requests only (ISO 13400-2 table 16)"""
MAX_PAYLOAD = 0x10010 + 4
"""the largest payload accepted from a peer: what HSFZ carries in one frame (a TransferData of
64 KiB with its header, as EdiabasLib's buffer) plus the four address bytes"""

DIAGNOSTIC_MESSAGE = 0x8001
DIAGNOSTIC_ACK = 0x8002
DIAGNOSTIC_NACK = 0x8003
ROUTING_ACTIVATION_REQUEST = 0x0005
ROUTING_ACTIVATION_RESPONSE = 0x0006
ALIVE_CHECK_REQUEST = 0x0007
ALIVE_CHECK_RESPONSE = 0x0008
GENERIC_NACK = 0x0000


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
                f"malformed DoIP message type 0x{self.payload_type:04X}: {err}"
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
                raise FrameError("DoIP header with a broken pattern (version and its inverse)")
            if length > self.max_payload:
                buf.clear()
                raise FrameError(
                    f"DoIP message announces {length} bytes, more than the {self.max_payload} accepted"
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
        raise FrameError(f"not one DoIP message: {data[:16].hex(' ')}")
    return messages[0]
