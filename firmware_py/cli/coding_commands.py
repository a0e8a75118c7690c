"""``vci coding read|set|restore --ecu X``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from firmware_py.cli.transport_args import add_transport_args, config_from_args
from firmware_py.config import load_config
from firmware_py.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser("coding", help="read, change and restore ECU coding").add_subparsers(
        dest="coding_command", required=True, metavar="ACTION"
    )
    for name, help_text in (
        ("read", "show the coding as named parameters"),
        ("set", "change named parameters (NAME=VALUE ...), keeping the previous coding"),
        ("restore", "put the previous coding back"),
    ):
        p = c.add_parser(name, help=help_text)
        p.add_argument("--ecu", required=True, help="ECU name or address (BDC, KOMBI, HU)")
        if name == "set":
            p.add_argument("changes", nargs="+", metavar="NAME=VALUE")
        p.add_argument(
            "--state-dir", type=Path, help="state directory (default: [storage] state_dir)"
        )
        add_transport_args(p)
        p.set_defaults(func=cmd_coding, action=name)


def cmd_coding(args: argparse.Namespace) -> int:
    from firmware_py.gateway.jobs import JobRequest, JobState
    from firmware_py.gateway.local import run_cli_job
    from firmware_py.gateway.setup import entitlement_check
    from firmware_py.gateway.store import Store

    cfg, transport = config_from_args(args)
    if args.state_dir:
        cfg = load_config(
            Path(args.config) if args.config else None,
            overrides={
                "storage": {"state_dir": args.state_dir},
                "transport": cfg.transport.__dict__,
            },
        )
    params: dict[str, Any] = {"action": args.action}
    if args.action == "set":
        changes = {}
        for item in args.changes:
            name, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"{item!r} is not NAME=VALUE")
            changes[name.strip()] = value.strip()
        params["changes"] = changes
    job = run_cli_job(
        cfg,
        transport,
        JobRequest("coding", params, args.ecu),
        entitlements=entitlement_check(cfg),
        services={"store": Store(cfg.storage.state_dir)},
    )
    if job.state is not JobState.DONE:
        err = job.error or {}
        if args.json:
            print(json.dumps(err))
        else:
            import sys

            print(
                f"error: {err.get('message')}" + (f". {err['hint']}" if err.get("hint") else ""),
                file=sys.stderr,
            )
        return 2
    result = job.result or {}
    if args.json:
        print(json.dumps(result))
        return 0
    after = result.get("after")
    for name, value in result["before"].items():
        line = f"{name:<28} {value}"
        if after is not None and after[name] != value:
            line += f" -> {after[name]}"
        print(line)
    if after is not None:
        print(f"{result['ecu']}: coding written and verified")
    return 0
