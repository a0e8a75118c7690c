"""``vci firstboot``: the box's Wi-Fi name and key, hostapd's configuration, the pairing code and
the label sheet in the state directory (vci-firstboot.service at every boot; it keeps what
exists); ``vci label``: print the label sheet (docs/appliance.md)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    f = sub.add_parser(
        "firstboot",
        help="make the box's Wi-Fi name and key, its pairing code and label sheet (first boot)",
        description="Make what a new box needs on its Wi-Fi, in the state directory, keeping "
        "what exists: the name VCI-XXXX and a random WPA2 key, hostapd's configuration "
        "(wifi/hostapd.conf), the pairing code and the label sheet (label.txt). Run at every "
        "boot by vci-firstboot.service.",
    )
    f.add_argument("--state-dir", type=Path)
    f.add_argument(
        "--country",
        default="",
        help="ISO 3166-1 country of the Wi-Fi's regulatory domain, e.g. DE (default: none, the "
        "world domain's channels)",
    )
    f.add_argument(
        "--set-hostname",
        action="store_true",
        help="only set the hostname vci-xxxx (the mDNS name vci-xxxx.local); needs root",
    )
    f.set_defaults(func=cmd_firstboot)
    lab = sub.add_parser("label", help="print the box's label sheet (Wi-Fi name and key, pairing)")
    lab.add_argument("--state-dir", type=Path)
    lab.set_defaults(func=cmd_label)


def _state_dir(args: argparse.Namespace) -> tuple[Path, str]:
    from firmware_py.config import device_id, load_config

    cfg = load_config(
        Path(args.config) if args.config else None,
        overrides={"storage": {"state_dir": args.state_dir}} if args.state_dir else None,
    )
    return cfg.storage.state_dir, device_id(cfg)


def cmd_firstboot(args: argparse.Namespace) -> int:
    from firmware_py.cli.gateway_commands import label_code
    from firmware_py.gateway.firstboot import provision, wifi_identity

    state_dir, device = _state_dir(args)
    if args.set_hostname:
        hostname = wifi_identity(state_dir, device).hostname
        if socket.gethostname() != hostname:
            socket.sethostname(hostname)
        print(f"hostname {hostname} (mDNS: {hostname}.local)")
        return 0
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = provision(state_dir, device, label_code(state_dir), args.country)
    print(
        f"Wi-Fi {identity.ssid}: {state_dir / 'wifi' / 'hostapd.conf'}, label {state_dir / 'label.txt'}"
    )
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from firmware_py.errors import ConfigError

    state_dir, _ = _state_dir(args)
    try:
        print((state_dir / "label.txt").read_text(), end="")
    except FileNotFoundError:
        raise ConfigError(
            "this box has no label sheet yet", hint="Run vci firstboot (as the box's user, vci)"
        ) from None
    return 0
