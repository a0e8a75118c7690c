"""What the ENET bridge lets through to the car: pure decisions over the UDS bytes of one
diagnostic message and the supply voltage, no sockets, no clock (docs/enet.md, "What the bridge
refuses").

The box stays in charge of safety while a workshop's own tester drives the car through it: below
the programming voltage floor an erase (RoutineControl start of routine 0xFF00) or a
RequestDownload (0x34) is answered to the tester with a negative response 0x22
(conditionsNotCorrect) and not sent to the car; every refusal says why, for the session log.

The guard also follows whether a download is in progress (a RequestDownload sent and its
RequestTransferExit not yet), so that a session whose ticket window ended is closed between
downloads, never in the middle of one.
"""

from __future__ import annotations

from dataclasses import dataclass

CONDITIONS_NOT_CORRECT = 0x22
ERASE_MEMORY = 0xFF00
#: services whose sub-function carries suppressPosRspMsgIndicationBit (ISO 14229-1)
SUBFUNCTION_SERVICES = frozenset({0x10, 0x11, 0x27, 0x28, 0x31, 0x3E, 0x85, 0x86, 0x87, 0x2C})


def battery_guarded(request: bytes) -> str | None:
    """What ``request`` is if it may only run above the programming voltage floor (an erase or a
    download), else None.

    Interim: the raw-request classification table (``firmware_py.uds.raw_requests``) replaces
    this once it is on main; until then this names only the two requests the bridge must guard.
    """
    if len(request) >= 4 and request[0] == 0x31 and request[1] & 0x7F == 0x01:
        if int.from_bytes(request[2:4], "big") == ERASE_MEMORY:
            return "RoutineControl start EraseMemory (0xFF00)"
    if request[:1] == b"\x34":
        return "RequestDownload (0x34)"
    return None


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

    def check(self, request: bytes, volts: float | None) -> Refusal | None:
        """None: relay ``request``; a :class:`Refusal`: answer the tester with its response.
        ``volts`` None means the voltage could not be read: a guarded request is then refused."""
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

    def sent(self, request: bytes) -> None:
        """A request went to the car: follow downloads."""
        if request[:1] in (b"\x34", b"\x35"):
            self.downloading = True
        elif request[:1] in (b"\x37", b"\x11", b"\x10"):
            self.downloading = False
