"""``vci-portal booklet VIN`` and ``vci-portal helpdesk list|show|answer``: the service booklets
and the Technical Help Desk requests the portal keeps in its records file (the console's
``--records``; docs/service-booklet.md, docs/helpdesk.md)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

RECORDS_HELP = "the portal's records (SQLite; the console's --records)"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("booklet", help="the service booklet the portal keeps for a VIN")
    b.add_argument("vin")
    b.add_argument("--records", type=Path, default=Path("portal-records.sqlite"), help=RECORDS_HELP)
    b.add_argument("--json", action="store_true")
    h = sub.add_parser("helpdesk", help="Technical Help Desk requests").add_subparsers(
        dest="helpdesk_command", required=True, metavar="ACTION"
    )
    hl = h.add_parser("list", help="the requests, newest first")
    hs = h.add_parser("show", help="one request with its bundle; --save writes its attachments")
    hs.add_argument("request")
    hs.add_argument("--save", type=Path, metavar="DIR", help="write the attachments into DIR")
    ha = h.add_parser("answer", help="answer a request: the answer goes to the box's tablet")
    ha.add_argument("request")
    ha.add_argument("answer")
    ha.add_argument("--broker", required=True, metavar="HOST:PORT")
    ha.add_argument("--pki", required=True, type=Path)
    ha.add_argument("--user", required=True)
    pv = sub.add_parser(
        "privacy",
        help="export or erase one vehicle's data (by VIN), on its owner's request",
        description="What names the VIN in the portal's database (remote sessions, jobs and "
        "their events, a box's last-seen car; --db) and in its records file (the boxes' records, "
        "the service booklet, help-desk requests with their attachments; --records): both that "
        "exist, docs/data-protection.md. Ticket use, purchases and invoices are kept (10 years, "
        "§147 AO, §14b UStG).",
    ).add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    pe = pv.add_parser("export", help="one archive (JSON and help-desk attachments)")
    pe.add_argument("-o", "--output", type=Path, help="default vehicle-data-VIN.zip")
    px = pv.add_parser("erase", help="erase them and record the erasure (keyed hash of the VIN)")
    px.add_argument("--by", required=True, help="who asked for it, for the record")
    for p in (pe, px):
        p.add_argument("--vin", required=True, help="the vehicle identification number")
    for p in (hl, hs, ha):
        p.add_argument(
            "--records", type=Path, default=Path("portal-records.sqlite"), help=RECORDS_HELP
        )
    for p in (pe, px):
        p.add_argument("--records", type=Path, help=RECORDS_HELP + " (default: "
                       "portal-records.sqlite when it exists)")  # fmt: skip
        p.add_argument("--db", metavar="URL", help="the portal's database (default: "
                       "VCI_PORTAL_DB, else SQLite in the state dir when it exists)")  # fmt: skip
        p.add_argument("--user", help="act as this login: a workshop's owner on its own data, "
                       "an operator (default: the command line, every workshop)")  # fmt: skip
    for p in (hl, hs, ha, pe, px):
        p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from portal.records import RecordStore

    if args.command == "privacy":
        from portal import privacy_cli

        return privacy_cli.run(args)
    records = RecordStore(args.records)
    if args.command == "booklet":
        return _booklet(records, args)
    if args.helpdesk_command == "list":
        found = records.helpdesk.requests()
        if args.json:
            print(json.dumps(found, indent=2))
        for r in [] if args.json else found:
            state = "answered" if r["answer"] else "complete" if r["complete"] else "arriving"
            print(
                f"{r['id']}  {r['box']:<16} {r['vin'] or '-':<17} {state:<9} {r['question'][:50]}"
            )
        if not found and not args.json:
            print("no help-desk requests")
        return 0
    if args.helpdesk_command == "show":
        shown = records.helpdesk.show(args.request)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for att in shown.get("attachments") or []:
                name = Path(str(att["name"])).name
                (args.save / name).write_bytes(
                    records.helpdesk.attachment(args.request, att["name"])
                )
        if args.json:
            print(json.dumps(shown, indent=2, default=str))
        else:
            _print_request(shown)
        return 0
    return _answer(records, args)


def _booklet(records: Any, args: argparse.Namespace) -> int:
    entries = records.booklet.entries(args.vin)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print(f"no booklet entries for {args.vin}")
    for e in entries:
        flag = f"  FLAGGED: {e['flag']}" if e["flag"] else ""
        print(
            f"{e['index']:>3}  {e['date']}  {e['mileage_km']:>7} km  {', '.join(e['items']):<32}"
            f" {e['workshop']:<16} {e['note']}{flag}"
        )
    return 0


def _print_request(r: dict[str, Any]) -> None:
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.get("received") or 0))
    print(f"request {r['request']} from box {r['box']} ({r.get('who')}), {when}")
    print(f"vehicle: {r.get('vin') or '-'}   contact: {r['contact']}")
    print(f"question: {r['question']}")
    for att in r.get("attachments") or []:
        print(f"  attachment {att['name']}: {att['size']} bytes, SHA-256 {att['sha256']}")
    print("complete" if r["complete"] else f"arriving{': ' + r['problem'] if r['problem'] else ''}")
    if r.get("answer"):
        print(f"answer ({r.get('answered_by')}): {r['answer']}")


def _answer(records: Any, args: argparse.Namespace) -> int:
    from firmware_py.cloud.schema import Message
    from portal.remote import RemoteSession

    box = records.helpdesk.answer(args.request, args.answer, args.user)
    host, _, port = args.broker.rpartition(":")
    session = RemoteSession(host, int(port), args.pki, args.user)
    try:  # kept by the broker until the box is back (its persistent session)
        session.send(
            box, Message("helpdesk.answer", {"request": args.request, "answer": args.answer}),
            expiry=None,
        )  # fmt: skip
    finally:
        session.close()
    print(f"answer to {args.request} sent to box {box}")
    return 0
