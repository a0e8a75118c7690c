"""The vehicle test report a workshop hands to a customer: every ECU's fault memory (with the
snapshot where the ECU keeps one), the battery voltage and the service items, as a report
(:mod:`.model`). The summary says what needs attention; it judges nothing the readings do not
show (a low battery is below :data:`LOW_BATTERY` volts at rest)."""

from __future__ import annotations

from typing import Any

from firmware_py.reports.model import facts, now_iso, table

LOW_BATTERY = 12.2
"""volts at rest below which the report says the battery needs charging or testing (a 12 V
lead-acid battery at about 50 % charge)"""


def _snapshot_text(dtc: dict[str, Any]) -> str:
    snaps = dtc.get("snapshots") or []
    if not snaps:
        return dtc.get("snapshots_note") or "-"
    first = snaps[0]  # the first record: when the fault was first seen
    return "; ".join(f"{k}: {v}" for k, v in first.items() if k != "record") or "-"


def build_test_report(
    faults: list[dict[str, Any]],
    *,
    vin: str | None,
    model: str | None,
    battery_volts: float | None,
    service: dict[str, Any] | None,
    transport: str,
    created: str | None = None,
    mileage_km: int | None = None,
) -> dict[str, Any]:
    """The report of one vehicle test: ``faults`` as the fault memory job gives them (one dict
    per ECU), ``service`` as the service job's read gives it (``cbs``, ``battery``) or None."""
    with_faults = [e for e in faults if e.get("dtcs")]
    silent = [e for e in faults if e.get("error")]
    due = [i for i in (service or {}).get("cbs", []) if i.get("due")]
    attention = []
    if with_faults:
        count = sum(len(e["dtcs"]) for e in with_faults)
        attention.append(
            f"{count} fault(s) stored in {len(with_faults)} ECU(s): "
            + ", ".join(e["name"] for e in with_faults)
        )
    if battery_volts is not None and battery_volts < LOW_BATTERY:
        attention.append(f"Battery at {battery_volts:.1f} V: charge it and test it.")
    if due:
        attention.append("Service due: " + ", ".join(i["text"] for i in due))
    notes = [f"{e['name']} did not answer: {(e['error'] or {}).get('message', '')}" for e in silent]
    ok = not attention
    sections = [
        facts(
            "Summary",
            [
                ("ECUs read", len(faults) - len(silent)),
                ("ECUs with faults", len(with_faults)),
                ("Battery voltage", None if battery_volts is None else f"{battery_volts:.2f} V"),
                ("Service items due", len(due)),
                ("Read over", transport),
            ],
        )
    ]
    for e in faults:
        if e.get("error"):
            continue
        rows = [
            [
                d.get("code") or d.get("id"),
                d.get("text", ""),
                ", ".join(d.get("status_names") or []) or f"0x{int(d.get('status', 0)):02X}",
                _snapshot_text(d),
            ]
            for d in e.get("dtcs", [])
        ]
        sections.append(
            table(
                f"{e['name']} (0x{int(e.get('address', 0)):02X}): fault memory",
                ["Code", "Fault", "Status", "First seen (snapshot)"],
                rows,
                note="" if rows else "No faults stored.",
            )
        )
    if service:
        sections.append(
            table(
                "Service items",
                ["Item", "Left", "Distance", "Time", "Due"],
                [
                    [
                        i.get("text"),
                        f"{i.get('availability')} %",
                        "-" if i.get("remaining_km") is None else f"{i['remaining_km']} km",
                        f"{i.get('remaining_months')} months",
                        "DUE" if i.get("due") else "",
                    ]
                    for i in service.get("cbs", [])
                ],
            )
        )
        b = service.get("battery")
        if b:
            sections.append(
                facts(
                    "Registered battery",
                    [
                        ("Capacity", f"{b.get('capacity_ah')} Ah"),
                        ("Technology", str(b.get("technology", "")).upper()),
                        ("Registered at", f"{b.get('registered_km')} km"),
                    ],
                )
            )
    return {
        "kind": "vehicle_test",
        "title": "Vehicle test report",
        "created": created or now_iso(),
        "vehicle": {"vin": vin, "model": model, "mileage_km": mileage_km},
        "verdict": {
            "ok": ok,
            "headline": "No faults found" if ok else "Needs attention",
            "reasons": attention,
            "notes": notes,
        },
        "sections": sections,
        "data": {
            "faults": faults,
            "battery_volts": battery_volts,
            "service": service,
            "transport": transport,
        },
    }
