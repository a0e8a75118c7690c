"""``vci ticket add|list|remove|revocations``: the tickets on this box."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware_py.config import load_config
from firmware_py.errors import TicketError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = sub.add_parser("ticket", help="tickets on this box").add_subparsers(
        dest="ticket_command", required=True, metavar="ACTION"
    )
    a = t.add_parser("add", help="add a ticket (the text from the portal, or a file with it)")
    a.add_argument("token", nargs="?", help="the ticket text")
    a.add_argument("--file", type=Path, help="read the ticket from a file ('-': standard input)")
    a.set_defaults(func=cmd_add)
    t.add_parser("list", help="tickets with what they allow and their time left").set_defaults(
        func=cmd_list
    )
    r = t.add_parser("remove", help="remove a ticket")
    r.add_argument("tid")
    r.set_defaults(func=cmd_remove)
    v = t.add_parser("revocations", help="apply a revocation list signed by the portal")
    v.add_argument("file", type=Path)
    v.set_defaults(func=cmd_revocations)
    for p in (a, r, v, t.choices["list"]):
        p.add_argument(
            "--state-dir", type=Path, help="state directory (default: [storage] state_dir)"
        )


def _entitlements(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from firmware_py.gateway.setup import open_entitlements
    from firmware_py.gateway.store import Store

    overrides = {"storage": {"state_dir": args.state_dir}} if args.state_dir else {}
    cfg = load_config(Path(args.config) if args.config else None, overrides=overrides)
    return open_entitlements(cfg, Store(cfg.storage.state_dir))


MAX_FILE = 64 * 1024
"""a ticket or revocation list file: far more than any holds (tokens are at most 4,096 characters)"""


def read_token_file(path: Path, what: str = "ticket") -> str:
    """The text of a ticket or revocation list file ('-': standard input): UTF-8, bounded in size;
    anything else is a :class:`TicketError` that says what is wrong with the file."""
    try:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(MAX_FILE + 1)
        else:
            with path.open("rb") as f:
                raw = f.read(MAX_FILE + 1)
    except OSError as err:
        raise TicketError(
            f"cannot read the {what} file {path}: {err.strerror or err}",
            hint="Check the file name",
        ) from err
    if len(raw) > MAX_FILE:
        raise TicketError(
            f"{path} is larger than any {what} ({MAX_FILE} bytes at most)",
            hint=f"Give the file with the {what} from the portal",
        )
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise TicketError(
            f"{path} is not a {what}: it is not UTF-8 text (byte {err.start})",
            hint=f"Give the file with the {what} from the portal, as the portal saved it",
        ) from err


def cmd_add(args: argparse.Namespace) -> int:
    if args.file is not None:
        token = read_token_file(args.file)
    elif args.token:
        token = args.token
    else:
        raise TicketError("give the ticket text or --file")
    info = _entitlements(args).add_ticket(token.strip())
    if args.json:
        print(json.dumps(info.to_dict()))
    else:
        print(
            f"added {info.tid}: {info.tariff_name}, allows {', '.join(info.scopes)}; {info.state}"
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    infos = _entitlements(args).tickets()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos]))
        return 0
    if not infos:
        print(
            "no tickets on this box (reading the VIN, identifying the car and reading fault memory are free)"
        )
    for i in infos:
        left = i.to_dict()["time_left_text"] or (
            f"{i.uses_left} use(s)" if i.uses_left is not None else ""
        )
        vin = f", vehicle {i.vin}" if i.vin else ""
        print(f"{i.tid}  {i.tariff_name:<30} {i.state:<14} {left:<12} {', '.join(i.scopes)}{vin}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    if not _entitlements(args).remove_ticket(args.tid):
        raise TicketError(f"no ticket {args.tid} on this box", hint="vci ticket list shows them")
    print(f"removed {args.tid}")
    return 0


def cmd_revocations(args: argparse.Namespace) -> int:
    n = _entitlements(args).apply_revocations(read_token_file(args.file, "revocation list"))
    print(f"revocation list applied: {n} ticket(s) revoked")
    return 0
