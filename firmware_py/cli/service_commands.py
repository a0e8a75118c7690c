"""Service functions: ``vci service status``, ``vci service reset ITEM``, ``vci service battery``.
Each runs one ``service_reset`` job through the gateway's job runner (a Service or Basic ticket)."""

from __future__ import annotations

import argparse
from typing import Any

from firmware_py.cli.diag_commands import confirmed, print_json, run_job, table
from firmware_py.cli.transport_args import add_transport_args
from firmware_py.uds.service_functions import load_service_description


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
    desc = load_service_description()
    p = service.add_parser("reset", help="reset a service item after the service was done")
    p.add_argument("item", help=", ".join(i.name for i in desc.items))
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_transport_args(p)
    p.set_defaults(func=cmd_reset)
    p = service.add_parser("battery", help="register a new battery (capacity and technology)")
    p.add_argument("--capacity", type=int, required=True, metavar="AH", help="capacity in Ah")
    p.add_argument(
        "--technology", required=True, choices=list(desc.technologies), help="battery type"
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_transport_args(p)
    p.set_defaults(func=cmd_battery)


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
    return table(rows, ["service", "left", "distance", "time", ""])


def cmd_status(args: argparse.Namespace) -> int:
    result = run_job(args, "service_reset", action="read")
    if args.json:
        print_json(result)
        return 0
    print(_cbs_table(result["cbs"]))
    b = result["battery"]
    print(
        f"\nbattery: {b['capacity_ah']} Ah {b['technology'].upper()}, "
        f"registered at {b['registered_km']} km"
    )
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    refused = confirmed(args, f"Reset the service item {args.item}?")
    if refused is not None:
        return refused
    result = run_job(args, "service_reset", action="reset", item=args.item)
    if args.json:
        print_json(result)
        return 0
    after = result["after"]
    print(f"{after['text']}: reset, {after['availability']} % left (read back from the ECU)")
    print(_cbs_table(result["cbs"]))
    return 0


def cmd_battery(args: argparse.Namespace) -> int:
    question = f"Register a new {args.capacity} Ah {args.technology.upper()} battery?"
    refused = confirmed(args, question)
    if refused is not None:
        return refused
    result = run_job(
        args,
        "service_reset",
        action="register_battery",
        capacity_ah=args.capacity,
        technology=args.technology,
    )
    if args.json:
        print_json(result)
        return 0
    b = result["battery"]
    print(
        f"battery registered: {b['capacity_ah']} Ah {b['technology'].upper()} at "
        f"{b['registered_km']} km (read back from the ECU)"
    )
    return 0
