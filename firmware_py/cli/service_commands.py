"""Service functions: ``vci service status``, ``vci service reset ITEM``, ``vci service battery``.
Each runs one ``service_reset`` job through the gateway's job runner (a Service or Basic ticket)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from firmware_py.cli.diag_commands import _print_json, _run, _table
from firmware_py.cli.transport_args import add_transport_args


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    service = sub.add_parser(
        "service",
        help="service functions: service status and reset, battery registration",
        description="Condition Based Service status and reset (after an oil change, brake job, "
        "...) and registration of a new battery with the energy management. "
        "Needs a ticket that includes service.",
    ).add_subparsers(dest="service_command", metavar="ACTION", required=True)
    p = service.add_parser("status", help="what is left until each service is due; the battery")
    add_transport_args(p)
    p.set_defaults(func=cmd_status)
    p = service.add_parser("reset", help="reset a service item after the service was done")
    p.add_argument("item", help="engine_oil, brakes_front, brakes_rear, brake_fluid, vehicle_check")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_transport_args(p)
    p.set_defaults(func=cmd_reset)
    p = service.add_parser("battery", help="register a new battery (capacity and technology)")
    p.add_argument("--capacity", type=int, required=True, metavar="AH", help="capacity in Ah")
    p.add_argument(
        "--technology", required=True, choices=("flooded", "efb", "agm"), help="battery type"
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_transport_args(p)
    p.set_defaults(func=cmd_battery)


def _confirmed(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(f"refusing without --yes: {question}", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes", "j", "ja")


def _cbs_table(items: list[dict[str, Any]]) -> str:
    rows = [
        [
            i["text"],
            f"{i['availability']} %",
            "-" if i["remaining_km"] is None else f"{i['remaining_km']} km",
            f"{i['remaining_months']} months",
            "DUE" if i["due"] else "",
        ]
        for i in items
    ]
    return _table(rows, ["service", "left", "distance", "time", ""])


def cmd_status(args: argparse.Namespace) -> int:
    result = _run(args, "service_reset", action="read")
    if args.json:
        _print_json(result)
        return 0
    print(_cbs_table(result["cbs"]))
    b = result["battery"]
    print(
        f"\nbattery: {b['capacity_ah']} Ah {b['technology'].upper()}, "
        f"registered at {b['registered_km']} km"
    )
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    if not _confirmed(args, f"Reset the service item {args.item}?"):
        return 2
    result = _run(args, "service_reset", action="reset", item=args.item)
    if args.json:
        _print_json(result)
        return 0
    after = result["after"]
    print(f"{after['text']}: reset, {after['availability']} % left (read back from the ECU)")
    print(_cbs_table(result["cbs"]))
    return 0


def cmd_battery(args: argparse.Namespace) -> int:
    question = f"Register a new {args.capacity} Ah {args.technology.upper()} battery?"
    if not _confirmed(args, question):
        return 2
    result = _run(
        args,
        "service_reset",
        action="register_battery",
        capacity_ah=args.capacity,
        technology=args.technology,
    )
    if args.json:
        _print_json(result)
        return 0
    b = result["battery"]
    print(
        f"battery registered: {b['capacity_ah']} Ah {b['technology'].upper()} at "
        f"{b['registered_km']} km (read back from the ECU)"
    )
    return 0
