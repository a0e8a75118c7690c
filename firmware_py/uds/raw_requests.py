"""What a raw UDS request does, by its bytes: the one table every relay of raw requests (the
``raw_uds`` job for the tablet, the portal and ``vci uds``; the ENET bridge when it relays) uses
to decide what a request needs before it reaches an ECU.

A request is classed by its service id (ISO 14229-1), for DiagnosticSessionControl by the session
it asks for and for RoutineControl by the routine id (Annex F). The sub-function's
suppressPosRspMsgIndicationBit does not change what a request does, so it is masked. A service,
session or routine this table does not know, and a request too short to say what it does, is
classed :attr:`RawClass.UNKNOWN`, which the gateway treats like programming (the most
restrictive). Which entitlement each class needs is the gateway's business
(:data:`firmware_py.gateway.tariffs.RAW_CLASS_SCOPE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from udsoncan import Routine
from udsoncan.BaseService import BaseService
from udsoncan.services import DiagnosticSessionControl


class RawClass(StrEnum):
    READ = "read"
    """reads data, fault memory or memory, and what reads need (tester present, the default and
    the extended diagnostic session); changes nothing"""
    CONTROL = "control"
    """clears fault memory, drives actuators (IO control), switches DTC setting or an ECU's
    communication on or off: changes what the car does now, not its software or coding"""
    WRITE = "write"
    """writes data or memory (coding), unlocks an ECU (security access), defines data
    identifiers or timing: changes what the ECU keeps"""
    ROUTINE = "routine"
    """starts, stops or asks for the results of an ECU routine (self tests, service functions)"""
    RESET = "reset"
    """resets an ECU"""
    PROGRAMMING = "programming"
    """the programming session, erasing memory, checking programming dependencies, downloads,
    uploads, transfers and file transfers: changes the ECU's software"""
    UNKNOWN = "unknown"
    """a service, session or routine this table does not know (or a request too short to say
    what it does): treated like the most restrictive class"""


SUPPRESS_POSITIVE_RESPONSE = 0x80

#: Services whose class does not depend on their parameters.
SERVICE_CLASS: dict[int, RawClass] = {
    0x11: RawClass.RESET,  # ECUReset
    0x14: RawClass.CONTROL,  # ClearDiagnosticInformation
    0x19: RawClass.READ,  # ReadDTCInformation
    0x22: RawClass.READ,  # ReadDataByIdentifier
    0x23: RawClass.READ,  # ReadMemoryByAddress
    0x24: RawClass.READ,  # ReadScalingDataByIdentifier
    0x27: RawClass.WRITE,  # SecurityAccess
    0x28: RawClass.CONTROL,  # CommunicationControl
    0x2A: RawClass.READ,  # ReadDataByPeriodicIdentifier
    0x2C: RawClass.WRITE,  # DynamicallyDefineDataIdentifier
    0x2E: RawClass.WRITE,  # WriteDataByIdentifier
    0x2F: RawClass.CONTROL,  # InputOutputControlByIdentifier
    0x34: RawClass.PROGRAMMING,  # RequestDownload
    0x35: RawClass.PROGRAMMING,  # RequestUpload
    0x36: RawClass.PROGRAMMING,  # TransferData
    0x37: RawClass.PROGRAMMING,  # RequestTransferExit
    0x38: RawClass.PROGRAMMING,  # RequestFileTransfer
    0x3D: RawClass.WRITE,  # WriteMemoryByAddress
    0x3E: RawClass.READ,  # TesterPresent
    0x83: RawClass.WRITE,  # AccessTimingParameter
    0x85: RawClass.CONTROL,  # ControlDTCSetting
}

#: DiagnosticSessionControl (0x10) by the session asked for.
SESSION_CLASS: dict[int, RawClass] = {
    DiagnosticSessionControl.Session.defaultSession: RawClass.READ,
    DiagnosticSessionControl.Session.extendedDiagnosticSession: RawClass.READ,
    DiagnosticSessionControl.Session.programmingSession: RawClass.PROGRAMMING,
    # safetySystemDiagnosticSession (0x04, airbag disposal) and manufacturer sessions: unknown
}

#: RoutineControl (0x31) by routine id, first match (ISO 14229-1 Annex F); ``None``: unknown.
ROUTINE_CLASS: tuple[tuple[range, RawClass | None], ...] = (
    (range(Routine.EraseMemory, Routine.EraseMemory + 1), RawClass.PROGRAMMING),
    (
        range(Routine.CheckProgrammingDependencies, Routine.CheckProgrammingDependencies + 1),
        RawClass.PROGRAMMING,
    ),
    (range(Routine.EraseMirrorMemoryDTCs, Routine.EraseMirrorMemoryDTCs + 1), RawClass.CONTROL),
    (range(0x0100, 0xE200), RawClass.ROUTINE),  # tachograph, manufacturer and OBD tests
    (range(0xE200, 0xE300), None),  # deploy loop and safety systems (airbags): unknown
    (range(0xF000, 0xFF00), RawClass.ROUTINE),  # system supplier specific
)


@dataclass(frozen=True)
class RawRequest:
    """A raw request and what it does."""

    request: bytes
    raw_class: RawClass
    what: str
    """the service (and session or routine) by its ISO 14229 name, for logs and refusals"""

    @property
    def changes_car(self) -> bool:
        """Everything but a read: written to the session log."""
        return self.raw_class is not RawClass.READ

    def to_dict(self) -> dict[str, str]:
        return {"class": self.raw_class.value, "what": self.what, "request": self.request.hex(" ")}


def _service_name(sid: int) -> str:
    service = BaseService.from_request_id(sid)
    return service.get_name() if service is not None else f"service 0x{sid:02X}"


def classify(request: bytes) -> RawRequest:
    """What ``request`` (a UDS request, service id first) does."""
    if not request:
        return RawRequest(request, RawClass.UNKNOWN, "empty request")
    sid = request[0]
    name = _service_name(sid)
    if sid == 0x10:
        if len(request) < 2:
            return RawRequest(request, RawClass.UNKNOWN, f"{name} without a session")
        session = request[1] & ~SUPPRESS_POSITIVE_RESPONSE
        label = DiagnosticSessionControl.Session.get_name(session) or "session"
        what = f"{name} {label} (0x{session:02X})"
        return RawRequest(request, SESSION_CLASS.get(session, RawClass.UNKNOWN), what)
    if sid == 0x31:
        if len(request) < 4:
            return RawRequest(request, RawClass.UNKNOWN, f"{name} without a routine id")
        routine = int.from_bytes(request[2:4], "big")
        what = f"{name} {Routine.name_from_id(routine)} (0x{routine:04X})"
        for ids, raw_class in ROUTINE_CLASS:
            if routine in ids:
                return RawRequest(request, raw_class or RawClass.UNKNOWN, what)
        return RawRequest(request, RawClass.UNKNOWN, what)
    return RawRequest(request, SERVICE_CLASS.get(sid, RawClass.UNKNOWN), name)
