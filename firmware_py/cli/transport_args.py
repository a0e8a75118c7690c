"""Transport options shared by every command that talks to a vehicle."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware_py.config import Config, load_config


def add_transport_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("vehicle link (default: DoIP to the configured host)")
    how = g.add_mutually_exclusive_group()
    how.add_argument(
        "--doip",
        nargs="?",
        const="",
        metavar="HOST[:PORT]",
        help="DoIP (ENET); default host from the configuration",
    )
    how.add_argument("--can", action="store_true", help="ISO-TP on CAN")
    g.add_argument(
        "--can-interface", help="python-can interface (socketcan, slcan, vci_loopback ...)"
    )
    g.add_argument("--can-channel", help="python-can channel (can0, /dev/ttyACM0, GROUP:PORT ...)")
    g.add_argument("--addressing", choices=("bmw", "normal"), help="CAN addressing (default: bmw)")
    g.add_argument(
        "--tester-address",
        type=lambda s: int(s, 0),
        help="our DoIP logical address (default 0x0E80)",
    )


def config_from_args(args: argparse.Namespace) -> tuple[Config, str]:
    """Configuration with the command line's overrides, and the transport kind."""
    transport: dict[str, Any] = {}
    kind = "can" if args.can else "doip"
    if args.doip:
        host, _, port = args.doip.rpartition(":") if ":" in args.doip else (args.doip, "", "")
        transport["doip_host"] = host
        if port:
            transport["doip_port"] = int(port)
    for arg, key in (
        ("can_interface", "can_interface"),
        ("can_channel", "can_channel"),
        ("addressing", "can_addressing"),
        ("tester_address", "tester_address"),
    ):
        if getattr(args, arg, None) is not None:
            transport[key] = getattr(args, arg)
    cfg = load_config(
        Path(args.config) if args.config else None, overrides={"transport": transport}
    )
    return cfg, kind
