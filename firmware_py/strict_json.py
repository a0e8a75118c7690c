"""Strict, bounded JSON for everything that comes from outside the box: HTTP bodies from the page,
portal envelopes, tickets, files a user hands over.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, duplicate keys (the last one
wins) and nesting until the interpreter's recursion limit. Each of these has broken a check here
before: a NaN that reached the trusted clock made every comparison false. :func:`loads` refuses
them all, bounds size and depth before parsing, and raises only :class:`StrictJsonError`.
The ``field`` helpers check a parsed value's type and range, so callers never compare an
unchecked value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from firmware_py.errors import ConfigError
from firmware_py.i18n import N_

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32
# a JSON string (skipped whole, so brackets inside strings do not count) or one bracket
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class StrictJsonError(ConfigError):
    """Input that is not strict JSON of the expected shape; the message names what is wrong."""

    code = "invalid_input"


def _no_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StrictJsonError(f"key {key[:40]!r} appears twice")
        out[key] = value
    return out


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise StrictJsonError(f"nested deeper than {max_depth} levels")
        elif token in "]}":
            depth -= 1


def loads(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` as strict JSON: UTF-8, at most ``max_bytes``, ``max_depth`` levels, no
    NaN/Infinity, no duplicate keys. Raises :class:`StrictJsonError` and nothing else."""
    if isinstance(data, bytes | bytearray):
        if len(data) > max_bytes:
            raise StrictJsonError(f"{len(data)} bytes is more than the {max_bytes} allowed")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as err:
            raise StrictJsonError(f"not UTF-8 text (byte {err.start})") from err
    else:
        text = data
        if len(text) > max_bytes:
            raise StrictJsonError(f"{len(text)} characters is more than the {max_bytes} allowed")
    _check_depth(text, max_depth)
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except StrictJsonError:
        raise
    except (json.JSONDecodeError, RecursionError, ValueError) as err:
        raise StrictJsonError(f"not valid JSON: {err}") from err


def dumps(value: Any) -> str:
    """Compact JSON that a strict reader accepts (NaN and Infinity are refused here too)."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as err:
        raise StrictJsonError(str(err)) from err


# -- typed fields of a parsed object ------------------------------------------------------------


def number(
    obj: dict[str, Any],
    key: str,
    *,
    low: float,
    high: float,
    default: float | None = None,
    integer: bool = False,
) -> float:
    """``obj[key]`` as a finite number in ``[low, high]`` (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if value is None:
        raise StrictJsonError(N_("{field} is missing"), values={"field": key})
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StrictJsonError(N_("{field} is not a number"), values={"field": key})
    if not math.isfinite(value) or not low <= value <= high:
        raise StrictJsonError(
            N_("{field} must be between {low} and {high}"),
            values={"field": key, "low": f"{low:g}", "high": f"{high:g}"},
        )
    if integer and value != int(value):
        raise StrictJsonError(N_("{field} must be a whole number"), values={"field": key})
    return int(value) if integer else float(value)


def text(obj: dict[str, Any], key: str, *, max_len: int = 256, default: str | None = None) -> str:
    """``obj[key]`` as text of at most ``max_len`` characters (``default`` when absent, if given)."""
    value = obj.get(key, default)
    if value is None:
        raise StrictJsonError(N_("{field} is missing"), values={"field": key})
    if not isinstance(value, str):
        raise StrictJsonError(N_("{field} is not text"), values={"field": key})
    if len(value) > max_len:
        raise StrictJsonError(
            N_("{field} is longer than {n} characters"), values={"field": key, "n": max_len}
        )
    return value


def obj(value: Any, what: str = "the body") -> dict[str, Any]:
    """``value`` if it is a JSON object."""
    if not isinstance(value, dict):
        raise StrictJsonError(f"{what} is not a JSON object")
    return value
