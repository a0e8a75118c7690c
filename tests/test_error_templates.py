"""Every error a tablet or remote user can meet is made with marked templates (docs/translating.md).

Walks the box's user-facing packages' source and lists each ``SomeVciError(<message>,
hint=<hint>)`` (raised there, or built to be raised later) whose message or hint is anything but
``N_("...")``: an f-string, a plain string, a string glued with ``+`` or made with ``.format``,
each of which shows in English inside a German page. A variable, an attribute, a lookup in a
table of marked texts (``HINTS.get(x, N_("..."))``), ``str(err)`` of a caught error or a re-raise
carries a text made elsewhere and is fine. Stricter than tests/test_i18n.py's check, which also
reads the portal's modules and looks for literals and f-strings only.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import firmware_py
from firmware_py.errors import VciError
from firmware_py.i18n import N_

ROOT = Path(firmware_py.__file__).resolve().parent

#: the packages whose errors reach the tablet, a remote user, a job's result or a report
PACKAGES = ("gateway", "uds", "transport", "web", "reports")

#: modules of the box left English on purpose, and why (docs/translating.md, "Still English");
#: they are outside PACKAGES, and this test keeps it so
LEFT_ENGLISH = {
    "sim": "the simulator (vci sim), a developer's and tester's tool",
    "strict_json.py": "the JSON parser's structural errors (its field checks are templates)",
    "config.py": "the configuration file's errors, read by the operator on the command line",
    "keys.py": "the box's key files, an operator's matter",
    "cloud/schema.py": "the portal link's protocol errors, read by the operator in logs",
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
    if isinstance(node, ast.IfExp):
        return _is_template(node.body) and _is_template(node.orelse)
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "str":  # a caught error's own text, passed on
            return len(node.args) == 1 and isinstance(node.args[0], ast.Name)
        return node.func.id == "N_"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        # a table of marked texts: HINTS.get(name) or HINTS.get(name, N_("..."))
        table = node.func.value
        return (
            node.func.attr == "get"
            and isinstance(table, ast.Name | ast.Attribute)
            and all(_is_template(arg) for arg in node.args[1:])
        )
    return isinstance(node, ast.Name | ast.Attribute | ast.Subscript)


def _untranslated(path: Path, errors: set[str]) -> list[str]:
    """Each error made in ``path`` (raised, or built to be raised later) with an unmarked text."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in errors:
            continue
        texts = [("message", arg) for arg in node.args[:1]] + [
            (k.arg, k.value) for k in node.keywords if k.arg in ("message", "hint")
        ]
        found.extend(
            f"{path}:{node.lineno}: {name} {what}" for what, text in texts if not _is_template(text)
        )
    return found


def test_user_facing_errors_are_raised_with_marked_templates():
    errors = _vci_error_names()
    found = [
        line
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in _untranslated(path, errors)
    ]
    assert not found, "raise with N_(...) and values (docs/translating.md):\n" + "\n".join(found)
    assert all((ROOT / name).exists() for name in LEFT_ENGLISH)
    assert not [n for n in LEFT_ENGLISH if n.split("/")[0].removesuffix(".py") in PACKAGES]


def _values_to_others(path: Path, module: object) -> list[str]:
    """Calls in ``path`` that give ``values=`` / ``hint_values=`` to an exception that does not
    take them (a library's, such as udsoncan's TimeoutException, or one of ours with its own
    ``__init__``, such as ContentError): they fail with a TypeError."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if not {k.arg for k in node.keywords} & {"values", "hint_values"}:
            continue
        cls = getattr(module, node.func.id, None)
        if not isinstance(cls, type) or not issubclass(cls, BaseException):
            continue
        takes = inspect.signature(cls.__init__).parameters
        # an __init__ of ours with **texts hands them on to VciError's
        forwards = any(p.kind is p.VAR_KEYWORD for p in takes.values())
        if not issubclass(cls, VciError) or not (
            forwards or {"values", "hint_values"} <= set(takes)
        ):
            found.append(f"{path}:{node.lineno}: {node.func.id}")
    return found


def test_only_our_errors_are_given_templates_with_values():
    """A library's exception takes a message only; converting it like ours (a mechanical
    conversion did, for udsoncan's TimeoutException) breaks every ECU timeout with a TypeError."""
    _vci_error_names()  # imports the packages' modules
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found += _values_to_others(path, importlib.import_module(name))
    assert not found, "values= given to an exception that does not take them:\n" + "\n".join(found)


def test_the_check_sees_an_f_string_and_accepts_a_template_or_a_variable(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "raise EcuError(f'{ecu} is silent')\n"
        "raise EcuError('silent')\n"
        "raise EcuError(N_('{ecu} is silent'), values={'ecu': ecu})\n"
        "raise EcuError(err.text)\n"
        "raise EcuError(str(err)) from err\n"
        "raise EcuError(N_('silent'), hint='Check it')\n"
        "raise EcuError(N_('silent'), hint='One of: ' + names)\n"
        "raise EcuError(N_('silent'), hint=HINTS.get(x, N_('Check it')))\n"
        "raise EcuError(N_('silent'), hint=HINTS.get(x, 'Check it'))\n"
        "raise EcuError('a ' + b)\n"
        "late = EcuError(f'{ecu} is silent')\n"
        "raise ValueError(f'{x}')\n"
    )
    found = _untranslated(source, {"EcuError"})
    assert [line.rsplit(":", 2)[1] for line in found] == ["1", "2", "6", "7", "9", "10", "11"], (
        found
    )


def test_the_values_check_sees_a_library_exception_and_a_narrow_init(tmp_path):
    from types import SimpleNamespace

    from udsoncan.exceptions import TimeoutException

    from firmware_py.errors import ContentError, EcuError

    source = tmp_path / "m.py"
    source.write_text(
        "raise TimeoutException(N_('late {ecu}'), values={'ecu': ecu})\n"
        "raise ContentError(N_('refused {box}'), values={'box': box})\n"
        "raise EcuError(N_('silent {ecu}'), values={'ecu': ecu})\n"
        "raise TimeoutException(f'late {ecu}')\n"
    )
    module = SimpleNamespace(
        TimeoutException=TimeoutException, ContentError=ContentError, EcuError=EcuError
    )
    found = _values_to_others(source, module)
    assert [line.rsplit(":", 2)[1] for line in found] == ["1", "2"], found


def test_a_did_that_is_none_is_refused_in_the_readers_language():
    """A tablet's or portal user's read_did / live-data job names its DIDs; one that is neither
    hex nor a known name was refused with the English of a ValueError."""
    from firmware_py.errors import ConfigError
    from firmware_py.i18n import language
    from firmware_py.uds.dids import parse_did

    assert parse_did("vin") == parse_did("F190") == parse_did("0xF190") == 0xF190
    try:
        parse_did("zz")
    except ConfigError as err:
        assert str(err) == "'zz' is not a DID (four hex digits such as F190, or a name such as vin)"
        assert err.localized(language("de")).startswith("'zz' ist keine DID"), err
    else:
        raise AssertionError("zz was taken for a DID")


def test_a_stopped_flash_keeps_its_templates_with_the_journals_where():
    """A programming job that stops mid-transfer is re-raised with where the journal says it
    stands: the message, the hint and the journal's place all reach the reader's language (the
    English stays as it was)."""
    from firmware_py.errors import FlashError
    from firmware_py.gateway.flash_jobs import with_journal
    from firmware_py.gateway.flash_journal import FlashRecord
    from firmware_py.i18n import language

    record = FlashRecord(
        "j1", [{"ecu": "DME", "version": "2.0"}], 0, 3, "download segment 1", 0, 40960, 10,
        "stopped", "", 0.0,
    )  # fmt: skip
    err = FlashError(
        N_("battery voltage {volts} V is below {min_voltage} V. Nothing was erased"),
        values={"volts": "11.2", "min_voltage": "12.0"},
        hint=N_("Connect a battery charger, then: vci flash --resume"),
    )
    again = with_journal(err, record)
    assert str(again) == (
        "battery voltage 11.2 V is below 12.0 V. Nothing was erased. Connect a battery charger, "
        "then: vci flash --resume. Journal: DME: at step 4 (download segment 1), 10 blocks "
        "(40960 bytes) of segment 1 written - resume with: vci flash --resume"
    )
    german = again.localized(language("de"))
    assert german.startswith("Batteriespannung 11.2 V liegt unter 12.0 V"), german
    assert "Protokoll: DME: bei Schritt 4" in german and "Ladegerät" in german, german
    assert str(with_journal(FlashError(N_("stopped")), None)) == "stopped"
