"""Tariffs as the workshop buys them, the scopes each includes, and the scope each job needs
(for a raw UDS request: the scope of what that request does, :func:`required_scope`).

Declared as data; docs/tickets.md shows the same tables (a test checks they agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from firmware_py.i18n import N_
from firmware_py.uds.raw_requests import RawClass, RawRequest, classify


class Scope(StrEnum):
    DIAGNOSIS = "diagnosis"
    CODING = "coding"
    PROGRAMMING = "programming"
    SERVICE = "service"
    REPAIR_INFORMATION = "repair_information"
    INSPECTION_DATA = "inspection_data"
    HELP_DESK = "help_desk"
    RAW_PROGRAMMING = "raw_programming"
    """erase, download and the programming session through raw requests: no package signature,
    no journal; for specialists (Engineering tariff), not part of Basic"""


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
    VEHICLE_TEST_REPORT = "vehicle_test_report"
    RAW_UDS = "raw_uds"
    ENET_BRIDGE = "enet_bridge"
    REPAIR_INFORMATION = "repair_information"
    MAP_UPDATE = "map_update"
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
    JobKind.RAW_UDS: Scope.DIAGNOSIS,  # the least; each request needs what it does (below)
    JobKind.ENET_BRIDGE: Scope.DIAGNOSIS,
    JobKind.CODING: Scope.CODING,
    JobKind.PROGRAMMING: Scope.PROGRAMMING,
    JobKind.SERVICE_RESET: Scope.SERVICE,
    JobKind.SERVICE_HISTORY: Scope.SERVICE,
    JobKind.EMISSIONS_DATA: Scope.INSPECTION_DATA,
    # The workshop's test report reads every ECU's fault memory, the battery and the service
    # items and changes nothing: diagnosis, as reading live data is (not service, whose scope is
    # for the resets that change the car). More than the free fault read: it is a product the
    # workshop hands over, filed and sent to the portal.
    JobKind.VEHICLE_TEST_REPORT: Scope.DIAGNOSIS,
    JobKind.REPAIR_INFORMATION: Scope.REPAIR_INFORMATION,
    # Navigation map updates are one of the information services the seed's "Informationssuche"
    # sells (with repair information, parts and campaigns), and Basic includes them: the same
    # scope (docs/maps.md).
    JobKind.MAP_UPDATE: Scope.REPAIR_INFORMATION,
    JobKind.HELP_DESK_REQUEST: Scope.HELP_DESK,
}

#: The scope a raw UDS request needs, by what it does (:mod:`firmware_py.uds.raw_requests`).
#: Routines need ``service``: a routine can do what a service function does (Condition Based
#: Service resets and battery registration are routines), so a raw one must not need less than
#: the service job. Programming and unknown requests need ``raw_programming``, which Basic does
#: not include: programming with Basic goes through the ``programming`` job (signed package,
#: journal, battery check); and on a raw channel they also need the battery floor.
RAW_CLASS_SCOPE: dict[RawClass, Scope] = {
    RawClass.READ: Scope.DIAGNOSIS,
    RawClass.CONTROL: Scope.DIAGNOSIS,
    RawClass.RESET: Scope.DIAGNOSIS,
    RawClass.WRITE: Scope.CODING,
    RawClass.ROUTINE: Scope.SERVICE,
    RawClass.PROGRAMMING: Scope.RAW_PROGRAMMING,
    RawClass.UNKNOWN: Scope.RAW_PROGRAMMING,
}

#: Raw requests that are refused below the programming battery floor (FlashOptions.min_voltage).
RAW_BATTERY_FLOOR = frozenset({RawClass.PROGRAMMING, RawClass.UNKNOWN})


def raw_request(params: Mapping[str, Any]) -> RawRequest:
    """The raw request of a ``raw_uds`` job's params, classed; ``ValueError`` if it is not hex."""
    return classify(bytes.fromhex(str(params.get("request", ""))))


def required_scope(kind: JobKind, params: Mapping[str, Any]) -> Scope | None:
    """The scope this job needs: :data:`JOB_SCOPE`, and for a raw request the scope of what it
    does (a request that is not hex needs the most restrictive; the job then refuses it)."""
    if kind is not JobKind.RAW_UDS:
        return JOB_SCOPE[kind]
    try:
        return RAW_CLASS_SCOPE[raw_request(params).raw_class]
    except ValueError:
        return RAW_CLASS_SCOPE[RawClass.UNKNOWN]


def describe_job(kind: JobKind, params: Mapping[str, Any]) -> str:
    """The job as a refusal names it; a raw request with its bytes and what it does."""
    if kind is not JobKind.RAW_UDS:
        return kind.value
    try:
        raw = raw_request(params)
    except ValueError:
        return f"{kind.value} (the request is not hex)"
    return f"raw request {raw.request.hex(' ')} ({raw.raw_class.value}: {raw.what})"


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
            N_("Informationssuche, 1 month"),
            60,
            frozenset({Scope.REPAIR_INFORMATION}),
            30 * DAY,
        ),
        Tariff(
            "info-1y",
            N_("Informationssuche, 1 year"),
            470,
            frozenset({Scope.REPAIR_INFORMATION}),
            365 * DAY,
        ),
        Tariff("basic-9h", N_("Basic, 9 hours"), 9, BASIC, 9 * HOUR),
        Tariff("basic-1d", N_("Basic, 1 day"), 30, BASIC, DAY),
        Tariff("basic-1w", N_("Basic, 1 week"), 100, BASIC, 7 * DAY),
        Tariff("basic-1m", N_("Basic, 1 month"), 350, BASIC, 30 * DAY),
        Tariff("basic-1y", N_("Basic, 1 year"), 3570, BASIC, 365 * DAY),
        # Ours, not the seed's price list: raw erase and download (specialists who program with
        # their own tools) need more than Basic. The price is a placeholder for the business to set.
        Tariff(
            "engineering-1d",
            N_("Engineering, 1 day"),
            90,
            BASIC | {Scope.RAW_PROGRAMMING},
            DAY,
        ),
        Tariff(
            "helpdesk",
            N_("Technical Help Desk request"),
            25,
            frozenset({Scope.HELP_DESK}),
            None,
            uses=1,
            net=True,
        ),
    )
}


def tariffs_allowing(job: JobKind, scope: Scope | None = None) -> tuple[str, ...]:
    """Names of the tariffs that allow ``job`` (or a job that needs ``scope``), cheapest first."""
    scope = scope if scope is not None else JOB_SCOPE[job]
    allowed = [t for t in TARIFFS.values() if scope is None or scope in t.scopes]
    return tuple(
        f"{t.name} ({t.price_eur:g} EUR{' net' if t.net else ''})"
        for t in sorted(allowed, key=lambda t: t.price_eur)
    )
