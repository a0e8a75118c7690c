"""``vci firstboot``: the box's identity (device id, private key, CSR), its Wi-Fi name and key,
hostapd's configuration, the label code and the label sheet in the state directory
(vci-firstboot.service at every boot; it keeps what exists); ``vci label``: print the label sheet
(docs/appliance.md); ``vci enrol``: the box's certificate from the portal (docs/claiming.md)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware_py.config import Config


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    f = sub.add_parser(
        "firstboot",
        help="make the box's identity, Wi-Fi name and key, label code and label sheet (first boot)",
        description="Make what a new box needs, in the state directory, keeping what exists: "
        "its identity (identity/device-id, the private key identity/box.key made here and never "
        "sent anywhere, the certificate signing request identity/box.csr), the Wi-Fi name "
        "VCI-XXXX and a random WPA2 key, hostapd's configuration (wifi/hostapd.conf), the label "
        "code (label-code) and the label sheet (label.txt, label.html with QR codes). Run at "
        "every boot by vci-firstboot.service.",
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
    lab = sub.add_parser(
        "label",
        help="print the box's label sheet (device id, label code, Wi-Fi name and key)",
        description="Print the label sheet vci firstboot made; with --html, write the printable "
        "sheet with its QR codes (join the Wi-Fi, open the page) to FILE ('-': standard output).",
    )
    lab.add_argument("--state-dir", type=Path)
    lab.add_argument("--html", metavar="FILE", help="write the printable HTML sheet to FILE")
    lab.set_defaults(func=cmd_label)
    en = sub.add_parser(
        "enrol",
        help="the box's broker certificate from the portal: status, or ask once",
        description="status (default): the device id, the key, the CSR and whether the box has "
        "a usable certificate. run: send the enrolment request to [cloud] enrol_url once and keep "
        "the certificate if the box has been claimed (with --wait: ask every enrol_interval "
        "seconds until it has). The running gateway does this by itself in the background and "
        "starts its portal link when the certificate comes (docs/claiming.md).",
    )
    en.add_argument("action", nargs="?", choices=("status", "run"), default="status")
    en.add_argument("--wait", action="store_true", help="run: ask until the box is claimed")
    en.add_argument("--state-dir", type=Path)
    en.set_defaults(func=cmd_enrol)


def _config(args: argparse.Namespace) -> Config:
    from firmware_py.config import load_config

    return load_config(
        Path(args.config) if args.config else None,
        overrides={"storage": {"state_dir": args.state_dir}} if args.state_dir else None,
    )


def _state_dir(args: argparse.Namespace) -> tuple[Path, str]:
    from firmware_py.config import device_id

    cfg = _config(args)
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
        f"device {device}: key and CSR in {state_dir / 'identity'}; Wi-Fi {identity.ssid}: "
        f"{state_dir / 'wifi' / 'hostapd.conf'}; label {state_dir / 'label.txt'}, "
        f"{state_dir / 'label.html'}"
    )
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from firmware_py.errors import ConfigError

    state_dir, _ = _state_dir(args)
    name = "label.html" if args.html else "label.txt"
    try:
        text = (state_dir / name).read_text()
    except FileNotFoundError:
        raise ConfigError(
            "this box has no label sheet yet", hint="Run vci firstboot (as the box's user, vci)"
        ) from None
    if args.html and args.html != "-":
        Path(args.html).write_text(text)
        print(f"label sheet: {args.html}")
    else:
        print(text, end="")
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from firmware_py.cli.gateway_commands import label_code
    from firmware_py.cloud.enrol import Enroller, identity_summary
    from firmware_py.errors import ConfigError

    cfg = _config(args)
    if args.action == "run":
        if not cfg.cloud.enrol_url:
            raise ConfigError(
                "no enrolment endpoint", hint="Set [cloud] enrol_url (VCI_CLOUD_ENROL_URL)"
            )
        cfg.storage.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        enroller = Enroller(cfg, label_code(cfg.storage.state_dir))
        if args.wait:
            asyncio.run(enroller.until_enrolled())
            print(f"enrolled: {cfg.cloud.cert_file}")
        else:
            state = asyncio.run(enroller.once())
            print(f"{state.state}: {state.detail}")
            if state.state != "enrolled":
                return 3
        return 0
    summary = identity_summary(cfg)
    print(json.dumps(summary, indent=1))
    return 0 if summary["enrolled"] else 3
