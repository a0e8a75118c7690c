"""The parameters of every job kind, declared as data (:data:`JOB_KINDS`), and the check of a
job's parameters before the job is admitted, derived from that declaration: every field a caller
(page, portal, CLI) can send is of the right type and in range, and nothing unknown is accepted.
A job with bad parameters is refused with a :class:`~firmware_py.strict_json.StrictJsonError`
that names the field; it never starts, and the job list does not change.

The same declaration is the portal's: its forms are built from :func:`describe` (JSON), so a
form offers exactly what the box accepts. The portal imports this module (it ships in the same
package, released together) rather than asking each box for it: a form needs no round trip to a
box, and the box's own check stays the authority when a box runs another release.

Handlers may then trust the shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from firmware_py.strict_json import StrictJsonError, number, text
from firmware_py.uds.fault_memory import DEFAULT_STATUS_MASK

#: a package in the box's package store is named by its file name there, nothing else
PACKAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}\.vcipkg")
_ITEM = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: live data: seconds between rounds, and in all, when the caller names none
LIVE_INTERVAL, LIVE_DURATION = 0.5, 60.0


class FieldType(StrEnum):
    """What a field holds, as JSON carries it and a form asks for it."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    TEXT = "text"
    CHOICE = "choice"
    """one of ``choices`` (text); absent: the first"""
    LIST = "list"
    """names like F190 or DME:4001 (DIDs, live values, service items)"""
    HEX = "hex"
    """bytes as hex digits, spaces allowed: 22 F1 90"""
    NAMED_VALUES = "named_values"
    """an object of parameter name -> a name or a whole number (coding changes)"""
    FILES = "files"
    """a list of file names (packages, traces)"""
    FILE = "file"
    JOB_REF = "job_ref"
    """true (the last interrupted one) or a job id"""


@dataclass(frozen=True)
class Field:
    """One parameter of a job kind."""

    name: str
    type: FieldType
    label: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    default: Any = None
    """used when the field is absent (None: absent means nothing)"""
    required: bool = False
    nullable: bool = False
    """a JSON null counts as absent (else it is refused as of the wrong type)"""
    max_len: int = 256
    """text: characters; lists, files, named values: items"""
    min_items: int = 0
    choices: tuple[str, ...] = ()
    nonblank: bool = False
    """text that must hold more than white space (``help`` says what to write)"""
    item_error: str = ""
    """files: the refusal of an item that is not a file name"""
    local_only: bool = False
    """sent by the box's own command line only: a remote form does not offer it"""

    def __post_init__(self) -> None:
        if self.type is FieldType.CHOICE and not self.choices:
            raise ValueError(f"{self.name}: a choice needs choices")
        if self.type in (FieldType.INT, FieldType.FLOAT) and (
            self.low is None or self.high is None
        ):
            raise ValueError(f"{self.name}: a number needs its range")

    def check(self, params: Mapping[str, Any]) -> None:
        """Refuse this field's value in ``params`` unless it is of the type and in range."""
        value = params.get(self.name)
        if self.name not in params or (value is None and self.nullable):
            if self.required:
                raise StrictJsonError(f"{self.name} is missing")
            return
        CHECKERS[self.type](self, value)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type.value, "label": self.label}
        if self.help:
            out["help"] = self.help
        if self.low is not None:
            out["low"], out["high"] = self.low, self.high
        if self.default is not None:
            out["default"] = self.default
        if self.choices:
            out["choices"] = list(self.choices)
        if self.required:
            out["required"] = True
        if self.min_items:
            out["min_items"] = self.min_items
        out["max_len"] = self.max_len
        return out


def _int(f: Field, value: Any) -> None:
    assert f.low is not None and f.high is not None
    number({f.name: value}, f.name, low=f.low, high=f.high, integer=True)


def _float(f: Field, value: Any) -> None:
    assert f.low is not None and f.high is not None
    number({f.name: value}, f.name, low=f.low, high=f.high)


def _bool(f: Field, value: Any) -> None:
    if not isinstance(value, bool):
        raise StrictJsonError(f"{f.name} must be true or false")


def _text(f: Field, value: Any) -> None:
    text({f.name: value}, f.name, max_len=f.max_len)
    if f.nonblank and not value.strip():
        raise StrictJsonError(f"{f.name}: {f.help[:1].lower()}{f.help[1:]}")


def _choice(f: Field, value: Any) -> None:
    text({f.name: value}, f.name, max_len=40)
    if value not in f.choices:
        raise StrictJsonError(f"{f.name} must be one of {', '.join(f.choices)}")


def _list(f: Field, value: Any) -> None:
    if not isinstance(value, list) or len(value) > f.max_len:
        raise StrictJsonError(f"{f.name} must be a list of at most {f.max_len} texts")
    for item in value:
        if not isinstance(item, str) or not _ITEM.fullmatch(item):
            raise StrictJsonError(
                f"{f.name} holds {str(item)[:40]!r}, which is not a name like F190"
            )


def _hex(f: Field, value: Any) -> None:
    try:
        whole = bytes.fromhex(text({f.name: value}, f.name, max_len=f.max_len))
    except ValueError:  # an odd digit or a stray character
        whole = b""
    if not whole:
        raise StrictJsonError(f"{f.name} must be hex bytes, e.g. 22 F1 90 or 22F190")


def _named_values(f: Field, value: Any) -> None:
    if not isinstance(value, dict) or len(value) > f.max_len:
        raise StrictJsonError(f"{f.name} must be an object of at most {f.max_len} parameters")
    for key, item in value.items():
        if len(key) > 64 or isinstance(item, bool) or not isinstance(item, str | int):
            raise StrictJsonError(f"{f.name}: {key[:40]!r} must be a name or a whole number")


def _file(f: Field, value: Any) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= 4096 or "\0" in value:
        raise StrictJsonError(f.item_error)


def _files(f: Field, value: Any) -> None:
    if not isinstance(value, list) or not f.min_items <= len(value) <= f.max_len:
        size = f"{f.min_items} to {f.max_len}" if f.min_items else f"at most {f.max_len}"
        raise StrictJsonError(f"{f.name} must be a list of {size} {f.label.lower()}")
    for item in value:
        _file(f, item)


def _job_ref(f: Field, value: Any) -> None:
    if value is not True and not isinstance(value, str):
        raise StrictJsonError(f"{f.name} must be true or a job id")
    if isinstance(value, str) and not 0 < len(value) <= 64:
        raise StrictJsonError(f"{f.name} is not a job id")


CHECKERS: dict[FieldType, Callable[[Field, Any], None]] = {
    FieldType.INT: _int,
    FieldType.FLOAT: _float,
    FieldType.BOOL: _bool,
    FieldType.TEXT: _text,
    FieldType.CHOICE: _choice,
    FieldType.LIST: _list,
    FieldType.HEX: _hex,
    FieldType.NAMED_VALUES: _named_values,
    FieldType.FILES: _files,
    FieldType.FILE: _file,
    FieldType.JOB_REF: _job_ref,
}


@dataclass(frozen=True)
class JobKindSpec:
    """A job kind's parameters, and a rule across fields where one field alone cannot say."""

    kind: str
    label: str
    fields: tuple[Field, ...] = ()
    rule: Callable[[Mapping[str, Any]], None] | None = None
    needs_ecu: bool = False
    """the job works on one ECU the caller names (coding, service functions)"""
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(f.name for f in self.fields))

    def check(self, params: Mapping[str, Any]) -> None:
        unknown = sorted(set(params) - set(self.names))
        if unknown:
            shown = ", ".join(repr(k[:40]) for k in unknown[:5])
            raise StrictJsonError(
                f"unknown parameter {shown}; this job takes {', '.join(self.names) or 'none'}"
            )
        for f in self.fields:
            f.check(params)
        if self.rule is not None:
            self.rule(params)

    def to_json(self, *, remote: bool = False) -> dict[str, Any]:
        """The kind as a form needs it; ``remote``: without the fields of the box's CLI only."""
        shown = [f.to_json() for f in self.fields if not (remote and f.local_only)]
        return {"kind": self.kind, "label": self.label, "needs_ecu": self.needs_ecu,
                "fields": shown}  # fmt: skip


def _programming_rule(params: Mapping[str, Any]) -> None:
    if params.get("packages") is None and "package" not in params and params.get("resume") is None:
        raise StrictJsonError("name the flash package(s)")


_NAMES = "names like F190, at most 64"
JOB_KINDS: dict[str, JobKindSpec] = {
    spec.kind: spec
    for spec in (
        JobKindSpec("identify", "Identify the vehicle and its ECUs"),
        JobKindSpec("read_vin", "Read the VIN"),
        JobKindSpec(
            "read_fault_memory",
            "Read the fault memory",
            (
                Field(
                    "status_mask",
                    FieldType.INT,
                    "Status mask",
                    "the DTC status bits a fault must have one of (ISO 14229-1 D.2)",
                    low=0,
                    high=0xFF,
                    default=DEFAULT_STATUS_MASK,
                ),
                Field(
                    "details",
                    FieldType.BOOL,
                    "With details",
                    "snapshot and extended data of each fault",
                    default=True,
                ),
            ),
        ),  # fmt: skip
        JobKindSpec("clear_fault_memory", "Clear the fault memory"),
        JobKindSpec(
            "read_did",
            "Read data identifiers",
            (Field("dids", FieldType.LIST, "DIDs", _NAMES, max_len=64, nullable=True),),
        ),  # fmt: skip
        JobKindSpec(
            "read_live_data",
            "Live data",
            (
                Field(
                    "interval",
                    FieldType.FLOAT,
                    "Interval (s)",
                    "seconds between readings",
                    low=0.2,
                    high=60,
                    default=LIVE_INTERVAL,
                ),
                Field(
                    "duration",
                    FieldType.FLOAT,
                    "Duration (s)",
                    "seconds in all",
                    low=0,
                    high=600,
                    default=LIVE_DURATION,
                ),
                Field(
                    "values",
                    FieldType.LIST,
                    "Values",
                    "ECU:DID names like DME:4001; empty: the engine's basic values",
                    max_len=64,
                    nullable=True,
                ),
            ),
        ),  # fmt: skip
        JobKindSpec(
            "raw_uds",
            "Raw UDS request",
            (
                Field(
                    "request",
                    FieldType.HEX,
                    "Request",
                    "hex bytes, e.g. 22 F1 90",
                    required=True,
                    max_len=8192,
                ),
            ),
            needs_ecu=True,
        ),  # fmt: skip
        JobKindSpec(
            "coding",
            "Coding",
            (
                Field(
                    "action",
                    FieldType.CHOICE,
                    "Action",
                    "read the coding, set parameters, or restore the backup",
                    choices=("read", "set", "restore"),
                ),
                Field(
                    "changes",
                    FieldType.NAMED_VALUES,
                    "Changes",
                    "parameter name -> value name or whole number",
                    max_len=64,
                ),
            ),
            needs_ecu=True,
        ),  # fmt: skip
        JobKindSpec(
            "service_reset",
            "Service functions",
            (
                Field(
                    "action",
                    FieldType.CHOICE,
                    "Action",
                    choices=("read", "reset", "register_battery"),
                ),
                Field(
                    "item",
                    FieldType.TEXT,
                    "Service item",
                    "e.g. engine_oil",
                    default="",
                    max_len=64,
                ),
                Field(
                    "technology",
                    FieldType.TEXT,
                    "Battery technology",
                    "e.g. AGM",
                    default="",
                    max_len=40,
                ),
                Field(
                    "capacity_ah",
                    FieldType.INT,
                    "Battery capacity (Ah)",
                    "registering a new battery",
                    low=0,
                    high=1000,
                ),
            ),
        ),  # fmt: skip
        JobKindSpec(
            "service_history",
            "Service booklet",
            (
                Field("action", FieldType.CHOICE, "Action", choices=("read", "record")),
                Field(
                    "items",
                    FieldType.LIST,
                    "Items done",
                    "service items like engine_oil",
                    max_len=16,
                    nullable=True,
                ),
                Field("note", FieldType.TEXT, "Note", default="", max_len=28),
                Field("workshop", FieldType.TEXT, "Workshop", default="", max_len=16),
                Field("reset", FieldType.BOOL, "Reset the items", default=False),
            ),
        ),  # fmt: skip
        JobKindSpec(
            "help_desk_request",
            "Ask the help desk",
            (
                Field(
                    "question",
                    FieldType.TEXT,
                    "Question",
                    "Say what the help desk should help with",
                    required=True,
                    max_len=4000,
                    nonblank=True,
                ),
                Field(
                    "contact",
                    FieldType.TEXT,
                    "Contact",
                    "How the help desk reaches the technician",
                    required=True,
                    max_len=200,
                    nonblank=True,
                ),
                Field(
                    "traces",
                    FieldType.FILES,
                    "Files",
                    max_len=8,
                    local_only=True,
                    default=[],
                    item_error="a trace is named by its path on the box",
                ),
            ),
        ),  # fmt: skip
        JobKindSpec(
            "programming",
            "Programming",
            (
                Field(
                    "package",
                    FieldType.FILE,
                    "Package",
                    "a package in the box's package store",
                    item_error="a package is named by text",
                ),
                Field(
                    "packages",
                    FieldType.FILES,
                    "Package names",
                    min_items=1,
                    max_len=32,
                    nullable=True,
                    item_error="a package is named by text",
                ),
                Field(
                    "resume",
                    FieldType.JOB_REF,
                    "Resume",
                    "true or the interrupted job's id",
                    nullable=True,
                ),
                Field(
                    "parallel",
                    FieldType.BOOL,
                    "In parallel",
                    "flash ECUs on different buses at once",
                    default=False,
                ),
            ),
            rule=_programming_rule,
        ),  # fmt: skip
        JobKindSpec(
            "enet_bridge",
            "ENET bridge",
            (
                Field("client", FieldType.TEXT, "Client", max_len=64, nullable=True),
                # the configured maximum applies too
                Field(
                    "timeout", FieldType.FLOAT, "Timeout (s)", low=1, high=7 * 86400, nullable=True
                ),
            ),
        ),  # fmt: skip
        JobKindSpec("emissions_data", "Emissions data"),
        JobKindSpec("vehicle_test_report", "Vehicle test report"),
    )
}

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
        raise StrictJsonError("params must be an object")
    spec = JOB_KINDS.get(kind)
    if spec is not None:
        spec.check(params)
    if not local:
        for f in spec.fields if spec is not None else ():
            if f.local_only and params.get(f.name):
                raise StrictJsonError(
                    f"{f.name} are added from the box's own command line only",
                    hint="The request takes the traces of this session's vehicle link by itself",
                )
    if kind == "programming" and not local:
        names = params.get("packages") or ([params["package"]] if "package" in params else [])
        for name in names:
            if not PACKAGE_ID.fullmatch(name):
                raise StrictJsonError(
                    f"{name[:80]!r} is not a package of this box",
                    hint="Name a package by its file name in the box's package list",
                )
