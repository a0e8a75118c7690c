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
    register_booklet(service)


def _cbs_table(items: list[dict[str, Any]]) -> str:
    from firmware_py.i18n import from_environment, language

    reader = language(from_environment())  # the data file's item names in the locale's language
    rows = [
        [
            reader.choose(i.get("texts") or i["text"]),
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


# -- the electronic service booklet (docs/service-booklet.md) ------------------------------------
def register_booklet(service: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    desc = load_service_description()
    p = service.add_parser("history", help="the service booklet the car keeps")
    add_transport_args(p)
    p.set_defaults(func=cmd_history)
    p = service.add_parser(
        "record",
        help="record a service in the car's booklet (the items must be reset; sent to the portal)",
    )
    p.add_argument(
        "--items", required=True, help="the service items done, comma-separated: "
        + ", ".join(i.name for i in desc.items),
    )  # fmt: skip
    p.add_argument("--note", default="", help="a short note (up to 28 characters)")
    p.add_argument("--workshop", help="workshop id (default: this box's device id)")
    p.add_argument("--reset", action="store_true", help="reset the items that are not reset")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_transport_args(p)
    p.set_defaults(func=cmd_record)


def _history_table(history: list[dict[str, Any]]) -> str:
    rows = [
        [str(e["index"]), e["date"], f"{e['mileage_km']} km", ", ".join(e["items"]),
         e["workshop"], e["note"]]
        for e in history
    ]  # fmt: skip
    return table(rows, ["#", "date", "mileage", "service", "workshop", "note"])


def cmd_history(args: argparse.Namespace) -> int:
    result = run_job(args, "service_history", action="read")
    if args.json:
        print_json(result)
        return 0
    print(f"service booklet of {result['vin']}")
    print(_history_table(result["history"]) if result["history"] else "no entries")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from firmware_py.cli.diag_commands import _JobFailed
    from firmware_py.cli.transport_args import config_from_args
    from firmware_py.config import device_id

    items = [i.strip() for i in args.items.split(",") if i.strip()]
    workshop = args.workshop if args.workshop is not None else device_id(config_from_args(args)[0])
    refused = confirmed(args, f"Record the service ({', '.join(items)}) in the car's booklet?")
    if refused is not None:
        return refused
    params = {"action": "record", "items": items, "note": args.note, "workshop": workshop[:16]}
    try:
        result = run_job(args, "service_history", **params, reset=args.reset)
    except _JobFailed as err:
        if "were not reset" not in str(err) or args.reset:
            raise
        # --yes confirms the record, not resets: without --reset only a technician at a
        # terminal says yes to them
        if confirmed(argparse.Namespace(yes=False), f"{err}. Reset them now?") is not None:
            raise
        result = run_job(args, "service_history", **params, reset=True)
    if args.json:
        print_json(result)
        return 0
    entry = result["entry"]
    if result.get("reset"):
        print("reset: " + ", ".join(result["reset"]))
    said = "recorded" if result.get("new") else "already recorded"
    print(f"{said}: entry {entry['index']} at {entry['mileage_km']} km (read back from the car)")
    print("it goes to the portal's booklet for " + result["vin"])
    print(_history_table(result["history"]))
    return 0
