"""The parameters of every job kind, declared as data (:data:`JOB_KINDS`, typed fields of
firmware_py/gateway/job_fields.py), and the check of a job's parameters before the job is
admitted, derived from that declaration: every field a caller (page, portal, CLI) can send is of
the right type and in range, and nothing unknown is accepted. A job with bad parameters is
refused with a :class:`~firmware_py.strict_json.StrictJsonError` that names the field; it never
starts, and the job list does not change.

The same declaration is the portal's: its forms are built from :data:`JOB_KINDS`
(portal/web/session_view.py), so a form offers exactly what the box accepts. The portal imports
this module (it ships in the same package, released together) rather than asking each box for
it: a form needs no round trip to a box, and the box's own check stays the authority when a box
runs another release.

Handlers may then trust the shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from firmware_py.gateway.job_fields import Field, FieldType, JobKindSpec
from firmware_py.i18n import N_
from firmware_py.strict_json import StrictJsonError
from firmware_py.uds.fault_memory import DEFAULT_STATUS_MASK

__all__ = [
    "JOB_KINDS",
    "CHECKS",
    "CHOICE_LABELS",
    "Field",
    "FieldType",
    "JobKindSpec",
    "check_params",
    "describe",
]

#: a package in the box's package store is named by its file name there, nothing else
PACKAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}\.vcipkg")
#: live data: seconds between rounds, and in all, when the caller names none
LIVE_INTERVAL, LIVE_DURATION = 0.5, 60.0
FT = FieldType


def _programming_rule(params: Mapping[str, Any]) -> None:
    if params.get("packages") is None and "package" not in params and params.get("resume") is None:
        raise StrictJsonError(N_("name the flash package(s)"))


MAP_OFFER_ID = re.compile(r"[0-9a-f]{16}-[A-HJ-NPR-Z0-9]{17}")


def _map_update_rule(params: Mapping[str, Any]) -> None:
    """A map offer the box keeps (``offer``: its id), or the portal's manifest and activation
    code themselves; not both."""
    if "offer" in params:
        others = sorted(set(params) - {"offer"})
        if others:
            shown = ", ".join(repr(k[:40]) for k in others[:5])
            raise StrictJsonError(
                N_("unknown parameter {names}; with an offer this job takes offer"),
                values={"names": shown},
            )
        if not MAP_OFFER_ID.fullmatch(params["offer"]):
            raise StrictJsonError(N_("offer: the id of a map offer this box keeps"))
        return
    for key in ("manifest", "activation"):
        if key not in params:
            raise StrictJsonError(
                N_("{key} is missing: the portal's signed {key} of the map package"),
                values={"key": key},
            )
        if not str(params[key]).strip():
            raise StrictJsonError(
                N_("{key}: the portal's signed {key} of the map package"), values={"key": key}
            )


CHOICE_LABELS = {
    "read": N_("read"), "set": N_("set parameters"), "restore": N_("restore the backup"),
    "reset": N_("reset an item"), "register_battery": N_("register a new battery"),
    "record": N_("record a service"),
}  # fmt: skip
"""what each choice of a CHOICE field means, for a form in the reader's words (the value sent
stays the name)"""


# fmt: off
JOB_KINDS: dict[str, JobKindSpec] = {spec.kind: spec for spec in (
    JobKindSpec("identify", N_("Identify the vehicle and its ECUs")),
    JobKindSpec("read_vin", N_("Read the VIN")),
    JobKindSpec("read_fault_memory", N_("Read the fault memory"), (
        Field("status_mask", FT.INT, N_("Status mask"), N_("the DTC status bits a fault must have one of "
              "(ISO 14229-1 D.2)"), low=0, high=0xFF, default=DEFAULT_STATUS_MASK),
        Field("details", FT.BOOL, N_("With details"), N_("snapshot and extended data of each fault"),
              default=True),
    )),
    JobKindSpec("clear_fault_memory", N_("Clear the fault memory")),
    JobKindSpec("read_did", N_("Read data identifiers"), (
        Field("dids", FT.LIST, N_("DIDs"), N_("names like F190, at most 64"), max_len=64, nullable=True),
    )),
    JobKindSpec("read_live_data", N_("Live data"), (
        Field("interval", FT.FLOAT, N_("Interval (s)"), N_("seconds between readings"), low=0.2, high=60,
              default=LIVE_INTERVAL),
        Field("duration", FT.FLOAT, N_("Duration (s)"), N_("seconds in all"), low=0, high=600,
              default=LIVE_DURATION),
        Field("values", FT.LIST, N_("Values"), N_("ECU:DID names like DME:4001; empty: the engine's basic "
              "values"), max_len=64, nullable=True),
    )),
    JobKindSpec("raw_uds", N_("Raw UDS request"), (
        Field("request", FT.HEX, N_("Request"), N_("hex bytes, e.g. 22 F1 90"), required=True,
              max_len=8192),
    ), needs_ecu=True),
    JobKindSpec("coding", N_("Coding"), (
        Field("action", FT.CHOICE, N_("Action"),
              N_("read the coding, set parameters, or restore the backup"),
              choices=("read", "set", "restore")),
        Field("changes", FT.NAMED_VALUES, N_("Changes"),
              N_("parameter name -> value name or whole number"), max_len=64),
    ), needs_ecu=True),
    JobKindSpec("service_reset", N_("Service functions"), (
        Field("action", FT.CHOICE, N_("Action"), choices=("read", "reset", "register_battery")),
        Field("item", FT.TEXT, N_("Service item"), N_("e.g. engine_oil"), default="", max_len=64),
        Field("technology", FT.TEXT, N_("Battery technology"), N_("e.g. AGM"), default="", max_len=40),
        Field("capacity_ah", FT.INT, N_("Battery capacity (Ah)"), N_("registering a new battery"), low=0,
              high=1000),
    )),
    JobKindSpec("service_history", N_("Service booklet"), (
        Field("action", FT.CHOICE, N_("Action"), choices=("read", "record")),
        Field("items", FT.LIST, N_("Items done"), N_("service items like engine_oil"), max_len=16,
              nullable=True),
        Field("note", FT.TEXT, N_("Note"), default="", max_len=28),
        Field("workshop", FT.TEXT, N_("Workshop"), default="", max_len=16),
        Field("reset", FT.BOOL, N_("Reset the items"), default=False),
    )),
    JobKindSpec("help_desk_request", N_("Ask the help desk"), (
        Field("question", FT.TEXT, N_("Question"), N_("Say what the help desk should help with"),
              required=True, max_len=4000, nonblank=True,
              item_error=N_("say what the help desk should help with")),
        Field("contact", FT.TEXT, N_("Contact"), N_("How the help desk reaches the technician"),
              required=True, max_len=200, nonblank=True,
              item_error=N_("how the help desk reaches the technician")),
        Field("traces", FT.FILES, N_("Files"), max_len=8, local_only=True, default=[],
              item_error=N_("a trace is named by its path on the box")),
    )),
    JobKindSpec("programming", N_("Programming"), (
        Field("package", FT.FILE, N_("Package"), N_("a package in the box's package store"),
              item_error=N_("a package is named by text")),
        Field("packages", FT.FILES, N_("Package names"), min_items=1, max_len=32, nullable=True,
              item_error=N_("a package is named by text")),
        Field("resume", FT.JOB_REF, N_("Resume"), N_("true or the interrupted job's id"),
              nullable=True),
        Field("parallel", FT.BOOL, N_("In parallel"), N_("flash ECUs on different buses at once"),
              default=False),
    ), rule=_programming_rule),
    JobKindSpec("enet_bridge", N_("ENET bridge"), (
        Field("client", FT.TEXT, N_("Client"), max_len=64, nullable=True),
        # the configured maximum applies too
        Field("timeout", FT.FLOAT, N_("Timeout (s)"), low=1, high=7 * 86400, nullable=True),
    )),
    JobKindSpec("map_update", N_("Navigation map update"), (
        Field("offer", FT.TEXT, N_("Offer"), N_("a map offer this box keeps"), max_len=40),
        Field("manifest", FT.TEXT, N_("Manifest"), N_("the portal's signed manifest"), max_len=4096),
        Field("activation", FT.TEXT, N_("Activation code"), N_("signed for this car's VIN"),
              max_len=4096),
    ), rule=_map_update_rule),
    JobKindSpec("emissions_data", N_("Emissions data")),
    JobKindSpec("vehicle_test_report", N_("Vehicle test report")),
)}
# fmt: on

CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    kind: spec.check for kind, spec in JOB_KINDS.items()
}
"""the check of each kind's parameters, derived from :data:`JOB_KINDS`"""


def describe(kinds: list[str] | None = None, *, remote: bool = True) -> list[dict[str, Any]]:
    """The job kinds (all, or ``kinds`` in that order) as JSON for forms."""
    return [JOB_KINDS[k].to_json(remote=remote) for k in (kinds or list(JOB_KINDS))]


def check_params(kind: str, params: Mapping[str, Any], *, local: bool = False) -> None:
    """Refuse ``params`` of a ``kind`` job unless every field is known, typed and in range.
    Callers other than the box's own CLI (``local``) name flash packages by their id in the
    package store only (:data:`PACKAGE_ID`), never by a path."""
    if not isinstance(params, Mapping):
        raise StrictJsonError(N_("params must be an object"))
    spec = JOB_KINDS.get(kind)
    if spec is not None:
        spec.check(params)
    if not local:
        for f in spec.fields if spec is not None else ():
            if f.local_only and params.get(f.name):
                raise StrictJsonError(
                    N_("{name} are added from the box's own command line only"),
                    values={"name": f.name},
                    hint=N_(
                        "The request takes the traces of this session's vehicle link by itself"
                    ),
                )
    if kind == "programming" and not local:
        names = params.get("packages") or ([params["package"]] if "package" in params else [])
        for name in names:
            if not PACKAGE_ID.fullmatch(name):
                raise StrictJsonError(
                    N_("{value} is not a package of this box"),
                    values={"value": repr(name[:80])},
                    hint=N_("Name a package by its file name in the box's package list"),
                )
