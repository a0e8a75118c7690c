"""The ``vci`` command line.

One module per group of commands; each exposes ``register(subparsers)`` which adds its
sub-commands and sets ``func`` (called with the parsed ``argparse.Namespace``, returns the
exit code). ``VciError`` raised by a command is printed as a sentence (or as JSON with
``--json``) and ends the command with exit code 2; nothing prints a traceback at a user.

Start-up: every ``vci`` run builds the whole parser, so a command module's top imports only
what building its parser needs: the standard library, ``firmware_py.errors``,
``firmware_py.config``, ``transport_args`` and small data-file readers that use ``tomllib``
alone (the service items and battery types of ``vci service``). What a command *runs* (the
gateway's job runner, the simulator, aiohttp, the vehicle libraries, bincopy, cryptography) its
handler imports in its first lines, so only the command that runs pays for it; annotations name
those types under ``TYPE_CHECKING``. ``tests/test_cli_startup.py`` checks each ``--help`` for
modules it must not load, and ``bench/bench_startup.py`` measures start-up
(docs/performance.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from firmware_py import __version__
from firmware_py.errors import VciError

#: Command modules, imported in this order to build ``vci --help`` (cheap imports only: above).
COMMAND_MODULES = (
    "firmware_py.cli.sim_commands",
    "firmware_py.cli.diag_commands",
    "firmware_py.cli.flash_commands",
    "firmware_py.cli.service_commands",
    "firmware_py.cli.map_commands",
    "firmware_py.cli.report_commands",
    "firmware_py.cli.ticket_commands",
    "firmware_py.cli.gateway_commands",
    "firmware_py.cli.box_commands",
    "firmware_py.cli.update_commands",
    "firmware_py.cli.helpdesk_commands",
    "firmware_py.cli.privacy_commands",
)

TRACE = 5
logging.addLevelName(TRACE, "TRACE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vci",
        description="Open VCI gateway: diagnosis, coding and programming over ENET (DoIP, HSFZ) and CAN.",
    )
    parser.add_argument("--version", action="version", version=f"vci {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration (default: $VCI_CONFIG or /etc/vci/vci.toml)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vvv: frame trace)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON instead of text"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}.get(args.verbose, TRACE)
    logging.basicConfig(
        level=level, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.verbose < 2:
        # udsoncan logs every exception it passes on at ERROR and can-isotp every timeout at
        # WARNING; we report them ourselves, as sentences.
        logging.getLogger("UdsClient").setLevel(logging.CRITICAL)
        logging.getLogger("isotp").setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from firmware_py.cli.privileges import run_as_state_owner

    user = run_as_state_owner(args)
    if user is not None:
        logging.getLogger("vci").info("running as %s, the owner of the state directory", user)
    try:
        return int(args.func(args) or 0)
    except VciError as err:
        if args.json:
            print(json.dumps(err.to_dict()))
        else:
            # English unless the locale names a language we have (docs/translating.md)
            from firmware_py.i18n import from_environment, language

            print(f"error: {err.localized(language(from_environment()))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
