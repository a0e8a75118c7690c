"""The TOML files of a content set as the validation reads them: :class:`Source` parses a file
and finds the line of a key (in the n-th ``[[table]]``) for its messages; :class:`Record` gives
typed access to one table and records a ``file:line: key: what`` problem for each bad field."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_py.i18n import LANGUAGES, SOURCE


class Source:
    """One TOML file: its name in the set, its table, and where a key's line is (for messages)."""

    def __init__(self, root: Path, path: Path, problems: list[str]) -> None:
        self.name = path.relative_to(root).as_posix()
        self.problems = problems
        self.text = ""
        self.doc: dict[str, Any] | None = None
        try:
            self.text = path.read_text(encoding="utf-8")
            self.doc = tomllib.loads(self.text)
        except UnicodeDecodeError:
            problems.append(f"{self.name}:1: not UTF-8 text")
        except tomllib.TOMLDecodeError as err:  # its message ends "(at line L, column C)"
            found = re.search(r"at line (\d+)", str(err))
            problems.append(f"{self.name}:{found.group(1) if found else 1}: not TOML: {err}")

    def line(self, key: str, table: str | None = None, index: int = 0) -> int:
        """The line of ``key`` (in the ``index``-th ``[[table]]`` when given), else the table's
        header, else 1."""
        lines = self.text.splitlines()
        start, end = 0, len(lines)
        if table is not None:
            headers = [n for n, text in enumerate(lines) if text.strip() == f"[[{table}]]"]
            if index < len(headers):
                start = headers[index]
                end = next((n for n in range(start + 1, len(lines))
                            if lines[n].lstrip().startswith("[")), len(lines))  # fmt: skip
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        found = next((n for n in range(start, end) if pattern.match(lines[n])), start)
        return found + 1

    def problem(self, message: str, key: str, table: str | None = None, index: int = 0) -> None:
        self.problems.append(f"{self.name}:{self.line(key, table, index)}: {message}")


class Record:
    """Typed access to one table of a Source, recording a problem for each bad field."""

    def __init__(self, source: Source, data: Any, table: str | None = None, index: int = 0):
        self.source, self.table, self.index = source, table, index
        self.data = data if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            source.problem("not a table", "", table, index)

    def bad(self, key: str, message: str) -> None:
        self.source.problem(f"{key}: {message}", key, self.table, self.index)

    def text(self, key: str, *, required: bool = True, pattern: re.Pattern[str] | None = None,
             max_len: int = 300) -> str:  # fmt: skip
        value = self.data.get(key)
        if value is None:
            if required:
                self.bad(key, "missing")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.bad(key, "must be a non-empty string")
            return ""
        if len(value) > max_len:
            self.bad(key, f"longer than {max_len} characters")
        elif pattern is not None and not pattern.match(value):
            self.bad(key, f"{value!r} is not of the form {pattern.pattern}")
        return value

    def prose(self, key: str, out: dict[str, Any], *, required: bool = True,
              max_len: int = 300) -> str:  # fmt: skip
        """A text the reader sees, in one language (a string: English) or several
        (``{ en = "...", de = "..." }``, English required). Returns the English text; the others
        go to ``out["i18n"][language][key]``, where the pages look for the reader's."""
        value = self.data.get(key)
        if not isinstance(value, dict):
            return self.text(key, required=required, max_len=max_len)
        unknown = sorted(set(value) - set(LANGUAGES))
        if unknown:
            self.bad(key, f"unknown language(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(LANGUAGES)}")  # fmt: skip
        for code in LANGUAGES:
            text = value.get(code)
            if text is None:
                if code == SOURCE:
                    self.bad(key, f"the {SOURCE} text is missing")
                continue
            if not isinstance(text, str) or not text.strip():
                self.bad(key, f"{code}: must be a non-empty string")
            elif len(text) > max_len:
                self.bad(key, f"{code}: longer than {max_len} characters")
            elif code != SOURCE:
                out.setdefault("i18n", {}).setdefault(code, {})[key] = text
        english = value.get(SOURCE)
        return english if isinstance(english, str) else ""

    def number(self, key: str, *, required: bool = True, low: float = 0, high: float = 1e6,
               integer: bool = False) -> float | None:  # fmt: skip
        value = self.data.get(key)
        if value is None:
            if required:
                self.bad(key, "missing")
            return None
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            self.bad(key, f"must be a{'n integer' if integer else ' number'} from {low} to {high}")
            return None
        return value

    def texts(self, key: str, convert: Callable[[str], str | None] | None = None,
              what: str = "") -> list[str]:  # fmt: skip
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.bad(key, "must be a list of strings")
            return []
        out = []
        for item in value:
            converted = convert(item) if convert else item
            if converted is None:
                self.bad(key, f"{item!r} is not {what}")
            else:
                out.append(converted)
        return out

    def tables(self, key: str) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.bad(key, "must be an array of tables ([[" + key + "]])")
            return []
        return value


def matching(pattern: re.Pattern[str], upper: bool = True) -> Callable[[str], str | None]:
    def convert(text: str) -> str | None:
        t = text.strip().upper() if upper else text.strip()
        return t if pattern.match(t) else None

    return convert
