"""Technical Help Desk: ``vci helpdesk ask`` sends a question with the automatic bundle
(identification, fault memory, session log, battery history, traces) through the outbox under a
Help Desk ticket; ``vci helpdesk list`` shows the requests, their state and the answers
(docs/helpdesk.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from firmware_py.cli.transport_args import add_transport_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    hd = sub.add_parser(
        "helpdesk",
        help="Technical Help Desk: ask a question with the vehicle's data, read the answers",
        description="A request carries the question, your contact and the vehicle's data; it "
        "needs a Technical Help Desk ticket, used when the portal has received the request.",
    ).add_subparsers(dest="helpdesk_command", metavar="ACTION", required=True)
    p = hd.add_parser("ask", help="send a question with the vehicle's data to the help desk")
    p.add_argument("--question", required=True, help="what the help desk should help with")
    p.add_argument("--contact", required=True, help="how the help desk reaches you")
    p.add_argument(
        "--trace", action="append", default=[], metavar="FILE", help="a pcap trace to add"
    )
    add_transport_args(p)
    p.set_defaults(func=cmd_ask)
    p = hd.add_parser("list", help="your requests, their state and the help desk's answers")
    p.set_defaults(func=cmd_list)


def cmd_ask(args: argparse.Namespace) -> int:
    import time

    from firmware_py.cli.diag_commands import _result, print_json
    from firmware_py.gateway import job_log
    from firmware_py.gateway.jobs import JobRequest
    from firmware_py.gateway.local import run_cli_job
    from firmware_py.gateway.setup import entitlement_check
    from firmware_py.gateway.store import Store

    cfg, transport = config_from_args(args)
    params = {
        "question": args.question,
        "contact": args.contact,
        "traces": [str(Path(t).resolve()) for t in args.trace],
    }
    store = Store(cfg.storage.state_dir)
    job = run_cli_job(
        cfg,
        transport,
        JobRequest("help_desk_request", params),
        entitlements=entitlement_check(cfg),
        # the session log: the jobs the box ran (commands, tablet, portal) in the last hours
        services={
            "store": store,
            "session_log": lambda: job_log.since(store, time.time() - job_log.SESSION_HOURS * 3600),
        },
    )
    result = _result(job)
    if args.json:
        print_json(result)
        return 0
    size = sum(a["size"] for a in result["attachments"])
    print(
        f"help-desk request {result['request']}: {len(result['attachments'])} attachment(s), "
        f"{size // 1024} KiB; {result['state']} (the gateway sends it; the ticket is used when "
        "the portal has it)"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from firmware_py.cli.diag_commands import print_json
    from firmware_py.config import load_config
    from firmware_py.gateway import helpdesk
    from firmware_py.gateway.store import Store

    cfg = load_config(Path(args.config) if args.config else None)
    found = helpdesk.requests(Store(cfg.storage.state_dir))
    if args.json:
        print_json(found)
        return 0
    if not found:
        print("no help-desk requests")
    for r in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["created"]))
        print(f"{r['id']}  {when}  {r['state']}: {r['question'][:60]}")
        if r["answer"]:
            print(f"    answer: {r['answer']}")
    return 0
