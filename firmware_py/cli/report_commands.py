"""Reports: ``vci emissions`` (the OBD emissions check: readiness, MIL, DTCs, CALID/CVN, limit
values; an ``inspection_data`` ticket) and ``vci report`` (the vehicle test report: every ECU's
fault memory, battery, service items; a diagnosis ticket). Each runs one job through the
gateway's job runner, prints the report, and with ``--pdf FILE`` writes it as PDF."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware_py.cli.diag_commands import _result, print_json, table
from firmware_py.cli.transport_args import add_transport_args, config_from_args
from firmware_py.errors import StorageError
from firmware_py.i18n import LANGUAGES, SOURCE, from_environment, language


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, kind, text, needs in (
        ("emissions", "emissions_data", "emissions check over OBD-II: ready for the test?",
         "Needs a ticket that includes inspection_data."),
        ("report", "vehicle_test_report", "vehicle test report: fault memory, battery, service",
         "Kept in the state directory and sent to the portal. Needs a diagnosis ticket."),
    ):  # fmt: skip
        p = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}. {needs}")
        add_transport_args(p)
        p.add_argument("--pdf", metavar="FILE", type=Path, help="also write the report as PDF")
        p.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print the report as JSON",
        )
        p.add_argument(
            "--language",
            choices=LANGUAGES,
            help="the customer's language of the report (default: the locale's, else English)",
        )
        p.set_defaults(func=cmd_report, job_kind=kind)


def run_report_job(args: argparse.Namespace) -> dict[str, Any]:
    from firmware_py.gateway.jobs import JobRequest
    from firmware_py.gateway.local import run_cli_job
    from firmware_py.gateway.setup import entitlement_check

    cfg, transport = config_from_args(args)
    job = run_cli_job(
        cfg,
        transport,
        JobRequest(args.job_kind, {}),
        entitlements=entitlement_check(cfg),
        services={"state_dir": cfg.storage.state_dir},
    )
    return _result(job)


def render_text(report: dict[str, Any]) -> str:
    """The report for a terminal: the same sections as the page and the PDF."""
    vehicle = report.get("vehicle") or {}
    lines = [report["title"], "=" * len(report["title"])]
    lines.append(f"VIN {vehicle.get('vin') or 'not read'}  {vehicle.get('model') or ''}".rstrip())
    verdict = report.get("verdict")
    if verdict:
        lines += ["", verdict["headline"]]
        lines += [f"  - {r}" for r in verdict["reasons"]]
        lines += [f"  note: {n}" for n in verdict["notes"]]
    for section in report.get("sections", []):
        lines += ["", section["title"], "-" * len(section["title"])]
        if "table" in section:
            rows = section["table"]
            lines.append(table(rows, section["header"]) if rows else "none")
        else:
            width = max((len(k) for k, _ in section["rows"]), default=0)
            lines += [f"{k.ljust(width)}  {v}" for k, v in section["rows"]]
        if section.get("note"):
            lines.append(section["note"])
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    report = run_report_job(args)
    lang = language(getattr(args, "language", None) or from_environment())
    if lang.code != SOURCE:  # the job keeps its readings; the report is made again in this language
        from firmware_py.reports import emissions, test_report

        again = {
            "vehicle_test_report": test_report.in_language,
            "emissions_data": emissions.in_language,
        }
        report = again[args.job_kind](report, lang)
    if args.pdf is not None:
        from firmware_py.reports.pdf import render_pdf

        try:
            args.pdf.write_bytes(render_pdf(report, lang))
        except OSError as err:
            raise StorageError(
                f"cannot write {args.pdf}: {err}", hint="Name a file in a folder you can write"
            ) from err
    if args.json:
        print_json(report)
    else:
        print(render_text(report))
        if args.pdf is not None:
            print(f"\nPDF written to {args.pdf}")
    return 0
