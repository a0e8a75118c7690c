"""What the ENET bridge lets through to the car: pure decisions over the UDS bytes of one
diagnostic message, the supply voltage and what the session's tickets allow; no sockets, no clock
(docs/enet.md, "What the bridge refuses").

The box stays in charge of safety while a workshop's own tester drives the car through it. Each
request is classed by the one raw-request table (:mod:`firmware_py.uds.raw_requests`) and needs
the scope its class needs (:data:`firmware_py.gateway.tariffs.RAW_CLASS_SCOPE`: erase and
download need ``raw_programming``, as a raw request from the page or the portal does). Below the
programming voltage floor a request that starts changing an ECU's software - an erase (routine
0xFF00 started), a RequestDownload (0x34) or a RequestFileTransfer (0x38) - is refused. A refused
request is answered to the tester as an ECU would refuse it, ``7F <sid> 22``
(conditionsNotCorrect), is not sent to the car, and says why, for the session log.

The guard also follows whether a download is in progress (a RequestDownload sent and its
RequestTransferExit not yet), so that a session whose ticket window ended is closed between
downloads, never in the middle of one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from firmware_py.gateway.tariffs import RAW_CLASS_SCOPE, Scope
from firmware_py.uds.raw_requests import RawClass, classify

CONDITIONS_NOT_CORRECT = 0x22
ERASE_MEMORY = 0xFF00
#: services whose sub-function carries suppressPosRspMsgIndicationBit (ISO 14229-1)
SUBFUNCTION_SERVICES = frozenset({0x10, 0x11, 0x27, 0x28, 0x31, 0x3E, 0x85, 0x86, 0x87, 0x2C})


@functools.lru_cache(maxsize=1024)
def _classified(head: bytes) -> tuple[RawClass, str]:
    """What a request does, by its first four bytes (service, sub-function or session, routine
    id: all the table looks at); cached, the bridge asks for every message it relays."""
    raw = classify(head)
    return raw.raw_class, raw.what


def classified(request: bytes) -> tuple[RawClass, str]:
    """(class, what) of a request, from the cache."""
    return _classified(bytes(request[:4]))


def battery_guarded(request: bytes) -> str | None:
    """What ``request`` is if it starts changing an ECU's software (an erase, a download, a file
    transfer), which only runs above the programming voltage floor; else None. TransferData and
    RequestTransferExit continue what a download began and are not cut off."""
    sid = request[0] if request else None
    if sid not in (0x31, 0x34, 0x38):
        return None
    raw_class, what = classified(request)
    if raw_class is not RawClass.PROGRAMMING:
        return None
    if sid in (0x34, 0x38):
        return what
    if request[1] & 0x7F == 0x01 and request[2:4] == ERASE_MEMORY.to_bytes(2):
        return what
    return None


def required_scope(request: bytes) -> Scope:
    """The scope a ticket must include for the bridge to relay ``request``."""
    return RAW_CLASS_SCOPE[classified(request)[0]]


def negative_response(request: bytes, nrc: int = CONDITIONS_NOT_CORRECT) -> bytes:
    return bytes([0x7F, request[0] if request else 0x00, nrc])


def suppresses_positive_response(request: bytes) -> bool:
    """Whether the tester asked the ECU not to answer positively (bit 7 of the sub-function)."""
    return len(request) >= 2 and request[0] in SUBFUNCTION_SERVICES and bool(request[1] & 0x80)


@dataclass(frozen=True)
class Refusal:
    request: bytes
    what: str
    reason: str
    volts: float | None

    @property
    def response(self) -> bytes:
        return negative_response(self.request)

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request[:16].hex(" "),
            "what": self.what,
            "reason": self.reason,
            "volts": self.volts,
            "nrc": CONDITIONS_NOT_CORRECT,
        }


class Guard:
    """Per bridge session: the voltage floor and whether a download is in progress."""

    def __init__(self, min_voltage: float) -> None:
        self.min_voltage = min_voltage
        self.downloading = False

    def needs_voltage(self, request: bytes) -> bool:
        return battery_guarded(request) is not None

    def check(
        self, request: bytes, volts: float | None, *, entitled: bool = True
    ) -> Refusal | None:
        """None: relay ``request``; a :class:`Refusal`: answer the tester with its response.
        ``entitled``: whether the session's tickets include :func:`required_scope`. ``volts``
        None means the voltage could not be read: a guarded request is then refused."""
        if not entitled:
            raw_class, named = classified(request)
            scope = RAW_CLASS_SCOPE[raw_class]
            return Refusal(
                request,
                named,
                f"no ticket on the box includes {scope.value}, which {raw_class.value} "
                "requests need: add a ticket of a tariff that includes it",
                volts,
            )
        what = battery_guarded(request)
        if what is None:
            return None
        if volts is None:
            return Refusal(
                request,
                what,
                "the supply voltage could not be read; the box does not start it unchecked",
                None,
            )
        if volts < self.min_voltage:
            return Refusal(
                request,
                what,
                f"supply voltage {volts:.2f} V is below the programming floor "
                f"{self.min_voltage:.1f} V: connect a battery charger",
                volts,
            )
        return None

    def continues_download(self, request: bytes) -> bool:
        """TransferData and RequestTransferExit of a download that began under a valid ticket:
        relayed to the end, as a programming job is never cut off by its ticket's end."""
        return self.downloading and request[:1] in (b"\x36", b"\x37")

    def answered(self, response: bytes) -> None:
        """An ECU's answer came back: a refused download is no download in progress."""
        if response[:1] == b"\x7f" and response[1:2] in (b"\x34", b"\x35", b"\x38"):
            if response[2:3] != b"\x78":  # response pending: the answer is still to come
                self.downloading = False

    def sent(self, request: bytes) -> None:
        """A request went to the car: follow downloads."""
        if request[:1] in (b"\x34", b"\x35", b"\x38"):
            self.downloading = True
        elif request[:1] in (b"\x37", b"\x11", b"\x10"):
            self.downloading = False
