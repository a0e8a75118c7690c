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

from firmware_py.i18n import N_, Language, language
from firmware_py.reports.emission_limits import LimitTable, load_limits, parse_limits
from firmware_py.reports.model import facts, now_iso, table

__all__ = [
    "LimitTable", "build_emissions_report", "in_language", "judge", "load_limits", "parse_limits",
]  # fmt: skip


def _all_dtcs(ecus: list[dict[str, Any]], kind: str) -> list[str]:
    return [f"{code} ({e['name']})" for e in ecus for code in e.get("dtcs", {}).get(kind, [])]


def judge(
    ecus: list[dict[str, Any]], allowed_incomplete: int = 0, lang: Language | None = None
) -> dict[str, Any]:
    """Whether the car is ready for the emissions check, with every reason why not."""
    reader = lang or language(None)
    _ = reader.gettext
    if not ecus:
        return {
            "ok": False,
            "headline": _("NOT READY: no ECU answered OBD-II"),
            "reasons": [
                _(
                    "No ECU answered the OBD-II requests: switch the ignition on (engine running "
                    "for the test) and check the connection to the OBD socket."
                )
            ],
            "notes": [],
        }
    reasons, notes = [], []
    mil = [e["name"] for e in ecus if (e.get("monitor_status") or {}).get("mil")]
    if mil:
        reasons.append(
            _("The malfunction indicator lamp (MIL) is on (commanded by {ecus}).",
              ecus=", ".join(mil))
        )  # fmt: skip
    stored = _all_dtcs(ecus, "stored")
    if stored:
        reasons.append(
            _("Stored emissions-related DTCs: {dtcs}. Repair, then clear.", dtcs=", ".join(stored))
        )
    permanent = _all_dtcs(ecus, "permanent")
    if permanent:
        reasons.append(
            _(
                "Permanent DTCs: {dtcs}. They go only when the monitor passes on a drive cycle "
                "after the repair; clearing does not remove them.",
                dtcs=", ".join(permanent),
            )
        )
    incomplete = [
        f"{_named(m, reader)} ({e['name']})"
        for e in ecus
        for m in (e.get("monitor_status") or {}).get("monitors", [])
        if m["supported"] and not m["complete"]
    ]
    if len(incomplete) > allowed_incomplete:
        reasons.append(
            _(
                "Readiness incomplete: {monitors}. Drive the car (a full drive cycle: cold start, "
                "town and country road, idle) until these monitors have run.",
                monitors=", ".join(incomplete),
            )
        )
    elif incomplete:
        notes.append(
            _("Incomplete but allowed ({allowed}): {monitors}.", allowed=allowed_incomplete,
              monitors=", ".join(incomplete))
        )  # fmt: skip
    pending = [p for p in _all_dtcs(ecus, "pending") if p not in stored]
    if pending:
        notes.append(_("Pending DTCs (not confirmed, MIL off): {dtcs}.", dtcs=", ".join(pending)))
    if not any(e.get("monitor_status") for e in ecus):
        reasons.append(_("No ECU reported its monitor status (mode 01 PID 01)."))
    ok = not reasons
    return {
        "ok": ok,
        "headline": _("READY for the emissions check")
        if ok
        else _("NOT READY for the emissions check"),
        "reasons": reasons,
        "notes": notes,
    }


IGNITION = {"spark": N_("spark"), "compression": N_("compression")}


def _named(item: dict[str, Any], lang: Language) -> str:
    """A monitor's, value's or limit's name in ``lang``: the data's ``texts`` (or a limit's
    ``text`` table), else its English ``text`` (readings stored before both were kept)."""
    return lang.choose(item.get("texts") or item["text"])


def _limit_text(limit: dict[str, Any], lang: Language) -> str:
    unit = f" {limit['unit']}" if limit.get("unit") else ""
    if "min" in limit and "max" in limit:
        return f"{lang.number(limit['min'])} - {lang.number(limit['max'])}{unit}"
    if "max" in limit:
        return lang.gettext("at most {value}", value=f"{lang.number(limit['max'])}{unit}")
    return lang.gettext("at least {value}", value=f"{lang.number(limit.get('min') or 0)}{unit}")


def _reading(value: Any, unit: str, lang: Language) -> str:
    shown = (
        lang.number(value)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else value
    )
    return f"{shown} {unit}".strip()


def build_emissions_report(
    ecus: list[dict[str, Any]],
    *,
    vin: str | None,
    model: str | None,
    limits: LimitTable,
    transport: str,
    created: str | None = None,
    lang: Language | None = None,
) -> dict[str, Any]:
    """The report (:mod:`.model`) of one emissions read, in ``lang`` (English by default;
    :func:`in_language` makes it again in another at print time). The monitors' and values'
    names are the OBD data file's (English)."""
    lang = lang or language(None)
    _ = lang.gettext
    obd_vin = next((e["vin"] for e in ecus if e.get("vin")), None)
    vin = obd_vin or vin
    type_code = vin[3:7] if vin and len(vin) == 17 else None
    engine = limits.for_type(type_code)
    verdict = judge(ecus, limits.allowed_incomplete, lang)
    yes_no = {True: _("yes"), False: _("no")}
    sections = [
        facts(
            _("Vehicle identity (OBD mode 09)"),
            [
                (_("VIN (from the engine ECU)"), obd_vin or _("not reported")),
                (_("Type code"), type_code),
                (_("OBD standard"), next((e["pids"]["obd_standard"]["value"] for e in ecus if "obd_standard" in e["pids"]), None)),
                (_("Read over"), transport),
            ],
        )
    ]  # fmt: skip
    for e in ecus:
        status = e.get("monitor_status") or {}
        sections.append(
            facts(
                _("{ecu}: MIL and DTCs", ecu=e["name"]),
                [
                    (_("MIL"), _("ON") if status.get("mil") else _("off")),
                    (
                        _("Ignition"),
                        _(IGNITION[status["ignition"]])
                        if status.get("ignition") in IGNITION
                        else status.get("ignition"),
                    ),  # fmt: skip
                    (_("DTC count (PID 01)"), status.get("dtc_count")),
                    (_("Stored DTCs (mode 03)"), e["dtcs"].get("stored") or _("none")),
                    (_("Pending DTCs (mode 07)"), e["dtcs"].get("pending") or _("none")),
                    (_("Permanent DTCs (mode 0A)"), e["dtcs"].get("permanent") or _("none")),
                    (_("Calibration IDs (CALID)"), e.get("calid")),
                    (_("Calibration verification numbers (CVN)"), e.get("cvn")),
                ],
            )
        )
        monitors = status.get("monitors", [])
        sections.append(
            table(
                _("{ecu}: readiness", ecu=e["name"]),
                [_("Monitor"), _("Supported"), _("Status")],
                [
                    [_named(m, lang), yes_no[bool(m["supported"])], (_("complete") if m["complete"] else _("INCOMPLETE")) if m["supported"] else "-"]
                    for m in monitors
                ],
            )
        )  # fmt: skip
        if e["pids"]:
            sections.append(
                table(
                    _("{ecu}: values", ecu=e["name"]),
                    [_("Value"), _("Reading")],
                    [
                        [_named(p, lang), _reading(p["value"], p["unit"], lang)]
                        for p in e["pids"].values()
                    ],
                )
            )
    sample = (
        " " + _("SAMPLE VALUES, not official: for the simulated cars.")
        if limits.source == "sample"
        else ""
    )
    if engine is None:
        sections.append(
            facts(
                _("Exhaust limit values"),
                [(_("Type code"), type_code or _("unknown"))],
                note=_("No limit values for this type code ({source}, {version}).",
                       source=limits.source, version=limits.version) + sample,
            )
        )  # fmt: skip
    else:
        sections.append(
            table(
                _("Exhaust limit values: {engine}", engine=engine.get("engine", "")),
                [_("Quantity"), _("Target")],
                [[_named(lim, lang), _limit_text(lim, lang)] for lim in engine.get("limit", [])],
                note=_("Emission class {emission_class}; source: {source} ({version}).",
                       emission_class=engine.get("emission_class", "-"), source=limits.source,
                       version=limits.version) + sample,
            )
        )  # fmt: skip
    return {
        "kind": "emissions",
        "language": lang.code,
        "title": _("Emissions check (OBD)"),
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


def in_language(report: dict[str, Any], lang: Language) -> dict[str, Any]:
    """The same emissions report in ``lang``, made again from its readings (``data``) and the
    limit values it was judged by."""
    if report.get("language", "en") == lang.code or "data" not in report:
        return report
    data, vehicle = report["data"], report.get("vehicle") or {}
    kept = data.get("limits") or {}
    engine = kept.get("engine")
    limits = LimitTable(
        str(kept.get("source", "")), str(kept.get("version", "")),
        int(kept.get("allowed_incomplete") or 0), (engine,) if engine else (),
    )  # fmt: skip
    return build_emissions_report(
        data.get("ecus") or [], vin=vehicle.get("vin"), model=vehicle.get("model"),
        limits=limits, transport=str(data.get("transport", "")), created=report.get("created"),
        lang=lang,
    )  # fmt: skip
