"""ISO 13400-2 messages as the simulated DoIP entity reads and writes them: the generic header,
its validation (figure 7 of the 2019 edition) and the code tables. Pure: bytes in, results out.

Server-side header handling is our own (doipclient is a client and does not answer); the
tables follow doipclient's and the standard's names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

HEADER = struct.Struct(">BBHI")
SUPPORTED_VERSIONS = (0x01, 0x02, 0x03)
DEFAULT_VERSION = 0xFF  # allowed in vehicle identification requests only
FUNCTIONAL_ADDRESSES = (0xE400, 0x00DF)
MAX_DATA_SIZE = 0x00100010  # largest diagnostic message we accept (entity status reports it)


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


#: fixed payload lengths (None: variable with a minimum, see _length_ok)
FIXED_LENGTH = {
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST: 0,
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST_EID: 6,
    PayloadType.VEHICLE_IDENTIFICATION_REQUEST_VIN: 17,
    PayloadType.ALIVE_CHECK_REQUEST: 0,
    PayloadType.ALIVE_CHECK_RESPONSE: 2,
    PayloadType.ENTITY_STATUS_REQUEST: 0,
    PayloadType.POWER_MODE_REQUEST: 0,
}


def pack(payload_type: int, payload: bytes, version: int = 0x02) -> bytes:
    return HEADER.pack(version, version ^ 0xFF, payload_type, len(payload)) + payload


@dataclass
class HeaderCheck:
    """Result of checking one generic header (ISO 13400-2 figure 7)."""

    version: int
    payload_type: int
    length: int
    nack: GenericNack | None = None
    close: bool = False


def check_header(data: bytes, *, max_length: int = MAX_DATA_SIZE) -> HeaderCheck:
    """Validate an 8-byte generic DoIP header. Pure; never raises for any 8 bytes."""
    version, inverse, payload_type, length = HEADER.unpack(data)
    result = HeaderCheck(version, payload_type, length)
    identification = payload_type in (0x0001, 0x0002, 0x0003)
    if inverse != version ^ 0xFF or not (
        version in SUPPORTED_VERSIONS or (version == DEFAULT_VERSION and identification)
    ):
        result.nack, result.close = GenericNack.INCORRECT_PATTERN, True
    elif payload_type not in PayloadType._value2member_map_ or payload_type in (
        PayloadType.GENERIC_NACK,
        PayloadType.VEHICLE_ANNOUNCEMENT,
        PayloadType.ROUTING_ACTIVATION_RESPONSE,
        PayloadType.ENTITY_STATUS_RESPONSE,
        PayloadType.POWER_MODE_RESPONSE,
        PayloadType.DIAGNOSTIC_ACK,
        PayloadType.DIAGNOSTIC_NACK,
    ):
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
