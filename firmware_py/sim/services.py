"""The simulated ECUs' UDS services and routines, declared as data.

:data:`SERVICES` says per service what :func:`~firmware_py.sim.response_behaviour.check_request`
checks before the handler runs (sessions, security, minimum length, sub-functions and their
sessions, security and sequence); :data:`ROUTINES` does the same for RoutineControl's routine
identifiers. An ECU without a flash region (no bootloader) has neither the programming session
nor the download services nor the programming security level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware_py.sim.response_behaviour import (
    EXTENDED,
    NON_DEFAULT,
    PROGRAMMING,
    Service,
    SubFunction,
)

LEVEL_CODING, LEVEL_PROGRAMMING = 0x01, 0x11  # security levels (requestSeed sub-functions)

RID_ERASE, RID_CHECK_MEMORY, RID_DEPENDENCIES, RID_SELF_TEST = 0xFF00, 0x0202, 0xFF01, 0x0203
# service functions (docs/simulator.md): Condition Based Service reset, battery registration
RID_CBS_RESET, RID_BATTERY_REGISTRATION = 0x1010, 0x1020
RID_MAP_ACTIVATION = 0x0D20  # a head unit's navigation map (firmware_py/sim/maps.py)


def _seed_sent(ecu: Any, request: bytes) -> bool:
    """sendKey only after requestSeed of the same level (else 0x24)."""
    return ecu.seed is not None and ecu.seed[0] == request[1] - 1


_ALL = SubFunction()
SERVICES: dict[int, Service] = {
    s.sid: s
    for s in (
        Service(
            0x10,
            "_session_control",
            min_length=2,
            suppress_bit=True,
            sub_functions={0x01: _ALL, 0x02: SubFunction(flash_only=True), 0x03: _ALL},
        ),
        Service(
            0x11,
            "_ecu_reset",
            min_length=2,
            suppress_bit=True,
            sub_functions=dict.fromkeys((0x01, 0x02, 0x03), _ALL),
        ),
        Service(0x14, "_clear_dtc", min_length=4),
        Service(
            0x19,
            "_read_dtc",
            min_length=2,
            sub_functions=dict.fromkeys((0x01, 0x02, 0x04, 0x06, 0x0A), _ALL),
        ),
        Service(0x22, "_read_did", min_length=3),
        Service(
            0x27,
            "_security_access",
            sessions=NON_DEFAULT,
            min_length=2,
            sub_functions={
                0x01: SubFunction(frozenset({EXTENDED})),
                0x02: SubFunction(frozenset({EXTENDED}), sequence=_seed_sent),
                0x11: SubFunction(frozenset({PROGRAMMING}), flash_only=True),
                0x12: SubFunction(frozenset({PROGRAMMING}), sequence=_seed_sent, flash_only=True),
            },
        ),
        Service(
            0x28,
            "_communication_control",
            sessions=NON_DEFAULT,
            min_length=2,
            suppress_bit=True,
            sub_functions=dict.fromkeys((0x00, 0x01, 0x02, 0x03), _ALL),
        ),
        Service(0x2E, "_write_did", sessions=NON_DEFAULT, min_length=4),
        Service(
            0x31,
            "_routine_control",
            min_length=4,
            suppress_bit=True,
            sub_functions=dict.fromkeys((0x01, 0x02, 0x03), _ALL),
        ),
        Service(
            0x34,
            "_request_download",
            sessions=frozenset({PROGRAMMING}),
            security=LEVEL_PROGRAMMING,
            min_length=3,
            flash_only=True,
        ),
        # TransferData and RequestTransferExit have no NRC 0x33 (ISO 14229-1 tables of their
        # NRCs): RequestDownload's security guards the transfer they continue (else 0x24)
        Service(
            0x36,
            "_transfer_data",
            sessions=frozenset({PROGRAMMING}),
            min_length=2,
            flash_only=True,
        ),
        Service(0x37, "_transfer_exit", sessions=frozenset({PROGRAMMING}), flash_only=True),
        Service(
            0x3E, "_tester_present", min_length=2, suppress_bit=True, sub_functions={0x00: _ALL}
        ),
        Service(
            0x85,
            "_control_dtc_setting",
            sessions=NON_DEFAULT,
            min_length=2,
            suppress_bit=True,
            sub_functions=dict.fromkeys((0x01, 0x02), _ALL),
        ),
    )
}


def services_for(has_flash: bool) -> dict[int, Service]:
    """The service table of one ECU."""
    table = {}
    for sid, service in SERVICES.items():
        own = service.for_ecu(has_flash)
        if own is not None:
            table[sid] = own
    return table


ROUTINE_NEEDS = frozenset({"", "flash", "cbs", "battery", "maps"})


@dataclass(frozen=True)
class Routine:
    """One routine identifier of RoutineControl (0x31)."""

    rid: int
    sessions: frozenset[int]
    """sessions it may run in (else 0x31, ISO 14229-1:2013 figure for 0x31)"""
    needs: str
    """what the ECU must have for the routine to exist: ``flash``, ``cbs``, ``battery``,
    ``maps`` or ``""``"""
    handler: str
    """name of the server's method that runs it (gets the routineControlOptionRecord)"""
    security: int | None = None
    """security level that must be unlocked (else 0x33)"""
    pending: int = 0
    """"response pending" frames before the answer to startRoutine"""

    def __post_init__(self) -> None:
        if self.needs not in ROUTINE_NEEDS:
            raise ValueError(f"routine 0x{self.rid:04X}: needs one of {sorted(ROUTINE_NEEDS)}")


_PROG = frozenset({PROGRAMMING})
ROUTINES: dict[int, Routine] = {
    r.rid: r
    for r in (
        Routine(RID_SELF_TEST, frozenset({EXTENDED}), "", "_self_test", pending=3),
        Routine(RID_ERASE, _PROG, "flash", "_erase", security=LEVEL_PROGRAMMING, pending=2),
        Routine(RID_CHECK_MEMORY, _PROG, "flash", "_check_memory", security=LEVEL_PROGRAMMING),
        Routine(
            RID_DEPENDENCIES, _PROG, "flash", "_check_dependencies", security=LEVEL_PROGRAMMING
        ),
        Routine(RID_CBS_RESET, frozenset({EXTENDED}), "cbs", "_reset_cbs_item"),
        Routine(RID_BATTERY_REGISTRATION, frozenset({EXTENDED}), "battery", "_register_battery"),
        Routine(RID_MAP_ACTIVATION, frozenset({EXTENDED}), "maps", "_activate_map"),
    )
}
