"""THE ORACLE, not product code: firmware_py/gateway/job_params.py as it was before its checks
were derived from the declared job kinds (commit ec2bb7f), kept so that a property test shows
the derived checks refuse what these refused. Do not import it from product code.

Checks of a job's parameters before the job is admitted: every field a caller (page, portal,
CLI) can send is of the right type and in range, and nothing unknown is accepted. A job with bad
parameters is refused with a :class:`~firmware_py.strict_json.StrictJsonError` that names the
field; it never starts, and the job list does not change.

One checker per job kind, in a table (as the handlers are). Handlers may then trust the shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from firmware_py.strict_json import StrictJsonError, number, text
from firmware_py.uds.fault_memory import DEFAULT_STATUS_MASK

#: a package in the box's package store is named by its file name there, nothing else
PACKAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}\.vcipkg")
_ITEM = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: live data: seconds between rounds, and in all, when the caller names none
LIVE_INTERVAL, LIVE_DURATION = 0.5, 60.0


def _only(params: Mapping[str, Any], *allowed: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise StrictJsonError(
            f"unknown parameter {shown}; this job takes {', '.join(allowed) or 'none'}"
        )


def _list_of_text(params: Mapping[str, Any], key: str, max_items: int = 64) -> None:
    value = params.get(key)
    if value is None:
        return
    if not isinstance(value, list) or len(value) > max_items:
        raise StrictJsonError(f"{key} must be a list of at most {max_items} texts")
    for item in value:
        if not isinstance(item, str) or not _ITEM.fullmatch(item):
            raise StrictJsonError(f"{key} holds {str(item)[:40]!r}, which is not a name like F190")


def _choice(params: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = text(dict(params), key, max_len=40, default=choices[0])
    if value not in choices:
        raise StrictJsonError(f"{key} must be one of {', '.join(choices)}")
    return value


def _none(params: Mapping[str, Any]) -> None:
    _only(params)


def _read_faults(params: Mapping[str, Any]) -> None:
    _only(params, "status_mask", "details")
    number(dict(params), "status_mask", low=0, high=0xFF, default=DEFAULT_STATUS_MASK, integer=True)
    if not isinstance(params.get("details", True), bool):
        raise StrictJsonError("details must be true or false")


def _read_did(params: Mapping[str, Any]) -> None:
    _only(params, "dids")
    _list_of_text(dict(params), "dids")


def _live_data(params: Mapping[str, Any]) -> None:
    _only(params, "interval", "duration", "values")
    number(dict(params), "interval", low=0.2, high=60, default=LIVE_INTERVAL)
    number(dict(params), "duration", low=0, high=600, default=LIVE_DURATION)
    _list_of_text(dict(params), "values")


def _raw_uds(params: Mapping[str, Any]) -> None:
    _only(params, "request")
    try:
        whole = bytes.fromhex(text(dict(params), "request", max_len=8192))
    except ValueError:  # an odd digit or a stray character
        whole = b""
    if not whole:
        raise StrictJsonError("request must be hex bytes, e.g. 22 F1 90 or 22F190")


def _coding(params: Mapping[str, Any]) -> None:
    _only(params, "action", "changes")
    _choice(params, "action", ("read", "set", "restore"))
    changes = params.get("changes", {})
    if not isinstance(changes, dict) or len(changes) > 64:
        raise StrictJsonError("changes must be an object of at most 64 parameters")
    for key, value in changes.items():
        if len(key) > 64 or isinstance(value, bool) or not isinstance(value, str | int):
            raise StrictJsonError(f"changes: {key[:40]!r} must be a name or a whole number")


def _service(params: Mapping[str, Any]) -> None:
    _only(params, "action", "item", "capacity_ah", "technology")
    _choice(params, "action", ("read", "reset", "register_battery"))
    text(dict(params), "item", max_len=64, default="")
    text(dict(params), "technology", max_len=40, default="")
    if "capacity_ah" in params:
        number(dict(params), "capacity_ah", low=0, high=1000, integer=True)


def _service_history(params: Mapping[str, Any]) -> None:
    _only(params, "action", "items", "note", "workshop", "reset")
    _choice(params, "action", ("read", "record"))
    _list_of_text(dict(params), "items", max_items=16)
    text(dict(params), "note", max_len=28, default="")
    text(dict(params), "workshop", max_len=16, default="")
    if not isinstance(params.get("reset", False), bool):
        raise StrictJsonError("reset must be true or false")


def _help_desk(params: Mapping[str, Any]) -> None:
    _only(params, "question", "contact", "traces")
    if not text(dict(params), "question", max_len=4000).strip():
        raise StrictJsonError("question: say what the help desk should help with")
    if not text(dict(params), "contact", max_len=200).strip():
        raise StrictJsonError("contact: how the help desk reaches the technician")
    traces = params.get("traces", [])
    if not isinstance(traces, list) or len(traces) > 8:
        raise StrictJsonError("traces must be a list of at most 8 files")
    for name in traces:
        if not isinstance(name, str) or not 0 < len(name) <= 4096 or "\0" in name:
            raise StrictJsonError("a trace is named by its path on the box")


def _programming(params: Mapping[str, Any]) -> None:
    _only(params, "package", "packages", "resume", "parallel")
    if not isinstance(params.get("parallel", False), bool):
        raise StrictJsonError("parallel must be true or false")
    resume = params.get("resume")
    if resume is not None and resume is not True and not isinstance(resume, str):
        raise StrictJsonError("resume must be true or a job id")
    if isinstance(resume, str) and not 0 < len(resume) <= 64:
        raise StrictJsonError("resume is not a job id")
    names = params.get("packages")
    if names is None and "package" in params:
        names = [params["package"]]
    if names is None:
        if resume is None:
            raise StrictJsonError("name the flash package(s)")
        return
    if not isinstance(names, list) or not 1 <= len(names) <= 32:
        raise StrictJsonError("packages must be a list of 1 to 32 package names")
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= 4096 or "\0" in name:
            raise StrictJsonError("a package is named by text")


def _enet_bridge(params: Mapping[str, Any]) -> None:
    _only(params, "client", "timeout")
    if params.get("client") is not None:
        text(dict(params), "client", max_len=64)
    if params.get("timeout") is not None:
        number(dict(params), "timeout", low=1, high=7 * 86400)  # the configured maximum applies too


def _map_update(params: Mapping[str, Any]) -> None:
    """A map offer the box keeps (``offer``: its id), or the portal's manifest and activation
    code themselves."""
    if "offer" in params:
        _only(params, "offer")
        if not re.fullmatch(
            r"[0-9a-f]{16}-[A-HJ-NPR-Z0-9]{17}", text(dict(params), "offer", max_len=40)
        ):
            raise StrictJsonError("offer: the id of a map offer this box keeps")
        return
    _only(params, "manifest", "activation")
    for key in ("manifest", "activation"):
        if not text(dict(params), key, max_len=4096).strip():
            raise StrictJsonError(f"{key}: the portal's signed {key} of the map package")


CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "identify": _none,
    "read_vin": _none,
    "read_fault_memory": _read_faults,
    "clear_fault_memory": _none,
    "read_did": _read_did,
    "read_live_data": _live_data,
    "raw_uds": _raw_uds,
    "coding": _coding,
    "service_reset": _service,
    "service_history": _service_history,
    "help_desk_request": _help_desk,
    "programming": _programming,
    "enet_bridge": _enet_bridge,
    "map_update": _map_update,
    "emissions_data": _none,
    "vehicle_test_report": _none,
}


def check_params(kind: str, params: Mapping[str, Any], *, local: bool = False) -> None:
    """Refuse ``params`` of a ``kind`` job unless every field is known, typed and in range.
    Callers other than the box's own CLI (``local``) name flash packages by their id in the
    package store only (:data:`PACKAGE_ID`), never by a path."""
    if not isinstance(params, Mapping):
        raise StrictJsonError("params must be an object")
    check = CHECKS.get(kind)
    if check is not None:
        check(params)
    if kind == "help_desk_request" and params.get("traces") and not local:
        raise StrictJsonError(
            "traces are added from the box's own command line only",
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
