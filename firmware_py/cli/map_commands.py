"""Navigation map updates: ``vci map update --manifest FILE --activation FILE``, one
``map_update`` job through the gateway's job runner (a ticket that includes repair_information:
Informationssuche or Basic; docs/maps.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware_py.cli.transport_args import add_transport_args


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    maps = sub.add_parser(
        "map",
        help="navigation map updates of the head unit",
        description="Fetch a map data package the portal published (its signed manifest), "
        "install it into the head unit's map region over ENET (DoIP or HSFZ) and activate it "
        "with the car's activation code. Needs a ticket that includes repair_information.",
    ).add_subparsers(dest="map_command", metavar="ACTION", required=True)
    p = maps.add_parser("update", help="download, install and activate a map package")
    p.add_argument("--manifest", required=True, type=Path, help="file with the signed manifest")
    p.add_argument("--activation", required=True, type=Path, help="file with the activation code")
    add_transport_args(p)
    p.set_defaults(func=cmd_update)


def cmd_update(args: argparse.Namespace) -> int:
    from firmware_py.cli.flash_commands import ProgressPrinter
    from firmware_py.cli.transport_args import config_from_args
    from firmware_py.gateway.jobs import JobRequest, JobState
    from firmware_py.gateway.local import run_cli_job
    from firmware_py.gateway.setup import entitlement_check
    from firmware_py.gateway.store import Store

    params = {
        "manifest": args.manifest.read_text().strip(),
        "activation": args.activation.read_text().strip(),
    }
    cfg, transport = config_from_args(args)
    job = run_cli_job(
        cfg,
        transport,
        JobRequest("map_update", params),
        entitlements=entitlement_check(cfg),
        on_event=ProgressPrinter(args.json),
        services={"store": Store(cfg.storage.state_dir)},
    )
    if job.state is not JobState.DONE:
        err = job.error or {}
        if args.json:
            print(json.dumps({"kind": "job.failed", **err}))
        else:
            hint = f". {err['hint']}" if err.get("hint") else ""
            print(f"error: {err.get('message')}{hint}", file=sys.stderr)
        return 2
    r = job.result or {}
    if not args.json:
        print(f"{r['ecu']}: map {r['map']} installed and active ({r['bytes']} bytes)")
    return 0
