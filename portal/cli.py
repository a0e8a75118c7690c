"""``vci-portal``: the reference portal's command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from firmware_py.errors import VciError
from firmware_py.gateway.tariffs import TARIFFS
from portal import account_cli, box_cli, keys, limits_cli, map_cli, package_cli, tickets


def _time(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vci-portal",
        description="Reference portal: signing keys, tickets, revocations, remote jobs on boxes, the WebSocket bridge, enrolling and claiming boxes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    k = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    g = k.add_parser("generate", help="make a new Ed25519 signing key (<kid>.key, <kid>.pub)")
    g.add_argument("--out", required=True, type=Path, help="key directory")
    g.add_argument("--kid", help="key id (default: portal-<date>-<time>)")

    sub.add_parser("tariffs", help="list the tariffs")

    t = sub.add_parser("ticket", help="tickets").add_subparsers(
        dest="ticket_command", required=True, metavar="ACTION"
    )
    i = t.add_parser("issue", help="issue a signed ticket and print it")
    i.add_argument("--tariff", required=True, choices=sorted(TARIFFS))
    i.add_argument("--device", required=True, help="device id of the box the ticket is for")
    i.add_argument("--vin", help="bind the ticket to one vehicle")
    i.add_argument("--key-dir", required=True, type=Path)
    i.add_argument("--kid", help="signing key id (default: the newest key)")
    i.add_argument(
        "--not-before", type=_time, help="fixed window start, ISO time (default: from activation)"
    )
    i.add_argument(
        "--not-after",
        type=_time,
        help="fixed window end, ISO time (default: tariff duration from activation)",
    )
    account_cli.register(sub, t)  # db, workshop, user, credit; ticket buy

    tb = sub.add_parser(
        "time-beacon", help="print the portal's time signed for one box (a time.beacon's body)"
    )
    tb.add_argument("--device", required=True, help="device id of the box")
    tb.add_argument("--key-dir", required=True, type=Path)
    tb.add_argument("--kid", help="signing key id (default: the newest key)")

    uo = sub.add_parser(
        "update-offer",
        help="offer a box a software update bundle (signed); print it, or send it with --broker",
        description="Signs an offer of BUNDLE (its size and SHA-256) for one box with the ticket "
        "key: the box downloads it from --url (HTTP ranges, resumable), checks it and installs it "
        "when no job runs (docs/update.md). With --broker/--pki/--user it is sent as an "
        "update.offer message and the box's refusal, if any, is printed.",
    )
    uo.add_argument("box", help="the box's device id")
    uo.add_argument("--bundle", required=True, type=Path, help="the .raucb file")
    uo.add_argument("--url", required=True, help="where the box downloads it (http or https)")
    uo.add_argument("--version", required=True, help="the bundle's release version, e.g. 2026.12.1")
    uo.add_argument("--compatible", required=True, help="the boxes it is for (RAUC compatible)")
    uo.add_argument("--key-dir", required=True, type=Path)
    uo.add_argument("--kid", help="signing key id (default: the newest key)")
    uo.add_argument("--broker", metavar="HOST:PORT")
    uo.add_argument("--pki", type=Path, help="directory with ca.pem and <user>.pem/.key")
    uo.add_argument("--user", help="portal user (its certificate's common name)")

    limits_cli.register(sub)  # emission-limits publish
    map_cli.register(sub)  # map sample, publish, activation, offer
    package_cli.register(sub)  # packages add, list

    r = sub.add_parser(
        "revoke",
        help="revoke a ticket; the list goes to its box when the portal sold it (else export it)",
    )
    r.add_argument("tid")
    r.add_argument("--key-dir", required=True, type=Path)
    r.add_argument("--db", metavar="URL|FILE", help=box_cli.DB_HELP)
    e = sub.add_parser("revocations", help="revocation lists").add_subparsers(
        dest="rev_command", required=True, metavar="ACTION"
    )
    x = e.add_parser("export", help="print the signed revocation list")
    x.add_argument("--key-dir", required=True, type=Path)
    x.add_argument("--kid")

    rm = sub.add_parser("remote", help="run a job on a box through the broker, with live progress")
    rm.add_argument("box", help="the box's device id")
    rm.add_argument(
        "kind",
        help="job: identify, read_fault_memory, clear_fault_memory, coding, service_reset, "
        "programming, ...",
    )
    rm.add_argument("--ecu")
    rm.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a job parameter: key=text, or key:=JSON for numbers and lists (interval:=0.5)",
    )
    rm.add_argument(
        "--ticket", help="the ticket the job runs under (sent to the box, which checks it)"
    )
    rm.add_argument("--broker", required=True, metavar="HOST:PORT")
    rm.add_argument(
        "--pki", required=True, type=Path, help="directory with ca.pem and <user>.pem/.key"
    )
    rm.add_argument("--user", required=True, help="portal user (its certificate's common name)")

    u = sub.add_parser(
        "uds",
        help="one raw UDS request, sent through the broker and executed by the box with its own timing",
    )
    u.add_argument("box", help="the box's device id")
    u.add_argument("ecu", help="ECU name (DME, EGS ...) or address")
    u.add_argument("request", help="the request as hex, e.g. 22F190")
    u.add_argument("--ticket")
    u.add_argument("--broker", required=True, metavar="HOST:PORT")
    u.add_argument("--pki", required=True, type=Path)
    u.add_argument("--user", required=True)

    b = sub.add_parser("boxes", help="list the boxes this user serves and whether they are online")
    b.add_argument("--broker", required=True, metavar="HOST:PORT")
    b.add_argument("--pki", required=True, type=Path)
    b.add_argument("--user", required=True)

    pk = sub.add_parser(
        "pki", help="a CA and certificates for the broker, the bridge, boxes and portal users"
    ).add_subparsers(dest="pki_command", required=True, metavar="ACTION")
    pi = pk.add_parser("init", help="make a CA (ca.pem, ca.key) in DIR")
    pi.add_argument("--dir", required=True, type=Path)
    ps = pk.add_parser(
        "issue",
        help="issue NAME.pem/NAME.key signed by the CA in DIR (a box: its device id; a user: its name)",
    )
    ps.add_argument("name")
    ps.add_argument("--dir", required=True, type=Path)
    ps.add_argument("--server", action="store_true", help="a server certificate (broker, bridge)")
    ps.add_argument(
        "--host",
        action="append",
        default=[],
        help="a name or address the server is reached by (besides localhost, 127.0.0.1)",
    )

    c = sub.add_parser(
        "console",
        help="web console for one portal user: boxes online, jobs with live progress, records",
        description="Serves the console on HOST:PORT (loopback by default) and prints the URL "
        "with its access token. Keeps the boxes' outbox records in --records.",
    )
    c.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT")
    c.add_argument("--broker", required=True, metavar="HOST:PORT")
    c.add_argument("--pki", required=True, type=Path)
    c.add_argument("--user", required=True)
    c.add_argument(
        "--records", type=Path, default=Path("portal-records.sqlite"), help="SQLite file"
    )
    c.add_argument(
        "--records-days",
        type=float,
        default=365.0,
        help="days job results and remote session logs are kept (0: for good; ticket use and "
        "service booklet entries are kept whatever this says; docs/data-protection.md)",
    )

    w = sub.add_parser(
        "ws-bridge",
        help="relay boxes that reach the portal over WebSocket (HTTPS) to the broker",
        description="Boxes on networks that block the MQTT port connect to wss://HOST:PORT/vci/box "
        "with their client certificate; the bridge relays each one's messages to the broker under "
        "its own topics (docs/remote-protocol.md).",
    )
    w.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT")
    w.add_argument("--broker", required=True, metavar="HOST:PORT")
    w.add_argument(
        "--pki",
        required=True,
        type=Path,
        help="directory with ca.pem (the CA boxes' certificates are checked against), "
        "<identity>.pem/.key (the bridge's client certificate for the broker)",
    )
    w.add_argument("--identity", default="ws-bridge", help="the bridge's name at the broker")
    w.add_argument(
        "--cert", type=Path, help="the HTTPS server certificate (default: PKI/broker.pem)"
    )
    w.add_argument("--key", type=Path, help="its key (default: PKI/broker.key)")

    box_cli.register(sub)  # enrol serve; box claim, revoke, list

    from portal import service_cli

    service_cli.register(sub)  # booklet, helpdesk, privacy
    from portal import content_cli

    content_cli.register(sub)  # content import, show (runs through account_cli.run)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "account_handler", None):
            return account_cli.run(args)
        if args.command in ("booklet", "helpdesk", "privacy"):
            return service_cli.run(args)
        if args.command == "keys":
            print(keys.generate(args.out, args.kid))
        elif args.command == "tariffs":
            for tariff in TARIFFS.values():
                span = f"{tariff.duration // 3600} h" if tariff.duration else f"{tariff.uses} use"
                print(
                    f"{tariff.id:<10} {tariff.name:<32} {tariff.price_eur:>7g} EUR  {span:<8} {', '.join(sorted(tariff.scopes))}"
                )
        elif args.command == "ticket":
            kid, key = keys.load_signing_key(args.key_dir, args.kid)
            print(
                tickets.issue(
                    key,
                    kid,
                    tariff=args.tariff,
                    device=args.device,
                    vin=args.vin,
                    not_before=args.not_before,
                    not_after=args.not_after,
                )
            )
        elif args.command == "time-beacon":
            kid, key = keys.load_signing_key(args.key_dir, args.kid)
            print(tickets.time_beacon(key, kid, args.device))
        elif args.command == "update-offer":
            return _update_offer(args)
        elif args.command == "emission-limits":
            return limits_cli.run(args)
        elif args.command == "map":
            return map_cli.run(args)
        elif args.command == "packages":
            return package_cli.run(args)
        elif args.command == "revoke":
            return _revoke(args)
        elif args.command == "remote":
            return _remote(args)
        elif args.command == "boxes":
            return _boxes(args)
        elif args.command == "uds":
            return _uds(args)
        elif args.command == "ws-bridge":
            return _ws_bridge(args)
        elif args.command == "console":
            return _console(args)
        elif args.command == "pki":
            from portal import pki

            if args.pki_command == "init":
                if (args.dir / "ca.key").exists():
                    raise ValueError(f"{args.dir} already has a CA")
                pki.make_ca(args.dir)
                print(args.dir / "ca.pem")
            else:
                print(*pki.issue(args.dir, args.name, server=args.server, hosts=tuple(args.host)))
        elif args.command in ("enrol", "box"):
            return box_cli.run(args)
        elif args.command == "revocations":
            kid, key = keys.load_signing_key(args.key_dir, args.kid)
            print(tickets.RevocationList(args.key_dir).export(key, kid))
    except (OSError, ValueError, VciError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _update_offer(args: argparse.Namespace) -> int:
    import queue
    import time

    from firmware_py.cloud import topics
    from firmware_py.cloud.schema import Message

    kid, key = keys.load_signing_key(args.key_dir, args.kid)
    token = tickets.update_offer(
        key, kid, device=args.box, bundle=args.bundle, url=args.url, version=args.version,
        compatible=args.compatible,
    )  # fmt: skip
    if not args.broker:
        print(token)
        return 0
    if not (args.pki and args.user):
        print("error: --broker needs --pki and --user", file=sys.stderr)
        return 2
    from portal.remote import RemoteSession

    host, _, port = args.broker.rpartition(":")
    session = RemoteSession(host, int(port), args.pki, args.user)
    try:
        session.subscribe(topics.responses(args.box, args.user))
        message = Message("update.offer", {"offer": token})
        session.send(args.box, message)
        # the box answers only a refusal; none within a few seconds: taken (or the box is away)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                _, answer = session.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if answer.corr == message.id and answer.type == "error":
                print(f"error: the box refused the offer: {answer.body.get('message')}",
                      file=sys.stderr)  # fmt: skip
                return 2
        print(f"offered {args.version} to {args.box}")
        return 0
    finally:
        session.close()


def _revoke(args: argparse.Namespace) -> int:
    import os

    from portal.db.engine import open_database, state_dir
    from portal.delivery import revoke_ticket

    revocations = tickets.RevocationList(args.key_dir)
    if (
        not (args.db or os.environ.get("VCI_PORTAL_DB"))
        and not (state_dir() / "portal.sqlite3").exists()
    ):  # no portal database here: a reference set-up without one (no purchases)
        print(f"revocation list now at sequence {revocations.revoke(args.tid)}")
        return 0
    engine, factory = open_database(box_cli.database(args.db))
    try:
        sequence, delivery = revoke_ticket(factory, args.tid, revocations)
    finally:
        engine.dispose()
    print(f"revocation list now at sequence {sequence}")
    if delivery is not None:
        print(f"the list goes to box {delivery.device} (delivery {delivery.id})")
    else:
        print("no purchase of the portal has this ticket: export the list to its box "
              "(vci-portal revocations export)")  # fmt: skip
    return 0


def _remote(args: argparse.Namespace) -> int:
    import json

    from portal.remote import RemoteError, RemoteSession

    host, _, port = args.broker.rpartition(":")
    params = dict(_param(p) for p in args.param)
    session = RemoteSession(host, int(port), args.pki, args.user)
    try:

        def show(msg) -> None:  # type: ignore[no-untyped-def]
            body = msg.body
            if msg.type == "job.event":
                print(
                    f"  {body.get('kind')}: {body.get('step', '')} {body.get('percent', '')}",
                    flush=True,
                )

        final = session.run(
            args.box, args.kind, ecu=args.ecu, params=params, ticket=args.ticket, on_event=show
        )
    except RemoteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        session.close()
    print(json.dumps({"type": final.type, **final.body}, indent=2, default=str))
    return (
        0
        if final.type == "job.result" and (final.body.get("job") or {}).get("state") == "done"
        else 2
    )


def _uds(args: argparse.Namespace) -> int:
    from portal.remote import RemoteError, RemoteSession

    request = bytes.fromhex(args.request)  # a ValueError is reported by main
    host, _, port = args.broker.rpartition(":")
    session = RemoteSession(host, int(port), args.pki, args.user)
    try:
        answer = session.uds(args.box, args.ecu, request, ticket=args.ticket)
    except RemoteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        session.close()
    if answer.type == "uds.response" and "response" in answer.body:
        print(answer.body["response"])
        return 0
    print(f"error: {answer.body.get('message') or answer.body.get('error')}", file=sys.stderr)
    if answer.body.get("hint"):
        print(f"hint: {answer.body['hint']}", file=sys.stderr)
    return 2


def _boxes(args: argparse.Namespace) -> int:
    from portal.remote import RemoteSession

    host, _, port = args.broker.rpartition(":")
    session = RemoteSession(host, int(port), args.pki, args.user)
    try:
        states = session.boxes_online()
        status = dict(session.status)
    finally:
        session.close()
    for box, state in sorted(states.items()):
        full = status.get(box)
        more = ""
        if full is not None:
            more = f" {full.version or '-':<12} {full.vin or ''} {full.vehicle or ''}".rstrip()
        print(f"{box:<32} {state:<8}{more}")
    if not states:
        print("no boxes (none has ever connected, or the ACL gives this user none)")
    return 0


def _console(args: argparse.Namespace) -> int:
    import asyncio

    from portal.console import serve
    from portal.records import RecordStore
    from portal.remote import RemoteSession

    broker_host, _, broker_port = args.broker.rpartition(":")
    host, _, port = args.listen.rpartition(":")
    session = RemoteSession(broker_host, int(broker_port), args.pki, args.user)
    try:
        asyncio.run(
            serve(
                session,
                RecordStore(args.records),
                host,
                int(port),
                records_days=args.records_days,
            )  # fmt: skip
        )
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
    return 0


def _ws_bridge(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from portal.ws_bridge import Bridge, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    broker_host, _, broker_port = args.broker.rpartition(":")
    host, _, port = args.listen.rpartition(":")
    bridge = Bridge(broker_host, int(broker_port), args.pki, args.identity)
    cert = args.cert or args.pki / "broker.pem"
    key = args.key or args.pki / "broker.key"
    try:
        asyncio.run(serve(bridge, host, int(port), cert, key, lambda s: print(s, flush=True)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _param(text: str) -> tuple[str, object]:
    """``key=text`` (text) or ``key:=json`` (a number, true/false, a list: as JSON, httpie's
    convention); the box checks each parameter's type."""
    import json

    key, _, value = text.partition("=")
    if key.endswith(":"):
        try:
            return key[:-1], json.loads(value)
        except ValueError as err:
            raise SystemExit(f"--param {text}: not JSON after := ({err})") from err
    return key, value
