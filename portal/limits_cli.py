"""``vci-portal emission-limits publish``: the exhaust limit values (docs/emissions.md) checked
against the schema the box uses, signed for one box with the ticket key, and sent over the
portal link (an ``emission_limits.publish`` message); the box's answer is printed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_py.errors import VciError
from portal import keys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    el = sub.add_parser(
        "emission-limits", help="exhaust limit values for the boxes"
    ).add_subparsers(dest="limits_command", required=True, metavar="ACTION")
    p = el.add_parser(
        "publish",
        help="check a limit values file, sign it for one box and send it (or print it)",
        description="Checks FILE (TOML, the schema of firmware_py/reports/"
        'emission_limits_sample.toml, with source = "portal" and a version of numbers '
        "separated by dots), signs it for the box with the ticket key and, with --broker/--pki/"
        "--user, sends it; the box keeps it unless it has a newer version (docs/emissions.md). "
        "Without --broker the signed statement is printed.",
    )
    p.add_argument("file", type=Path, help="the limit values (TOML)")
    p.add_argument("--box", required=True, help="the box's device id")
    p.add_argument("--key-dir", required=True, type=Path)
    p.add_argument("--kid", help="signing key id (default: the newest key)")
    p.add_argument("--broker", metavar="HOST:PORT")
    p.add_argument("--pki", type=Path, help="directory with ca.pem and <user>.pem/.key")
    p.add_argument("--user", help="portal user (its certificate's common name)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the box")


def run(args: argparse.Namespace) -> int:
    from firmware_py.cloud.schema import Message
    from firmware_py.gateway.limits_update import sign_limits

    try:
        text = args.file.read_text(encoding="utf-8")
        kid, key = keys.load_signing_key(args.key_dir, args.kid)
        token = sign_limits(key, kid, device=args.box, text=text)
    except (OSError, UnicodeDecodeError, VciError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.broker:
        print(token)
        return 0
    if not (args.pki and args.user):
        print("error: --broker needs --pki and --user", file=sys.stderr)
        return 2
    from portal.remote import RemoteError, RemoteSession

    host, _, port = args.broker.rpartition(":")
    session = RemoteSession(host, int(port), args.pki, args.user)
    try:
        message = Message("emission_limits.publish", {"limits": token})
        try:  # the box answers emission_limits.stored or error (the session's FINAL answers)
            answer = session.exchange(args.box, message, args.timeout)
        except RemoteError:
            print(f"error: {args.box} did not answer within {args.timeout:g} s (is it online?)",
                  file=sys.stderr)  # fmt: skip
            return 1
        if answer.type == "emission_limits.stored":
            print(f"{args.box} keeps the emission limit values {answer.body.get('version')} "
                  f"({len(answer.body.get('type_codes') or [])} type codes)")  # fmt: skip
            return 0
        print(f"error: the box refused the limit values: {answer.body.get('message')}",
              file=sys.stderr)  # fmt: skip
        return 2
    finally:
        session.close()
