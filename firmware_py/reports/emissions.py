"""The emissions (PTI) check's report: from the OBD readings of :func:`firmware_py.uds.obd.
read_emissions_data` and the exhaust limit values for the car's engine, a report (:mod:`.model`)
that says plainly whether the car is ready for the emissions check, and why not.

Readiness is judged by :func:`judge` (docs/emissions.md): not ready while any ECU commands the
MIL, has stored (confirmed) or permanent emissions-related DTCs, or has more supported monitors
incomplete than the limits data allows (``allowed_incomplete``, 0 in the sample). Pending DTCs
are shown as a note: they are not confirmed faults yet.

Limit values are data per type code (VIN positions 4-7), read and checked by
:mod:`.emission_limits`: the portal supplies them; the box keeps its local copy as
``emission_limits.toml`` in the state directory; without one the shipped
``emission_limits_sample.toml`` is used, and the report says the values are sample values.
"""

from __future__ import annotations

from typing import Any

from firmware_py.reports.emission_limits import LimitTable, load_limits, parse_limits
from firmware_py.reports.model import facts, now_iso, table

__all__ = ["LimitTable", "build_emissions_report", "judge", "load_limits", "parse_limits"]


def _all_dtcs(ecus: list[dict[str, Any]], kind: str) -> list[str]:
    return [f"{code} ({e['name']})" for e in ecus for code in e.get("dtcs", {}).get(kind, [])]


def judge(ecus: list[dict[str, Any]], allowed_incomplete: int = 0) -> dict[str, Any]:
    """Whether the car is ready for the emissions check, with every reason why not."""
    if not ecus:
        return {
            "ok": False,
            "headline": "NOT READY: no ECU answered OBD-II",
            "reasons": [
                "No ECU answered the OBD-II requests: switch the ignition on (engine running "
                "for the test) and check the connection to the OBD socket."
            ],
            "notes": [],
        }
    reasons, notes = [], []
    mil = [e["name"] for e in ecus if (e.get("monitor_status") or {}).get("mil")]
    if mil:
        reasons.append(
            f"The malfunction indicator lamp (MIL) is on (commanded by {', '.join(mil)})."
        )
    stored = _all_dtcs(ecus, "stored")
    if stored:
        reasons.append(f"Stored emissions-related DTCs: {', '.join(stored)}. Repair, then clear.")
    permanent = _all_dtcs(ecus, "permanent")
    if permanent:
        reasons.append(
            f"Permanent DTCs: {', '.join(permanent)}. They go only when the monitor passes on a "
            "drive cycle after the repair; clearing does not remove them."
        )
    incomplete = [
        f"{m['text']} ({e['name']})"
        for e in ecus
        for m in (e.get("monitor_status") or {}).get("monitors", [])
        if m["supported"] and not m["complete"]
    ]
    if len(incomplete) > allowed_incomplete:
        reasons.append(
            f"Readiness incomplete: {', '.join(incomplete)}. Drive the car (a full drive cycle: "
            "cold start, town and country road, idle) until these monitors have run."
        )
    elif incomplete:
        notes.append(f"Incomplete but allowed ({allowed_incomplete}): {', '.join(incomplete)}.")
    pending = [p for p in _all_dtcs(ecus, "pending") if p not in stored]
    if pending:
        notes.append(f"Pending DTCs (not confirmed, MIL off): {', '.join(pending)}.")
    if not any(e.get("monitor_status") for e in ecus):
        reasons.append("No ECU reported its monitor status (mode 01 PID 01).")
    ok = not reasons
    return {
        "ok": ok,
        "headline": "READY for the emissions check" if ok else "NOT READY for the emissions check",
        "reasons": reasons,
        "notes": notes,
    }


def _limit_text(limit: dict[str, Any]) -> str:
    unit = f" {limit['unit']}" if limit.get("unit") else ""
    if "min" in limit and "max" in limit:
        return f"{limit['min']} - {limit['max']}{unit}"
    if "max" in limit:
        return f"at most {limit['max']}{unit}"
    return f"at least {limit.get('min')}{unit}"


def build_emissions_report(
    ecus: list[dict[str, Any]],
    *,
    vin: str | None,
    model: str | None,
    limits: LimitTable,
    transport: str,
    created: str | None = None,
) -> dict[str, Any]:
    """The report (:mod:`.model`) of one emissions read."""
    obd_vin = next((e["vin"] for e in ecus if e.get("vin")), None)
    vin = obd_vin or vin
    type_code = vin[3:7] if vin and len(vin) == 17 else None
    engine = limits.for_type(type_code)
    verdict = judge(ecus, limits.allowed_incomplete)
    sections = [
        facts(
            "Vehicle identity (OBD mode 09)",
            [
                ("VIN (from the engine ECU)", obd_vin or "not reported"),
                ("Type code", type_code),
                ("OBD standard", next((e["pids"]["obd_standard"]["value"] for e in ecus if "obd_standard" in e["pids"]), None)),
                ("Read over", transport),
            ],
        )
    ]  # fmt: skip
    for e in ecus:
        status = e.get("monitor_status") or {}
        sections.append(
            facts(
                f"{e['name']}: MIL and DTCs",
                [
                    ("MIL", "ON" if status.get("mil") else "off"),
                    ("Ignition", status.get("ignition")),
                    ("DTC count (PID 01)", status.get("dtc_count")),
                    ("Stored DTCs (mode 03)", e["dtcs"].get("stored")),
                    ("Pending DTCs (mode 07)", e["dtcs"].get("pending")),
                    ("Permanent DTCs (mode 0A)", e["dtcs"].get("permanent")),
                    ("Calibration IDs (CALID)", e.get("calid")),
                    ("Calibration verification numbers (CVN)", e.get("cvn")),
                ],
            )
        )
        monitors = status.get("monitors", [])
        sections.append(
            table(
                f"{e['name']}: readiness",
                ["Monitor", "Supported", "Status"],
                [
                    [m["text"], m["supported"], ("complete" if m["complete"] else "INCOMPLETE") if m["supported"] else "-"]
                    for m in monitors
                ],
            )
        )  # fmt: skip
        if e["pids"]:
            sections.append(
                table(
                    f"{e['name']}: values",
                    ["Value", "Reading"],
                    [[p["text"], f"{p['value']} {p['unit']}".strip()] for p in e["pids"].values()],
                )
            )
    sample = (
        " SAMPLE VALUES, not official: for the simulated cars." if limits.source == "sample" else ""
    )
    if engine is None:
        sections.append(
            facts(
                "Exhaust limit values",
                [("Type code", type_code or "unknown")],
                note=f"No limit values for this type code ({limits.source}, {limits.version}).{sample}",
            )
        )
    else:
        sections.append(
            table(
                f"Exhaust limit values: {engine.get('engine', '')}",
                ["Quantity", "Target"],
                [[lim["text"], _limit_text(lim)] for lim in engine.get("limit", [])],
                note=f"Emission class {engine.get('emission_class', '-')}; source: "
                f"{limits.source} ({limits.version}).{sample}",
            )
        )
    return {
        "kind": "emissions",
        "title": "Emissions check (OBD)",
        "created": created or now_iso(),
        "vehicle": {"vin": vin, "model": model, "type_code": type_code},
        "verdict": verdict,
        "sections": sections,
        "data": {
            "ecus": ecus,
            "limits": {
                "source": limits.source,
                "version": limits.version,
                "allowed_incomplete": limits.allowed_incomplete,
                "engine": engine,
            },
            "transport": transport,
        },
    }
