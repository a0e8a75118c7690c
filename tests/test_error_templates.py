"""Every error a tablet or remote user can meet is raised with a marked template (docs/translating.md).

Walks the user-facing packages' source (no import of the modules under test beyond the exception
tree) and lists each ``raise SomeVciError(<message>)`` whose message is an f-string, a plain string
or any other expression than ``N_("...")``: such a message shows in English inside a German page.
A variable, an attribute or a re-raise carries a text made elsewhere and is fine.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import firmware_py
from firmware_py.errors import VciError

ROOT = Path(firmware_py.__file__).resolve().parent

#: the packages whose errors reach the tablet, a remote user or a job's result
PACKAGES = ("gateway", "uds", "transport", "web")

#: modules whose messages stay English, and why (docs/translating.md, "Still English")
EXCEPTIONS = {
    "strict_json.py": "the JSON parser's protocol errors, read by whoever wrote the request",
    "config.py": "the configuration file's errors, read by the operator on the command line",
    "keys.py": "the box's key files, an operator's matter",
    "ticket_token.py": "the ticket's wire format, seen by the portal's developers",
}


def _vci_error_names() -> set[str]:
    """Names of the VciError classes whose first argument is the message."""
    for package in PACKAGES:
        module = importlib.import_module(f"firmware_py.{package}")
        for info in pkgutil.walk_packages(module.__path__, f"firmware_py.{package}."):
            importlib.import_module(info.name)
    names: set[str] = set()
    todo = [VciError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        first = next(iter(list(inspect.signature(cls.__init__).parameters)[1:2]), None)
        if first == "message":  # NegativeResponseError and kin build their own message
            names.add(cls.__name__)
    return names


def _is_template(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id == "N_"
    return isinstance(node, ast.Name | ast.Attribute | ast.Subscript)


def _untranslated(path: Path, errors: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call):
            continue
        func = node.exc.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in errors:
            continue
        args = node.exc.args[:1] or [k.value for k in node.exc.keywords if k.arg == "message"]
        if args and not _is_template(args[0]):
            found.append(f"{path}:{node.lineno}: {name}")
    return found


def test_user_facing_errors_are_raised_with_marked_templates():
    errors = _vci_error_names()
    found = [
        line
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in EXCEPTIONS
        for line in _untranslated(path, errors)
    ]
    assert not found, "raise with N_(...) and values (docs/translating.md):\n" + "\n".join(found)


def test_the_check_sees_an_f_string_and_accepts_a_template_or_a_variable(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "raise EcuError(f'{ecu} is silent')\n"
        "raise EcuError('silent')\n"
        "raise EcuError(N_('{ecu} is silent'), values={'ecu': ecu})\n"
        "raise EcuError(err.text)\n"
        "raise ValueError(f'{x}')\n"
    )
    found = _untranslated(source, {"EcuError"})
    assert [line.rsplit(":", 2)[1] for line in found] == ["1", "2"], found
