"""The vehicle test report a workshop hands to a customer: every ECU's fault memory (with the
snapshot where the ECU keeps one), the battery voltage and the service items, as a report
(:mod:`.model`). The summary says what needs attention; it judges nothing the readings do not
show (a low battery is below :data:`LOW_BATTERY` volts at rest)."""

from __future__ import annotations

from typing import Any

from firmware_py.errors import error_text
from firmware_py.i18n import Language, language
from firmware_py.reports.model import facts, now_iso, table
from firmware_py.uds.fault_memory import note_text

LOW_BATTERY = 12.2
"""volts at rest below which the report says the battery needs charging or testing (a 12 V
lead-acid battery at about 50 % charge)"""


def _snapshot_text(dtc: dict[str, Any], lang: Language) -> str:
    snaps = dtc.get("snapshots") or []
    if not snaps:  # why there is none: in the reader's language where the box sent the template
        return note_text(dtc, "snapshots_note", lang)
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
    lang: Language | None = None,
) -> dict[str, Any]:
    """The report of one vehicle test: ``faults`` as the fault memory job gives them (one dict
    per ECU), ``service`` as the service job's read gives it (``cbs``, ``battery``) or None.
    ``lang``: the customer's language (English by default); :func:`in_language` makes the same
    report again in another at print time."""
    lang = lang or language(None)
    _ = lang.gettext
    with_faults = [e for e in faults if e.get("dtcs")]
    silent = [e for e in faults if e.get("error")]
    due = [i for i in (service or {}).get("cbs", []) if i.get("due")]
    attention = []
    if with_faults:
        count = sum(len(e["dtcs"]) for e in with_faults)
        attention.append(
            lang.ngettext(
                "{n} fault stored in {ecus} ECU(s): {names}",
                "{n} faults stored in {ecus} ECU(s): {names}",
                count,
                ecus=len(with_faults),
                names=", ".join(e["name"] for e in with_faults),
            )
        )
    if battery_volts is not None and battery_volts < LOW_BATTERY:
        attention.append(
            _("Battery at {volts}: charge it and test it.", volts=lang.unit(battery_volts, "V", 1))
        )
    if due:
        attention.append(
            _(
                "Service due: {items}",
                items=", ".join(lang.choose(i.get("texts"), i.get("text", "")) for i in due),
            )
        )
    notes = [
        _("{ecu} did not answer: {error}", ecu=e["name"], error=_error_text(e.get("error"), lang))
        for e in silent
    ]
    ok = not attention
    sections = [
        facts(
            _("Summary"),
            [
                (_("ECUs read"), len(faults) - len(silent)),
                (_("ECUs with faults"), len(with_faults)),
                (
                    _("Battery voltage"),
                    None if battery_volts is None else lang.unit(battery_volts, "V", 2),
                ),
                (_("Service items due"), len(due)),
                (_("Read over"), transport),
            ],
        )
    ]
    for e in faults:
        if e.get("error"):
            continue
        rows = [
            [
                d.get("code") or d.get("id"),
                lang.choose(d.get("texts"), d.get("text", "")),
                ", ".join(_(n) for n in d.get("status_names") or [])
                or f"0x{int(d.get('status', 0)):02X}",
                _snapshot_text(d, lang),
            ]
            for d in e.get("dtcs", [])
        ]
        sections.append(
            table(
                _("{ecu} (0x{address}): fault memory", ecu=e["name"],
                  address=f"{int(e.get('address', 0)):02X}"),
                [_("Code"), _("Fault"), _("Status"), _("First seen (snapshot)")],
                rows,
                note="" if rows else _("No faults stored."),
            )
        )  # fmt: skip
    if service:
        sections.append(
            table(
                _("Service items"),
                [_("Item"), _("Left"), _("Distance"), _("Time"), _("Due")],
                [
                    [
                        lang.choose(i.get("texts"), i.get("text", "")),
                        f"{lang.number(i.get('availability') or 0)} %",
                        "-"
                        if i.get("remaining_km") is None
                        else f"{lang.number(i['remaining_km'])} km",
                        _("{n} months", n=i.get("remaining_months")),
                        _("DUE") if i.get("due") else "",
                    ]
                    for i in service.get("cbs", [])
                ],
            )
        )
        b = service.get("battery")
        if b:
            sections.append(
                facts(
                    _("Registered battery"),
                    [
                        (_("Capacity"), f"{b.get('capacity_ah')} Ah"),
                        (_("Technology"), str(b.get("technology", "")).upper()),
                        (_("Registered at"), f"{lang.number(b.get('registered_km') or 0)} km"),
                    ],
                )
            )
    return {
        "kind": "vehicle_test",
        "language": lang.code,
        "title": _("Vehicle test report"),
        "created": created or now_iso(),
        "vehicle": {"vin": vin, "model": model, "mileage_km": mileage_km},
        "verdict": {
            "ok": ok,
            "headline": _("No faults found") if ok else _("Needs attention"),
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


def in_language(report: dict[str, Any], lang: Language) -> dict[str, Any]:
    """The same vehicle test report in ``lang``, made again from its readings (``data``)."""
    if report.get("language", "en") == lang.code or "data" not in report:
        return report
    data, vehicle = report["data"], report.get("vehicle") or {}
    return build_test_report(
        data.get("faults") or [],
        vin=vehicle.get("vin"),
        model=vehicle.get("model"),
        battery_volts=data.get("battery_volts"),
        service=data.get("service"),
        transport=str(data.get("transport", "")),
        created=report.get("created"),
        mileage_km=vehicle.get("mileage_km"),
        lang=lang,
    )


def _error_text(error: dict[str, Any] | None, lang: Language) -> str:
    """An ECU's error as the job stored it (VciError.to_dict), in ``lang`` where it can be."""
    return error_text(error, lang, with_hint=False)
