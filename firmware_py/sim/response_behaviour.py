"""The general server response behaviour of ISO 14229-1:2013 (7.5, figures 5 and 6), once for
every service of the simulated ECUs.

A service declares what it needs as data (:class:`Service`: the sessions it is supported in, the
security level it needs, its minimum length, its sub-functions and their sessions, security and
sequence rules); :func:`check_request` walks the standard's order and raises :class:`Nack` with the
first negative response code that applies:

1. service supported? (0x11)
2. service supported in the active session? (0x7F)
3. security for the service? (0x33)
4. minimum length (0x13)
5. sub-function supported? (0x12)
6. sub-function supported in the active session? (0x7E)
7. security for the sub-function? (0x33)
8. request sequence for the sub-function? (0x24)

Only then does the service's handler run; it does the checks that need the request's parameters
(total length 0x13, out of range 0x31, conditions 0x22, ...) and the service's work.
:func:`final_response` applies the suppression rules of 7.5.5 (suppressPosRspMsgIndicationBit and
functional addressing, both only while no "response pending" has been sent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol


class Nrc(IntEnum):
    """Negative response codes, ISO 14229-1 table A.1."""

    GENERAL_REJECT = 0x10
    SERVICE_NOT_SUPPORTED = 0x11
    SUB_FUNCTION_NOT_SUPPORTED = 0x12
    INCORRECT_MESSAGE_LENGTH = 0x13
    RESPONSE_TOO_LONG = 0x14
    CONDITIONS_NOT_CORRECT = 0x22
    REQUEST_SEQUENCE_ERROR = 0x24
    REQUEST_OUT_OF_RANGE = 0x31
    SECURITY_ACCESS_DENIED = 0x33
    INVALID_KEY = 0x35
    EXCEEDED_NUMBER_OF_ATTEMPTS = 0x36
    REQUIRED_TIME_DELAY_NOT_EXPIRED = 0x37
    UPLOAD_DOWNLOAD_NOT_ACCEPTED = 0x70
    TRANSFER_DATA_SUSPENDED = 0x71
    WRONG_BLOCK_SEQUENCE_COUNTER = 0x73
    RESPONSE_PENDING = 0x78
    SUB_FUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION = 0x7E
    SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION = 0x7F


#: NRCs a server does not send to a functionally addressed request (ISO 14229-1:2013 7.5.5)
SUPPRESSED_ON_FUNCTIONAL = frozenset(
    {
        Nrc.SERVICE_NOT_SUPPORTED,
        Nrc.SUB_FUNCTION_NOT_SUPPORTED,
        Nrc.REQUEST_OUT_OF_RANGE,
        Nrc.SUB_FUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION,
        Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION,
    }
)

DEFAULT, PROGRAMMING, EXTENDED = 0x01, 0x02, 0x03
ALL_SESSIONS = frozenset({DEFAULT, PROGRAMMING, EXTENDED})
NON_DEFAULT = frozenset({PROGRAMMING, EXTENDED})
SUPPRESS_POS_RSP = 0x80  # suppressPosRspMsgIndicationBit, bit 7 of the sub-function byte


class Nack(Exception):
    """A negative response: the request is refused with ``nrc``."""

    def __init__(self, nrc: Nrc) -> None:
        super().__init__(f"NRC 0x{nrc:02X}")
        self.nrc = nrc


class ServerState(Protocol):
    """What the pipeline reads from a server: its active session and unlocked security level."""

    session: int
    unlocked: int | None


@dataclass(frozen=True)
class SubFunction:
    """One sub-function of a service (ISO 14229-1:2013 figure 6)."""

    sessions: frozenset[int] = ALL_SESSIONS
    """sessions it is supported in (else 0x7E)"""
    security: int | None = None
    """security level (requestSeed sub-function) that must be unlocked (else 0x33)"""
    sequence: Callable[[Any, bytes], bool] | None = None
    """False when the request comes out of sequence (0x24); gets the server and the request"""
    flash_only: bool = False
    """only an ECU with a flash region (a bootloader) has it"""


@dataclass(frozen=True)
class Service:
    """One service as the server declares it (ISO 14229-1:2013 figure 5)."""

    sid: int
    handler: str
    """name of the server's method that does the service's work"""
    sessions: frozenset[int] = ALL_SESSIONS
    """sessions it is supported in (else 0x7F)"""
    security: int | None = None
    """security level the whole service needs (else 0x33)"""
    min_length: int = 1
    """shortest request, SID included (else 0x13)"""
    sub_functions: Mapping[int, SubFunction] | None = None
    """None: the service has no sub-function parameter"""
    suppress_bit: bool = False
    """bit 7 of the sub-function byte is suppressPosRspMsgIndicationBit"""
    flash_only: bool = False
    """only an ECU with a flash region (a bootloader) has it"""
    _sub_mask: int = field(init=False, repr=False, default=0xFF)

    def __post_init__(self) -> None:
        if self.sub_functions is not None and self.min_length < 2:
            raise ValueError(f"service 0x{self.sid:02X}: a sub-function needs min_length >= 2")
        if self.suppress_bit and self.sub_functions is None:
            raise ValueError(f"service 0x{self.sid:02X}: suppress_bit needs sub-functions")
        object.__setattr__(self, "_sub_mask", 0x7F if self.suppress_bit else 0xFF)

    def sub_function(self, request: bytes) -> int:
        """The sub-function value (without suppressPosRspMsgIndicationBit)."""
        return request[1] & self._sub_mask

    def suppresses_positive_response(self, request: bytes) -> bool:
        return self.suppress_bit and len(request) > 1 and bool(request[1] & SUPPRESS_POS_RSP)

    def for_ecu(self, has_flash: bool) -> Service | None:
        """This service as an ECU with or without a flash region has it (None: not at all)."""
        if self.flash_only and not has_flash:
            return None
        if self.sub_functions is None or has_flash:
            return self
        subs = {k: v for k, v in self.sub_functions.items() if not v.flash_only}
        return Service(
            self.sid,
            self.handler,
            self.sessions,
            self.security,
            self.min_length,
            subs,
            self.suppress_bit,
        )


def check_request(services: Mapping[int, Service], request: bytes, state: ServerState) -> Service:
    """Walk ISO 14229-1:2013 figures 5 and 6 for ``request``; return the service whose handler
    is to run, or raise :class:`Nack` with the first NRC that applies."""
    service = services.get(request[0])
    if service is None:
        raise Nack(Nrc.SERVICE_NOT_SUPPORTED)
    if state.session not in service.sessions:
        raise Nack(Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION)
    if service.security is not None and state.unlocked != service.security:
        raise Nack(Nrc.SECURITY_ACCESS_DENIED)
    if len(request) < service.min_length:
        raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
    if service.sub_functions is not None:
        sub = service.sub_functions.get(service.sub_function(request))
        if sub is None:
            raise Nack(Nrc.SUB_FUNCTION_NOT_SUPPORTED)
        if state.session not in sub.sessions:
            raise Nack(Nrc.SUB_FUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION)
        if sub.security is not None and state.unlocked != sub.security:
            raise Nack(Nrc.SECURITY_ACCESS_DENIED)
        if sub.sequence is not None and not sub.sequence(state, request):
            raise Nack(Nrc.REQUEST_SEQUENCE_ERROR)
    return service


def negative(sid: int, nrc: int, *, functional: bool) -> bytes | None:
    """The negative response, or None where 7.5.5 suppresses it for a functional request."""
    if functional and nrc in SUPPRESSED_ON_FUNCTIONAL:
        return None
    return bytes([0x7F, sid, nrc])


def final_response(
    service: Service, request: bytes, response: bytes | None, *, pending: int
) -> bytes | None:
    """The positive response as sent: suppressed when the request set
    suppressPosRspMsgIndicationBit, unless "response pending" (0x78) went out first - then the
    final positive response is owed (ISO 14229-1:2013 7.5.5)."""
    if response is not None and service.suppresses_positive_response(request) and not pending:
        return None
    return response
