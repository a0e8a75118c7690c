"""Transport options shared by every command that talks to a vehicle."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware_py.config import Config, load_config


def add_transport_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "vehicle link (default: ENET to the configured host, DoIP or HSFZ as the car answers)"
    )
    how = g.add_mutually_exclusive_group()
    how.add_argument(
        "--enet",
        choices=("auto", "doip", "hsfz"),
        help="ENET protocol; auto asks DoIP and HSFZ identification together (default: configured, auto)",
    )
    how.add_argument(
        "--doip",
        nargs="?",
        const="",
        metavar="HOST[:PORT]",
        help="DoIP (ISO 13400) on ENET; default host from the configuration",
    )
    how.add_argument(
        "--hsfz",
        nargs="?",
        const="",
        metavar="HOST[:PORT]",
        help="BMW HSFZ on ENET (TCP 6801); default host from the configuration",
    )
    how.add_argument("--can", action="store_true", help="ISO-TP on CAN")
    g.add_argument("--enet-host", help="the car's ENET address (for --enet; default: configured)")
    g.add_argument(
        "--can-interface", help="python-can interface (socketcan, slcan, vci_loopback ...)"
    )
    g.add_argument("--can-channel", help="python-can channel (can0, /dev/ttyACM0, GROUP:PORT ...)")
    g.add_argument(
        "--isotp-stack",
        choices=("auto", "kernel", "user"),
        help="ISO-TP on CAN: the kernel's CAN_ISOTP sockets (socketcan only), can-isotp's "
        "user-space stack, or auto (the kernel's when it has them; default: configured, auto)",
    )
    g.add_argument("--addressing", choices=("bmw", "normal"), help="CAN addressing (default: bmw)")
    g.add_argument(
        "--tester-address",
        type=lambda s: int(s, 0),
        help="our DoIP logical address (default: [transport] tester_address, 0x0E80 unless configured)",
    )


def _host_port(text: str) -> tuple[str, str]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host, port


def config_from_args(args: argparse.Namespace) -> tuple[Config, str]:
    """Configuration with the command line's overrides, and the transport kind (``enet``,
    ``doip``, ``hsfz`` or ``can``)."""
    transport: dict[str, Any] = {}
    if getattr(args, "can", False):
        kind = "can"
    elif getattr(args, "doip", None) is not None:
        kind = "doip"
    elif getattr(args, "hsfz", None) is not None:
        kind = "hsfz"
    else:
        kind = "enet"
        if getattr(args, "enet", None):
            transport["enet"] = args.enet
    for flag, port_key in (("doip", "doip_port"), ("hsfz", "hsfz_port")):
        if getattr(args, flag, None):
            host, port = _host_port(getattr(args, flag))
            transport["doip_host"] = host
            if port:
                transport[port_key] = int(port)
    if getattr(args, "enet_host", None):
        transport["doip_host"] = args.enet_host
    for arg, key in (
        ("can_interface", "can_interface"),
        ("can_channel", "can_channel"),
        ("addressing", "can_addressing"),
        ("isotp_stack", "isotp_stack"),
        ("tester_address", "tester_address"),
    ):
        if getattr(args, arg, None) is not None:
            transport[key] = getattr(args, arg)
    cfg = load_config(
        Path(args.config) if args.config else None, overrides={"transport": transport}
    )
    return cfg, kind
