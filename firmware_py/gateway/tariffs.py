"""Tariffs as the workshop buys them, the scopes each includes, and the scope each job needs.

Declared as data; docs/tickets.md shows the same tables (a test checks they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    DIAGNOSIS = "diagnosis"
    CODING = "coding"
    PROGRAMMING = "programming"
    SERVICE = "service"
    REPAIR_INFORMATION = "repair_information"
    INSPECTION_DATA = "inspection_data"
    HELP_DESK = "help_desk"


class JobKind(StrEnum):
    """Every job a user can run (the job runner's table of handlers uses these names)."""

    READ_VIN = "read_vin"
    IDENTIFY = "identify"
    READ_FAULT_MEMORY = "read_fault_memory"
    CLEAR_FAULT_MEMORY = "clear_fault_memory"
    READ_LIVE_DATA = "read_live_data"
    READ_DID = "read_did"
    CODING = "coding"
    PROGRAMMING = "programming"
    SERVICE_RESET = "service_reset"
    SERVICE_HISTORY = "service_history"
    EMISSIONS_DATA = "emissions_data"
    RAW_UDS = "raw_uds"
    REPAIR_INFORMATION = "repair_information"
    HELP_DESK_REQUEST = "help_desk_request"


#: The scope a job needs; ``None``: free. Free are reading the VIN, identifying the car and
#: reading its fault memory: a workshop must be able to see what is wrong with a car before it
#: buys anything, as any generic OBD scanner shows it. Everything that changes the car or
#: goes deeper (clearing, live data, raw requests, coding, programming, service functions) is paid.
JOB_SCOPE: dict[JobKind, Scope | None] = {
    JobKind.READ_VIN: None,
    JobKind.IDENTIFY: None,
    JobKind.READ_FAULT_MEMORY: None,
    JobKind.CLEAR_FAULT_MEMORY: Scope.DIAGNOSIS,
    JobKind.READ_LIVE_DATA: Scope.DIAGNOSIS,
    JobKind.READ_DID: Scope.DIAGNOSIS,
    JobKind.RAW_UDS: Scope.DIAGNOSIS,
    JobKind.CODING: Scope.CODING,
    JobKind.PROGRAMMING: Scope.PROGRAMMING,
    JobKind.SERVICE_RESET: Scope.SERVICE,
    JobKind.SERVICE_HISTORY: Scope.SERVICE,
    JobKind.EMISSIONS_DATA: Scope.INSPECTION_DATA,
    JobKind.REPAIR_INFORMATION: Scope.REPAIR_INFORMATION,
    JobKind.HELP_DESK_REQUEST: Scope.HELP_DESK,
}

HOUR, DAY = 3600, 86400


@dataclass(frozen=True)
class Tariff:
    id: str
    name: str
    price_eur: float
    scopes: frozenset[Scope]
    duration: int | None
    """validity in seconds, counted from activation on the box; None for one-use tickets"""
    uses: int | None = None
    """number of jobs the ticket allows; None: unlimited within its validity"""
    net: bool = False

    def __post_init__(self) -> None:
        if (self.duration is None) == (self.uses is None):
            raise ValueError(f"tariff {self.id}: give either a duration or a number of uses")


BASIC = frozenset(
    {
        Scope.DIAGNOSIS,
        Scope.CODING,
        Scope.PROGRAMMING,
        Scope.SERVICE,
        Scope.REPAIR_INFORMATION,
        Scope.INSPECTION_DATA,
    }
)

TARIFFS: dict[str, Tariff] = {
    t.id: t
    for t in (
        Tariff(
            "info-1m",
            "Informationssuche, 1 month",
            60,
            frozenset({Scope.REPAIR_INFORMATION}),
            30 * DAY,
        ),
        Tariff(
            "info-1y",
            "Informationssuche, 1 year",
            470,
            frozenset({Scope.REPAIR_INFORMATION}),
            365 * DAY,
        ),
        Tariff("basic-9h", "Basic, 9 hours", 9, BASIC, 9 * HOUR),
        Tariff("basic-1d", "Basic, 1 day", 30, BASIC, DAY),
        Tariff("basic-1w", "Basic, 1 week", 100, BASIC, 7 * DAY),
        Tariff("basic-1m", "Basic, 1 month", 350, BASIC, 30 * DAY),
        Tariff("basic-1y", "Basic, 1 year", 3570, BASIC, 365 * DAY),
        Tariff(
            "helpdesk",
            "Technical Help Desk request",
            25,
            frozenset({Scope.HELP_DESK}),
            None,
            uses=1,
            net=True,
        ),
    )
}


def tariffs_allowing(job: JobKind) -> tuple[str, ...]:
    """Names of the tariffs that allow ``job``, cheapest first."""
    scope = JOB_SCOPE[job]
    allowed = [t for t in TARIFFS.values() if scope is None or scope in t.scopes]
    return tuple(
        f"{t.name} ({t.price_eur:g} EUR{' net' if t.net else ''})"
        for t in sorted(allowed, key=lambda t: t.price_eur)
    )
