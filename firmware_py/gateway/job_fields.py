"""Typed fields of a job's parameters (:class:`Field`: type, range, default, label, help) and a
job kind's parameters (:class:`JobKindSpec`), each with its check and its JSON for forms. The
job kinds themselves are declared in firmware_py/gateway/job_params.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from firmware_py.i18n import N_, Text
from firmware_py.strict_json import StrictJsonError, number, text

_ITEM = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""an item of a list field: a DID, an ECU:DID value, a service item"""


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
                raise StrictJsonError(N_("{field} is missing"), values={"field": self.name})
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
        raise StrictJsonError(N_("{field} must be true or false"), values={"field": f.name})


def _text(f: Field, value: Any) -> None:
    text({f.name: value}, f.name, max_len=f.max_len)
    if f.nonblank and not value.strip():
        raise StrictJsonError(
            N_("{field}: {what}"), values={"field": f.name, "what": Text(f.item_error or f.help)}
        )


def _choice(f: Field, value: Any) -> None:
    text({f.name: value}, f.name, max_len=40)
    if value not in f.choices:
        raise StrictJsonError(
            N_("{field} must be one of {choices}"),
            values={"field": f.name, "choices": ", ".join(f.choices)},
        )


def _list(f: Field, value: Any) -> None:
    if not isinstance(value, list) or len(value) > f.max_len:
        raise StrictJsonError(
            N_("{field} must be a list of at most {n} texts"),
            values={"field": f.name, "n": f.max_len},
        )
    for item in value:
        if not isinstance(item, str) or not _ITEM.fullmatch(item):
            raise StrictJsonError(
                N_("{field} holds {item}, which is not a name like F190"),
                values={"field": f.name, "item": repr(str(item)[:40])},
            )


def _hex(f: Field, value: Any) -> None:
    try:
        whole = bytes.fromhex(text({f.name: value}, f.name, max_len=f.max_len))
    except ValueError:  # an odd digit or a stray character
        whole = b""
    if not whole:
        raise StrictJsonError(
            N_("{field} must be hex bytes, e.g. 22 F1 90 or 22F190"), values={"field": f.name}
        )


def _named_values(f: Field, value: Any) -> None:
    if not isinstance(value, dict) or len(value) > f.max_len:
        raise StrictJsonError(
            N_("{field} must be an object of at most {n} parameters"),
            values={"field": f.name, "n": f.max_len},
        )
    for key, item in value.items():
        if len(key) > 64 or isinstance(item, bool) or not isinstance(item, str | int):
            raise StrictJsonError(
                N_("{field}: {key} must be a name or a whole number"),
                values={"field": f.name, "key": repr(key[:40])},
            )


def _file(f: Field, value: Any) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= 4096 or "\0" in value:
        raise StrictJsonError(f.item_error)


def _files(f: Field, value: Any) -> None:
    if not isinstance(value, list) or not f.min_items <= len(value) <= f.max_len:
        raise StrictJsonError(
            N_("{field} must be a list of {low} to {high} items")
            if f.min_items
            else N_("{field} must be a list of at most {high} items"),
            values={"field": f.name, "low": f.min_items, "high": f.max_len},
        )
    for item in value:
        _file(f, item)


def _job_ref(f: Field, value: Any) -> None:
    if value is not True and not isinstance(value, str):
        raise StrictJsonError(N_("{field} must be true or a job id"), values={"field": f.name})
    if isinstance(value, str) and not 0 < len(value) <= 64:
        raise StrictJsonError(N_("{field} is not a job id"), values={"field": f.name})


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
                N_("unknown parameter {shown}; this job takes {value}"),
                values={"shown": shown, "value": ", ".join(self.names) or Text(N_("none"))},
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
