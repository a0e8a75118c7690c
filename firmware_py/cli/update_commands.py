"""``vci update``: the box's system updates through RAUC (docs/update.md).

``vci update install FILE`` installs a signed bundle (``.raucb``) into the inactive root slot,
through RAUC's service (``rauc install``), after asking the running gateway over its admin
socket that no job is queued or running; RAUC's refusals (signature, compatible, space) are
told in the project's words with what to do. ``vci update status`` shows the slots.
``vci update health`` is the health check of every boot (vci-health.service): bounded wait for
the gateway to be ready, its page to answer and its state directory to be readable, then
``rauc status mark-good``; on a slot on trial that never becomes healthy (``--fallback``) it
marks the slot bad and reboots, and GRUB starts the other one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RAUC = "rauc"
HEALTH_URL = "http://192.168.73.1:8080/"
"""the page as vci-gateway.service serves it (the box's Wi-Fi address)"""
GATEWAY_UNIT = "vci-gateway.service"
TRYBOOT_BACKEND = Path("/usr/lib/vci/rauc-tryboot")
"""the Raspberry Pi's RAUC boot-loader backend (image/pi-boot/vci-rauc-tryboot); not on amd64"""

# RAUC's messages (1.8) -> (what happened, what to do). Checked in order, on RAUC's stderr.
RAUC_ERRORS: list[tuple[tuple[str, ...], str, str]] = [
    (
        ("signature", "verif", "cms", "certificate", "keyring"),
        "the bundle's signature does not verify against this box's release keyring: it was not "
        "made by the project's release key, or it was changed after signing",
        "Use a bundle published for this box; nothing was installed",
    ),
    (
        ("compatible",),
        "the bundle is for another kind of box (its compatible string differs from this box's)",
        "Use the bundle for this box (vci update status shows its compatible string)",
    ),
    (
        ("no space", "too large", "too small", "enospc", "exceeds"),
        "the bundle does not fit (no space left for it, or its image is larger than the slot)",
        "Free space where the bundle is, or use a bundle made for this box's layout",
    ),
    (
        ("already in progress", "busy"),
        "another installation is running",
        "Wait for it to finish (vci update status)",
    ),
    (
        ("failed to activate slot",),
        "the new slot was written but could not be made the one to boot next (on the Raspberry "
        "Pi: this kernel cannot arm the firmware's tryboot; journalctl -u rauc says why)",
        "Nothing changes at the next boot; docs/update.md, 'The Raspberry Pi', says what the "
        "Pi needs",
    ),
    (
        ("bundle format", "not allowed"),
        "the bundle's format is not allowed on this box (only verity bundles are)",
        "Make the bundle with image/bundle (format verity)",
    ),
]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    u = sub.add_parser(
        "update",
        help="install a signed system update (RAUC bundle), show the slots, health check",
        description="System updates of the box (docs/update.md): a bundle signed with the "
        "project's release key is written into the inactive root slot and booted once on "
        "trial; the box keeps it only after the gateway is healthy, otherwise it returns to "
        "the previous version by itself.",
    )
    u.add_argument("--state-dir", type=Path, help="the gateway's state directory")
    usub = u.add_subparsers(dest="update_cmd", required=True)
    i = usub.add_parser("install", help="install a bundle (.raucb) into the inactive slot")
    i.add_argument("bundle", type=Path, help="the bundle file (e.g. on a USB stick)")
    i.add_argument("--reboot", action="store_true", help="reboot into the new slot when done")
    i.set_defaults(func=cmd_install)
    s = usub.add_parser("status", help="the root slots, which one runs and which is good")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    h = usub.add_parser("health", help="the boot's health check (vci-health.service)")
    h.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("VCI_HEALTH_TIMEOUT", "300")),
        help="seconds the gateway has to become healthy (default $VCI_HEALTH_TIMEOUT or 300)",
    )
    h.add_argument("--url", default=HEALTH_URL, help="the page to ask (default %(default)s)")
    h.add_argument("--mark", action="store_true", help="rauc status mark-good when healthy")
    h.add_argument(
        "--fallback",
        action="store_true",
        help="when never healthy on a slot on trial and the other slot is good: mark this "
        "slot bad and reboot (the boot loader starts the other slot)",
    )
    h.set_defaults(func=cmd_health)


def _state_dir(args: argparse.Namespace) -> Path:
    from firmware_py.config import load_config

    cfg = load_config(
        Path(args.config) if args.config else None,
        overrides={"storage": {"state_dir": args.state_dir}} if args.state_dir else None,
    )
    return cfg.storage.state_dir


def active_jobs(state_dir: Path) -> list[dict[str, Any]]:
    """The jobs the running gateway has queued or running; none when no gateway runs (then no
    job can run either)."""
    from firmware_py.errors import ConfigError, UpdateError
    from firmware_py.gateway.admin import admin_request

    try:
        status, body = admin_request(state_dir, "GET", "/jobs/active")
    except ConfigError as err:
        if "no gateway is running" in str(err):
            return []
        raise
    if status != 200 or not isinstance(body, dict):
        raise UpdateError(
            f"the gateway did not say whether a job runs (HTTP {status})",
            hint="Check vci-gateway.service (journalctl -u vci-gateway); nothing was installed",
        )
    return list(body.get("active") or [])


def explain_rauc_error(stderr: str) -> tuple[str, str]:
    """(what happened, what to do) for RAUC's error output."""
    low = stderr.lower()
    for needles, message, hint in RAUC_ERRORS:
        if any(n in low for n in needles):
            return message, hint
    return "RAUC could not install the bundle", "Read RAUC's message above; nothing was booted"


def rauc(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    from firmware_py.errors import UpdateError

    try:
        return subprocess.run(
            [RAUC, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise UpdateError(
            "RAUC is not installed on this system", hint="Updates work on the box's image only"
        ) from None
    except subprocess.TimeoutExpired:
        raise UpdateError(
            f"rauc {args[0]} did not finish within {timeout:.0f} s",
            hint="Check rauc.service (journalctl -u rauc)",
        ) from None


def last_error() -> str:
    """RAUC service's LastError (D-Bus property of de.pengutronix.rauc.Installer), or ""."""
    try:
        out = subprocess.run(
            ["busctl", "get-property", "de.pengutronix.rauc", "/",
             "de.pengutronix.rauc.Installer", "LastError"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    # busctl prints: s "the message"
    return out[2:].strip().strip('"') if out.startswith("s ") else out


def rauc_status() -> dict[str, Any]:
    from firmware_py.errors import UpdateError

    result = rauc("status", "--detailed", "--output-format=json")
    if result.returncode != 0:
        raise UpdateError(
            f"rauc status failed: {result.stderr.strip()}",
            hint="Check rauc.service (journalctl -u rauc)",
        )
    data = json.loads(result.stdout)
    return data if isinstance(data, dict) else {}


def slots(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{slot name: its fields} from ``rauc status --output-format=json``."""
    out: dict[str, dict[str, Any]] = {}
    for entry in status.get("slots") or []:
        for name, fields in dict(entry).items():
            out[name] = dict(fields)
    return out


def cmd_install(args: argparse.Namespace) -> int:
    from firmware_py.errors import UpdateError

    bundle = args.bundle
    if not bundle.is_file():
        raise UpdateError(f"no bundle at {bundle}", hint="Give the .raucb file's path")
    jobs = active_jobs(_state_dir(args))
    if jobs:
        names = ", ".join(f"{j.get('kind')} {j.get('id')} ({j.get('state')})" for j in jobs)
        raise UpdateError(
            f"a job is queued or running on the box: {names}",
            hint="Install the update when the job has finished (an update never interrupts a "
            "job on a car); nothing was installed",
        )
    print(f"installing {bundle} into the inactive slot ...", flush=True)
    t0 = time.monotonic()
    result = rauc("install", str(bundle), timeout=1800.0)
    if result.returncode != 0:
        # the rauc client says only that it failed; the reason is the service's LastError
        reason = last_error() or result.stderr.strip()
        print(f"RAUC: {reason}", file=sys.stderr)
        message, hint = explain_rauc_error(f"{reason}\n{result.stderr}")
        raise UpdateError(message, hint=hint)
    status = rauc_status()
    primary = status.get("boot_primary") or "?"
    info = slots(status).get(primary, {})
    version = (info.get("slot_status") or {}).get("bundle", {}).get("version") or "?"
    print(
        f"installed version {version} into {primary} in {time.monotonic() - t0:.0f} s; it "
        "starts on trial at the next boot and is kept once the gateway is healthy",
        flush=True,
    )
    if args.reboot:
        subprocess.run(reboot_command(), check=False)
    return 0


def reboot_command(backend: Path = TRYBOOT_BACKEND) -> list[str]:
    """``systemctl reboot``, with ``0 tryboot`` on the Raspberry Pi when its backend has armed
    a trial (the firmware then starts the new slot once; any later reset starts the old one).
    The VM's GRUB needs no argument: its environment already names the slot to try."""
    if not backend.exists():
        return ["systemctl", "reboot"]
    arg = subprocess.run(
        [str(backend), "reboot-argument"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    return ["systemctl", "reboot", arg] if arg else ["systemctl", "reboot"]


def cmd_status(args: argparse.Namespace) -> int:
    status = rauc_status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"compatible {status.get('compatible')}, booted {status.get('booted')}, "
          f"next boot {status.get('boot_primary')}")  # fmt: skip
    for name, info in slots(status).items():
        bundle = (info.get("slot_status") or {}).get("bundle") or {}
        print(
            f"  {name}: bootname {info.get('bootname')}, {info.get('state')}, "
            f"boot status {info.get('boot_status')}, version {bundle.get('version', '-')}"
        )
    return 0


def healthy(url: str, state_dir: Path) -> str | None:
    """None when the gateway is healthy, else what is not yet."""
    import urllib.error
    import urllib.request

    props = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState", "-p", "SubState", GATEWAY_UNIT],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    if "ActiveState=active" not in props or "SubState=running" not in props:
        return f"{GATEWAY_UNIT} is not ready (READY=1): {' '.join(props.split())}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            if resp.status != 200:
                return f"the page {url} answered HTTP {resp.status}"
    except (urllib.error.URLError, OSError) as err:
        return f"the page {url} does not answer: {err}"
    try:
        os.listdir(state_dir)
    except OSError as err:
        return f"the state directory {state_dir} is not readable: {err}"
    return None


def cmd_health(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    deadline = time.monotonic() + args.timeout
    problem = healthy(args.url, state_dir)
    said = ""
    while problem is not None and time.monotonic() < deadline:
        if problem != said:  # each new reason once, in the journal
            print(f"waiting: {problem}", flush=True)
            said = problem
        time.sleep(2.0)
        problem = healthy(args.url, state_dir)
    if problem is None:
        print("healthy: gateway ready, page answers, state directory readable", flush=True)
        if args.mark:
            result = rauc("status", "mark-good", "booted")
            print(result.stdout.strip() or result.stderr.strip(), flush=True)
            return 0 if result.returncode == 0 else 1
        return 0
    print(f"not healthy after {args.timeout:.0f} s: {problem}", flush=True)
    if not args.fallback:
        return 1
    status = rauc_status()
    booted = status.get("booted")
    others = [
        (name, info)
        for name, info in slots(status).items()
        if info.get("bootname") and info.get("bootname") != booted
    ]
    if not any(info.get("boot_status") == "good" for _, info in others):
        print("no other good slot to fall back to: staying on this one", flush=True)
        return 1
    print(f"marking slot {booted} bad and rebooting into the other slot", flush=True)
    result = rauc("status", "mark-bad", "booted")
    print(result.stdout.strip() or result.stderr.strip(), flush=True)
    subprocess.run(["systemctl", "reboot"], check=False)
    return 1
