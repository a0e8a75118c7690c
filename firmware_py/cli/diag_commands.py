"""Diagnosis commands: ``vci scan``, ``vci identify``, ``vci dtc read|clear``, ``vci read-did``,
``vci uds``. Each runs one job through the gateway's job runner."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from firmware_py.cli.transport_args import add_transport_args, config_from_args
from firmware_py.errors import VciError

if TYPE_CHECKING:
    from firmware_py.gateway.jobs import Job


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "scan",
        help="find vehicles on DoIP and ECUs that answer",
        description="Find vehicles (DoIP and HSFZ vehicle identification on ENET) and the ECUs that answer on the chosen link.",
    )
    add_transport_args(p)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("identify", help="VIN and every ECU with part number and software versions")
    add_transport_args(p)
    p.add_argument("--ecu", help="only this ECU (name such as DME, or address such as 0x12)")
    p.set_defaults(func=cmd_identify)

    dtc = sub.add_parser("dtc", help="fault memory").add_subparsers(
        dest="dtc_command", metavar="ACTION", required=True
    )
    p = dtc.add_parser(
        "read", help="read fault memory (all ECUs or one), with status, snapshot and extended data"
    )
    add_transport_args(p)
    p.add_argument("--ecu", help="only this ECU (name or address)")
    p.add_argument(
        "--mask",
        type=lambda s: int(s, 0),
        default=0xFF,
        help="DTC status mask (default 0xFF: every stored DTC; 0x0C: pending|confirmed)",
    )
    p.add_argument("--brief", action="store_true", help="no snapshot / extended data")
    p.set_defaults(func=cmd_dtc_read)
    p = dtc.add_parser("clear", help="clear fault memory (all ECUs or one)")
    add_transport_args(p)
    p.add_argument("--ecu", help="only this ECU (name or address)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_dtc_clear)

    p = sub.add_parser("read-did", help="read data identifiers of one ECU")
    add_transport_args(p)
    p.add_argument("--ecu", required=True, help="ECU name or address")
    p.add_argument("dids", nargs="+", metavar="DID", help="F190, 0xF189 or a name such as vin")
    p.set_defaults(func=cmd_read_did)

    p = sub.add_parser(
        "uds", help="send one raw UDS request to one ECU (tester present and timing by the box)"
    )
    add_transport_args(p)
    p.add_argument("--ecu", required=True, help="ECU name or address")
    p.add_argument("request", help="request bytes in hex, e.g. 22F190")
    p.set_defaults(func=cmd_raw)


def run_job(
    args: argparse.Namespace, kind: str, ecu: str | None = None, **params: Any
) -> dict[str, Any]:
    from firmware_py.gateway.jobs import JobRequest
    from firmware_py.gateway.local import run_cli_job
    from firmware_py.gateway.setup import entitlement_check

    cfg, transport = config_from_args(args)
    job = run_cli_job(
        cfg, transport, JobRequest(kind, params, ecu), entitlements=entitlement_check(cfg)
    )
    return _result(job)


def _result(job: Job) -> dict[str, Any]:
    from firmware_py.gateway.jobs import JobState

    if job.state is not JobState.DONE:
        err = job.error or {}
        raise _JobFailed(err)
    return job.result or {}


class _JobFailed(VciError):
    def __init__(self, err: dict[str, Any]) -> None:
        super().__init__(str(err.get("message", "the job failed")), hint=err.get("hint"))
        self.code = str(err.get("error", "job_failed"))
        self.details = err

    def to_dict(self) -> dict[str, object]:
        return dict(self.details)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


def confirmed(args: argparse.Namespace, question: str) -> int | None:
    """Ask before a command changes the car: ``None`` to go on, else the exit code (2 without
    ``--yes`` and without a terminal to ask on, 1 when the answer is no)."""
    if args.yes:
        return None
    if not sys.stdin.isatty():
        print(f"refusing without --yes: {question}", file=sys.stderr)
        return 2
    answer = input(f"{question} [y/N] ").strip().lower()
    return None if answer in ("y", "yes", "j", "ja") else 1


def _error_text(err: dict[str, Any] | None) -> str:
    if not err:
        return ""
    return str(err.get("message", "")) + (f". {err['hint']}" if err.get("hint") else "")


# -- commands ------------------------------------------------------------------------------------
def cmd_scan(args: argparse.Namespace) -> int:
    from firmware_py.errors import VehicleNotFoundError
    from firmware_py.gateway.jobs import JobRequest
    from firmware_py.gateway.local import run_cli_job
    from firmware_py.transport import discover_enet

    cfg, transport = config_from_args(args)
    t = cfg.transport
    out: dict[str, Any] = {"vehicles": [], "ecus": []}
    if transport != "can":
        found = discover_enet(
            t.doip_host,
            doip_port=t.doip_port,
            hsfz_control_port=t.hsfz_control_port,
            timeout=1.0,
            doip_protocol_version=t.doip_protocol_version,
        )
        out["vehicles"] = [v.to_dict() for v in found]
        wanted = {"enet": t.enet}.get(transport, transport)
        speaks = [v.protocol for v in found if wanted in ("auto", v.protocol)]
        if not speaks:
            raise VehicleNotFoundError(
                f"no vehicle answered {'DoIP or HSFZ' if wanted == 'auto' else wanted.upper()} "
                f"identification at {t.doip_host}",
                hint="Check the ENET cable, that the car is awake (ignition on), and the address",
            )
        transport = speaks[0]
    ident = _result(run_cli_job(cfg, transport, JobRequest("identify", {})))
    out["link"] = transport
    out["ecus"] = [
        {"name": e["name"], "address": e["address"], "present": e["present"]} for e in ident["ecus"]
    ]
    if args.json:
        print_json(out)
        return 0
    for v in out["vehicles"]:
        print(
            f"vehicle {v['vin']} at {v['host']} speaks {v['protocol'].upper()}, "
            f"gateway 0x{v['gateway_address']:02X}"
        )
    present = [e for e in out["ecus"] if e["present"]]
    print(
        f"{len(present)} ECUs answer on {transport.upper()}: "
        + ", ".join(f"{e['name']} (0x{e['address']:02X})" for e in present)
    )
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    result = run_job(args, "identify", args.ecu)
    if args.json:
        print_json(result)
        return 0
    print(f"VIN      {result['vin'] or 'unknown'}")
    print(f"model    {result.get('model') or 'unknown'}")
    print(f"link     {result['link']}\n")
    rows = []
    for e in result["ecus"]:
        state = (
            "ok" if e["present"] and not e["error"] else ("error" if e["present"] else "no answer")
        )
        rows.append(
            [
                e["name"],
                f"0x{e['address']:02X}",
                e["description"],
                e.get("part_number") or "",
                e.get("hw_number") or "",
                e.get("hw_version") or "",
                e.get("sw_version") or "",
                state,
            ]
        )
    print(
        table(rows, ["ECU", "addr", "what", "part no.", "HW no.", "HW ver", "SW version", "state"])
    )
    print("\nsoftware (SVK)")
    for e in result["ecus"]:
        if e.get("svk"):
            entries = ", ".join(
                f"{s['process_class']} {s['sgbm_id']} {s['version']}" for s in e["svk"]
            )
            print(f"  {e['name']:<6} {entries}")
    return 0


def cmd_dtc_read(args: argparse.Namespace) -> int:
    result = run_job(
        args, "read_fault_memory", args.ecu, status_mask=args.mask, details=not args.brief
    )
    if args.json:
        print_json(result)
        return 1 if any(e["error"] for e in result["ecus"]) and args.ecu else 0
    failed = False
    from firmware_py.i18n import from_environment, language

    reader = language(from_environment())  # the data file's fault texts in the locale's language
    for e in result["ecus"]:
        head = f"{e['name']} (0x{e['address']:02X})"
        if e["error"]:
            failed = True
            print(f"{head}: {_error_text(e['error'])}")
            continue
        print(f"{head}: {len(e['dtcs'])} fault(s)")
        if e.get("warning"):
            print(f"  warning: {e['warning']}")
        for d in e["dtcs"]:
            print(
                f"  {d['code']}  0x{d['id']}  {reader.choose(d.get('texts') or d['text'])}\n"
                f"      status 0x{d['status']:02X}: {', '.join(d['status_names'])}"
            )
            for s in d["snapshots"]:
                values = ", ".join(f"{k} {v}" for k, v in s.items() if k != "record")
                print(f"      snapshot {s['record']}: {values}")
            if d["extended"]:
                print(
                    "      "
                    + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d["extended"].items())
                )
            for what in ("snapshots", "extended"):
                if d.get(f"{what}_note"):
                    print(
                        f"      {'snapshot' if what == 'snapshots' else 'extended data'}: "
                        f"{d[what + '_note']}"
                    )
    return 1 if failed and args.ecu else 0


def cmd_dtc_clear(args: argparse.Namespace) -> int:
    refused = confirmed(args, f"Clear the fault memory of {args.ecu or 'every ECU'}?")
    if refused is not None:
        return refused
    result = run_job(args, "clear_fault_memory", args.ecu)
    if args.json:
        print_json(result)
    else:
        for e in result["ecus"]:
            print(
                f"{e['name']} (0x{e['address']:02X}): {'cleared' if e['cleared'] else _error_text(e['error'])}"
            )
    return 1 if any(not e["cleared"] for e in result["ecus"]) and args.ecu else 0


def cmd_read_did(args: argparse.Namespace) -> int:
    result = run_job(args, "read_did", args.ecu, dids=args.dids)
    if args.json:
        print_json(result)
        return 0
    for did, v in result["dids"].items():
        value = (
            v["value"] if v["value"] is not None else v.get("raw") or _error_text(v.get("error"))
        )
        print(f"{did}  {v['name']:<24} {value}")
    return 0


def cmd_raw(args: argparse.Namespace) -> int:
    result = run_job(args, "raw_uds", args.ecu, request=args.request)
    if args.json:
        print_json(result)
    else:
        nrc = f"  (negative response: {result['nrc_name']})" if "nrc" in result else ""
        print(result["response"] + nrc)
    return 0
