"""Start-up of the ``vci`` command: a command imports only what it runs.

A Raspberry Pi runs Python several times slower than a PC, so every module ``vci --help`` loads
costs the technician time on every command. These tests start ``vci`` as the console script does
(``firmware_py.cli.main`` in a fresh interpreter) and look at ``sys.modules`` afterwards, which
guards start-up without timing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Box, SimHandle

#: What no ``--help`` may load: the web page and portal link (aiohttp, paho), the simulator, the
#: gateway's daemon and job runner, image and ELF readers, the vehicle protocol libraries and
#: our transports above them, and the signature library.
NOT_FOR_HELP = (
    "aiohttp",
    "paho",
    "firmware_py.sim",
    "firmware_py.web",
    "firmware_py.cloud",
    "firmware_py.gateway.service",
    "firmware_py.gateway.jobs",
    "firmware_py.gateway.local",
    "bincopy",
    "elftools",
    "can",
    "isotp",
    "udsoncan",
    "doipclient",
    "firmware_py.transport",
    "firmware_py.uds.ecu",
    "cryptography",
)

#: What ``vci identify`` over DoIP has no use for.
NOT_FOR_IDENTIFY = (
    "aiohttp",
    "paho",
    "firmware_py.sim",
    "firmware_py.web",
    "firmware_py.cloud",
    "firmware_py.gateway.service",
    "bincopy",
    "elftools",
)

RUN_VCI = textwrap.dedent(
    """
    import json, sys
    out, argv = sys.argv[1], sys.argv[2:]
    sys.argv = ["vci", *argv]
    from firmware_py.cli import main
    try:
        code = main()
    except SystemExit as exit:
        code = exit.code
    with open(out, "w") as f:
        json.dump({"code": code, "modules": sorted(sys.modules)}, f)
    """
)


def run_vci(
    tmp_path: Path, *argv: str, env: dict[str, str] | None = None
) -> tuple[object, str, set[str]]:
    """Exit code, standard output and the modules loaded by ``vci ARGV`` in a fresh interpreter."""
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_VCI, str(out), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    assert out.exists(), proc.stderr
    result = json.loads(out.read_text())
    return result["code"], proc.stdout, set(result["modules"])


def loaded(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of ``vci``, as argv prefixes (``()`` is ``vci`` itself)."""
    from firmware_py.cli import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        paths = [prefix]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    paths += walk(sub, (*prefix, name))
        return paths

    return walk(build_parser(), ())


COMMANDS = command_paths()


def test_every_command_group_is_walked() -> None:
    names = {p[0] for p in COMMANDS if p}
    assert {"sim", "identify", "dtc", "flash", "coding", "service", "ticket", "gateway"} <= names
    assert ("service", "reset") in COMMANDS and ("package", "build") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda p: " ".join(p) or "vci")
def test_help_loads_no_heavy_module(tmp_path: Path, command: tuple[str, ...]) -> None:
    code, stdout, modules = run_vci(tmp_path, *command, "--help")
    assert code == 0
    assert stdout.startswith("usage: vci" + "".join(f" {c}" for c in command))
    assert loaded(modules, NOT_FOR_HELP) == []


def test_service_reset_help_names_every_item_of_the_service_description(tmp_path: Path) -> None:
    from firmware_py.uds.service_functions import load_service_description

    desc = load_service_description()
    _, stdout, _ = run_vci(tmp_path, "service", "reset", "--help")
    assert all(item.name in stdout for item in desc.items)
    _, stdout, _ = run_vci(tmp_path, "service", "battery", "--help")
    assert all(name in stdout for name in desc.technologies)


def test_identify_over_doip_loads_no_web_portal_or_simulator(
    tmp_path: Path, box: Box, sim_process: SimHandle
) -> None:
    code, stdout, modules = run_vci(
        tmp_path, "identify", *sim_process.cli_args("doip"), env={"VCI_CONFIG": str(box.config)}
    )
    assert code == 0 and "WBAJA71090B123456" in stdout
    assert loaded(modules, NOT_FOR_IDENTIFY) == []
