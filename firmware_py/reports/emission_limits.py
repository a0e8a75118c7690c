"""The exhaust limit values' data (docs/emissions.md): their schema, one validator for both sides
(the portal checks a file before it publishes it, the box again before it keeps it), and the
box's local copy.

The values belong to an engine, found by the BMW type code (VIN positions 4-7). The portal
supplies them (``vci-portal emission-limits publish``, firmware_py/gateway/limits_update.py); the
box keeps them as ``emission_limits.toml`` in the state directory; without that file the shipped
``emission_limits_sample.toml`` is used and the report says the values are sample values.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError
from firmware_py.i18n import N_
from firmware_py.versions import release_key

LOCAL_LIMITS = "emission_limits.toml"
"""the box's copy of the portal's limit values, in the state directory"""
MAX_LIMITS_TEXT = 32 * 1024
"""bytes of TOML: a larger file is refused (it goes to the box in one message)"""
_TOP = {"source", "version", "allowed_incomplete", "engine"}
_ENGINE = {"type_codes", "engine", "emission_class", "ignition", "limit"}
_LIMIT = {"name", "text", "min", "max", "unit"}
_TYPE_CODE = re.compile(r"^[A-Z0-9]{4}$")


@dataclass(frozen=True)
class LimitTable:
    source: str
    """``sample`` (shipped) or ``portal``"""
    version: str
    allowed_incomplete: int
    engines: tuple[dict[str, Any], ...]

    def for_type(self, type_code: str | None) -> dict[str, Any] | None:
        for engine in self.engines:
            if type_code and type_code.upper() in engine.get("type_codes", ()):
                return engine
        return None


def version_key(version: str) -> tuple[int, ...] | None:
    """``2026.12`` -> (2026, 12, 0, 0); None for a version that is not dotted numbers (a file
    placed by hand before the portal supplied one: not comparable, the portal's replaces it)."""
    return release_key(version)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check(raw: dict[str, Any], published: bool) -> list[str]:
    """Every problem of the parsed file, each naming where it is."""
    problems = []
    if unknown := set(raw) - _TOP:
        problems.append(f"unknown top-level key(s) {', '.join(sorted(unknown))}")
    source, version = raw.get("source"), raw.get("version")
    if not isinstance(source, str) or not source:
        problems.append('source is missing or not a text (e.g. source = "portal")')
    elif published and source != "portal":
        problems.append(f'source is {source!r}; the portal publishes only source = "portal"')
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version:
        problems.append('version is missing (e.g. version = "2026.12")')
    elif published and version_key(version) is None:
        problems.append(f"version {version!r} is not numbers separated by dots (e.g. 2026.12)")
    allowed = raw.get("allowed_incomplete", 0)
    if not isinstance(allowed, int) or isinstance(allowed, bool) or not 0 <= allowed <= 11:
        problems.append(f"allowed_incomplete is {allowed!r}, not a whole number 0-11")
    engines = raw.get("engine")
    if not isinstance(engines, list) or not engines:
        problems.append("there is no [[engine]] table")
        return problems
    seen: dict[str, int] = {}
    for n, engine in enumerate(engines, 1):
        where = f"[[engine]] {n}"
        if not isinstance(engine, dict):
            problems.append(f"{where} is not a table")
            continue
        if unknown := set(engine) - _ENGINE:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        codes = engine.get("type_codes")
        if not isinstance(codes, list) or not codes:
            problems.append(f"{where}: type_codes is missing or empty")
            codes = []
        for code in codes:
            if not isinstance(code, str) or not _TYPE_CODE.match(code):
                problems.append(
                    f"{where}: type code {code!r} is not 4 capital letters or digits "
                    "(VIN positions 4-7)"
                )
            elif code in seen:
                problems.append(f"{where}: type code {code} is also in [[engine]] {seen[code]}")
            else:
                seen[code] = n
        where = f"{where} ({', '.join(map(str, codes))})" if codes else where
        for key in ("engine", "emission_class"):
            if key in engine and not isinstance(engine[key], str):
                problems.append(f"{where}: {key} is not a text")
        if engine.get("ignition", "spark") not in ("spark", "compression"):
            problems.append(
                f"{where}: ignition is {engine['ignition']!r}, not spark or compression"
            )
        limits = engine.get("limit")
        if not isinstance(limits, list) or not limits:
            problems.append(f"{where}: limit is missing or empty (a list of limits)")
            continue
        for m, limit in enumerate(limits, 1):
            if not isinstance(limit, dict):
                problems.append(f"{where}: limit {m} is not a table")
                continue
            name = limit.get("name")
            at = (
                f"{where}: limit {name!r}"
                if isinstance(name, str) and name
                else f"{where}: limit {m}"
            )
            if unknown := set(limit) - _LIMIT:
                problems.append(f"{at}: unknown key(s) {', '.join(sorted(unknown))}")
            if not isinstance(limit.get("name"), str) or not limit["name"]:
                problems.append(f"{at}: name is missing or not a text")
            if not _text(limit.get("text")):
                problems.append(
                    f'{at}: text is missing or not a text (or a table {{ en = "...", de = "..." }})'
                )
            if "unit" in limit and not isinstance(limit["unit"], str):
                problems.append(f"{at}: unit is not a text")
            bounds = [k for k in ("min", "max") if k in limit]
            if not bounds:
                problems.append(f"{at}: has neither min nor max")
            for k in bounds:
                if not _number(limit[k]):
                    problems.append(f"{at}: {k} is {limit[k]!r}, not a number")
            if len(bounds) == 2 and all(_number(limit[k]) for k in bounds):
                if limit["min"] > limit["max"]:
                    problems.append(f"{at}: min {limit['min']} is above max {limit['max']}")
    return problems


def _text(value: object) -> bool:
    """A limit's text: one English string, or the same in several languages (English among them)."""
    if isinstance(value, dict):
        return bool(value.get("en")) and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
        )
    return isinstance(value, str) and bool(value)


def parse_limits(text: str, where: str, *, published: bool = False) -> LimitTable:
    """The limit values of ``text`` (TOML), checked against the schema; :class:`ConfigError`
    naming every problem otherwise. ``published``: as the portal sends them (source "portal", a
    version of numbers separated by dots)."""
    hint = N_("Fetch them from the portal again, or remove the file to use the sample values")
    if len(text.encode()) > MAX_LIMITS_TEXT:
        raise ConfigError(
            N_("the emission limit values in {where} are larger than {max_limits_text} bytes"),
            values={"where": where, "max_limits_text": MAX_LIMITS_TEXT},
            hint=hint,
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(
            N_("the emission limit values in {where} are not valid TOML: {err}"),
            values={"where": where, "err": err},
            hint=hint,
        ) from err
    problems = _check(raw, published)
    if problems:
        raise ConfigError(
            N_("the emission limit values in {where} are refused: {problems} (and {more} more)")
            if len(problems) > 10
            else N_("the emission limit values in {where} are refused: {problems}"),
            values={
                "where": where,
                "problems": "; ".join(problems[:10]),
                "more": len(problems) - 10,
            },
            hint=hint,
        )
    return LimitTable(
        source=raw["source"],
        version=str(raw["version"]),
        allowed_incomplete=int(raw.get("allowed_incomplete", 0)),
        engines=tuple(raw["engine"]),
    )


def local_limits(state_dir: Path) -> LimitTable | None:
    """The box's copy in ``state_dir``, or None without one."""
    path = state_dir / LOCAL_LIMITS
    if not path.is_file():
        return None
    return parse_limits(path.read_text(encoding="utf-8"), str(path))


def load_limits(state_dir: Path | None) -> LimitTable:
    """The box's local copy of the portal's limit values, else the shipped sample."""
    local = local_limits(state_dir) if state_dir is not None else None
    if local is not None:
        return local
    sample = resources.files("firmware_py.reports") / "emission_limits_sample.toml"
    return parse_limits(sample.read_text(encoding="utf-8"), "the shipped sample")
