"""``vci-portal enrol serve`` and ``vci-portal box claim|revoke|list``: the enrolment endpoint
boxes ask for their certificate, and claiming and revoking boxes from the portal's command line
(docs/claiming.md). The records are in the portal's database (portal/enrolment.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DB_HELP = (
    "the portal's database: a URL or an SQLite file (default: VCI_PORTAL_DB, else SQLite in the "
    "portal's state dir, as vci-portal serve)"
)


def register(sub: Any) -> None:
    """Add ``enrol`` and ``box`` to ``vci-portal``'s sub-parsers."""
    en = sub.add_parser(
        "enrol", help="the enrolment endpoint boxes send their certificate requests to"
    ).add_subparsers(dest="enrol_command", required=True, metavar="ACTION")
    es = en.add_parser(
        "serve",
        help="serve https://HOST:PORT/vci/enrol",
        description="Boxes that have no certificate yet POST their CSR and a proof of their label "
        "code here and ask again until a workshop has claimed them (vci-portal box claim); then "
        "they get the certificate the portal's CA signed (docs/claiming.md).",
    )
    es.add_argument("--listen", default="127.0.0.1:8444", metavar="HOST:PORT")
    es.add_argument("--pki", required=True, type=Path, help="directory with ca.pem and ca.key")
    es.add_argument("--db", metavar="URL|FILE", help=DB_HELP)
    es.add_argument(
        "--cert", type=Path, help="the HTTPS server certificate (default: PKI/broker.pem)"
    )
    es.add_argument("--key", type=Path, help="its key (default: PKI/broker.key)")
    es.add_argument(
        "--rate",
        type=float,
        default=60.0,
        help="requests per minute one client address may make (default 60, bursts of 20)",
    )

    bx = sub.add_parser("box", help="claim, revoke and list enrolled boxes").add_subparsers(
        dest="box_command", required=True, metavar="ACTION"
    )
    bc = bx.add_parser(
        "claim",
        help="claim a box with the device id and label code on its label: its CA signs the "
        "box's certificate, which the box fetches at its next enrolment request",
    )
    bc.add_argument("device", help="the box's device id (on its label)")
    bc.add_argument("label_code", metavar="LABEL-CODE", help="the code on the box's label")
    br = bx.add_parser(
        "revoke",
        help="revoke a box's certificate: the broker and the WebSocket bridge refuse its next connection",
    )
    br.add_argument("device")
    br.add_argument(
        "--broker-pid",
        type=int,
        help="send the broker (mosquitto) SIGHUP so that it reads the revocation list now "
        "(else: systemctl reload mosquitto)",
    )
    bl = bx.add_parser("list", help="claimed and revoked boxes, and boxes waiting to be claimed")
    for action in (bc, br, bl):
        action.add_argument(
            "--pki", required=True, type=Path, help="directory with ca.pem, ca.key and crl.pem"
        )
        action.add_argument("--db", metavar="URL|FILE", help=DB_HELP)


def run(args: argparse.Namespace) -> int:
    return _enrol_serve(args) if args.command == "enrol" else _box(args)


def _enrol_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from portal.enrol_server import serve
    from portal.enrolment import Enrolment

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    enrolment = Enrolment(database(args.db), args.pki)
    cert = args.cert or args.pki / "broker.pem"
    key = args.key or args.pki / "broker.key"
    try:
        asyncio.run(
            serve(
                enrolment,
                host,
                int(port),
                cert,
                key,
                args.rate,
                lambda s: print(s, flush=True),
            )
        )
    except KeyboardInterrupt:
        pass
    finally:
        enrolment.close()
    return 0


def database(flag: str | None) -> str:
    """The portal database's URL: ``--db`` (a URL, or an SQLite file), else the default."""
    from portal.db.engine import database_url

    url = database_url(flag)
    return url if "://" in url else f"sqlite:///{Path(url).absolute()}"


def _box(args: argparse.Namespace) -> int:
    import os
    import signal
    import time

    from portal.enrolment import Enrolment

    enrolment = Enrolment(database(args.db), args.pki)
    try:
        if args.box_command == "claim":
            cert = enrolment.claim(args.device, args.label_code)
            print(
                f"box {args.device} claimed: certificate {cert.serial_number:x} signed; the box "
                "fetches it at its next enrolment request"
            )
        elif args.box_command == "revoke":
            serial = enrolment.revoke(args.device)
            print(f"box {args.device} revoked (certificate {serial:x}): {args.pki / 'crl.pem'}")
            if args.broker_pid:
                os.kill(args.broker_pid, signal.SIGHUP)
                print("broker told to read the revocation list again (SIGHUP)")
            else:
                print(
                    "reload the broker now (systemctl reload mosquitto) so that it reads the list"
                )
        else:
            for box in enrolment.boxes():
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(box.claimed))
                print(f"{box.device:<32} {box.state:<8} claimed {when} UTC  cert {box.serial:x}")
            for device, seen in enrolment.waiting():
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(seen))
                print(f"{device:<32} waiting  last asked {when} UTC")
    finally:
        enrolment.close()
    return 0
