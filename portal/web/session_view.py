"""What the remote-session pages show, as HTML built from data: each job kind's form generated
from its typed description (firmware_py/gateway/job_params.py, the box's own), the form's
answer read back into the job's parameters, and a job's result as the box returned it (fault
memory with status bits, snapshot and extended data; live data as an SVG plot; anything else
as nested tables). No template engine and no inline script or style (the portal's CSP)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from firmware_py.errors import NotPermitted, error_text
from firmware_py.gateway.job_fields import Field, FieldType, JobKindSpec
from firmware_py.gateway.job_params import CHOICE_LABELS
from firmware_py.i18n import N_, Language, Text, language
from firmware_py.uds.coding import load_coding_descriptions
from firmware_py.uds.fault_memory import note_text
from portal.sessions import ECU_NAME
from portal.web.html import Markup, escape, join, post_form, render, table

PAIRS = 8
"""named-value rows a coding form offers"""
_SPLIT = re.compile(r"[\s,;]+")
_WHOLE = re.compile(r"[0-9]{1,9}")


# -- forms -------------------------------------------------------------------------------------
def _input(f: Field, reader: Language) -> Markup:
    name = f"p.{f.name}"
    default = "" if f.default is None or isinstance(f.default, list) else str(f.default)
    if f.type in (FieldType.INT, FieldType.FLOAT):
        step = "1" if f.type is FieldType.INT else "any"
        return render('<input type="number" name="{n}" min="{lo}" max="{hi}" step="{s}" '
                      'value="{v}">', n=name, lo=f"{f.low:g}", hi=f"{f.high:g}", s=step, v=default)  # fmt: skip
    if f.type is FieldType.BOOL:
        checked = Markup(" checked") if f.default is True else Markup("")
        return render('<input type="hidden" name="b.{f}" value="1"><input type="checkbox" '
                      'name="{n}" value="on"{c}>', f=f.name, n=name, c=checked)  # fmt: skip
    if f.type is FieldType.CHOICE:
        options = join(render('<option value="{c}">{t}</option>', c=c,
                              t=reader.gettext(CHOICE_LABELS[c]) if c in CHOICE_LABELS else c)
                       for c in f.choices)  # fmt: skip
        return render('<select name="{n}">{o}</select>', n=name, o=options)
    if f.type is FieldType.NAMED_VALUES:
        rows = join(
            render('<span class="pair"><input type="text" name="k.{f}.{i}" maxlength="64" '
                   'placeholder="{k}"><input type="text" name="v.{f}.{i}" maxlength="64" '
                   'placeholder="{v}"></span>', f=f.name, i=i, k=reader.gettext("parameter"),
                   v=reader.gettext("value"))
            for i in range(PAIRS)
        )  # fmt: skip
        return render('<span class="pairs">{r}</span>', r=rows)
    required = Markup(" required") if f.required else Markup("")
    return render('<input type="text" name="{n}" maxlength="{m}" value="{v}"{r}>',
                  n=name, m=f.max_len if f.type is FieldType.TEXT else 8192, v=default,
                  r=required)  # fmt: skip


def _hint(f: Field, reader: Language) -> str:
    _ = reader.gettext
    parts = [_(f.help)] if f.help else []
    if f.type in (FieldType.LIST, FieldType.FILES):
        parts.append(_("separate several with commas"))
    if f.type in (FieldType.INT, FieldType.FLOAT) and f.low is not None and f.high is not None:
        parts.append(_("{low} to {high}", low=reader.number(f.low), high=reader.number(f.high)))
    return "; ".join(parts)


def job_form(spec: JobKindSpec, action: str, csrf: str, reader: Language | None = None) -> Markup:
    """The form of one job kind: one input per declared field the portal may send (the box's
    command-line-only fields are left out), and the ECU when the job works on one."""
    reader = reader or language(None)
    _ = reader.gettext
    rows = [render('<input type="hidden" name="kind" value="{k}">', k=spec.kind)]
    rows.append(
        render('<label>{ecu} <input type="text" name="ecu" maxlength="32"{req} '
               'placeholder="{e_g}"></label>',
               ecu=_("ECU") if spec.needs_ecu else _("ECU (empty: every ECU the job covers)"),
               e_g=_("e.g. DME"), req=Markup(" required") if spec.needs_ecu else Markup(""))
    )  # fmt: skip
    for f in spec.fields:
        if f.local_only:
            continue
        rows.append(render('<label class="field-{t}">{label} {input}<small>{hint}</small>'
                           "</label>", t=f.type.value, label=_(f.label), input=_input(f, reader),
                           hint=_hint(f, reader)))  # fmt: skip
    return post_form(action, csrf, join(rows), _("Run: {job}", job=_(spec.label)), "job")


def coding_forms(action: str, csrf: str, reader: Language | None = None) -> Markup:
    """A form per ECU with a coding description (firmware_py/uds/coding_bmw.toml, the box's
    own): each named parameter with its value names, or its range; unchanged when left empty."""
    reader = reader or language(None)
    forms = []
    for ecu, desc in load_coding_descriptions().items():
        rows = [render('<input type="hidden" name="kind" value="coding">'
                       '<input type="hidden" name="ecu" value="{e}">'
                       '<input type="hidden" name="p.action" value="set">', e=ecu)]  # fmt: skip
        unchanged = reader.gettext("(unchanged)")
        for param in desc.params:
            name = f"nv.changes.{param.name}"
            if param.values:  # the value's name is sent, its label (the data file's) shown
                options = join(render('<option value="{v}">{t}</option>', v=v,
                                      t=reader.choose(param.value_labels.get(v), v))
                               for v in param.values)  # fmt: skip
                control = render('<select name="{n}"><option value="">{u}</option>{o}'
                                 "</select>", n=name, o=options, u=unchanged)  # fmt: skip
            else:
                control = render('<input type="number" name="{n}" min="0" max="{hi}" step="1" '
                                 'placeholder="{u}">', n=name, u=unchanged,
                                 hi=str((1 << param.width) - 1))  # fmt: skip
            label = reader.choose(param.labels or None, param.name.replace("_", " "))
            rows.append(render("<label>{label} {c}</label>", label=label, c=control))
        submit = reader.gettext("Code {ecu}", ecu=ecu)
        forms.append(render("<h3>{e}</h3>{f}", e=ecu,
                            f=post_form(action, csrf, join(rows), submit, "job")))  # fmt: skip
    return join(forms)


def _number(f: Field, text: str, reader: Language) -> int | float:
    try:
        value: int | float = int(text, 0) if f.type is FieldType.INT else float(text)
    except ValueError:
        value = math.nan
    if isinstance(value, float) and not math.isfinite(value):
        message = (N_("{label}: {text} is not a whole number") if f.type is FieldType.INT
                   else N_("{label}: {text} is not a number"))  # fmt: skip
        raise NotPermitted(message, values={"label": Text(f.label), "text": repr(text[:20])},
                           hint=_hint(f, reader))  # fmt: skip
    return value


def _name_or_number(text: str) -> str | int:
    """A coding value as typed: a whole number (ASCII digits, as the box takes them) or a name."""
    return int(text) if _WHOLE.fullmatch(text) else text


def params_from_form(
    spec: JobKindSpec, form: Mapping[str, Any], reader: Language | None = None
) -> dict[str, Any]:
    """The job's parameters from a submitted :func:`job_form`: an empty input is left out (the
    box's default applies), text is converted by the field's declared type; the box's check
    (:func:`~firmware_py.gateway.job_params.check_params`) then judges the values."""
    reader = reader or language(None)
    params: dict[str, Any] = {}
    for f in spec.fields:
        if f.local_only:
            continue
        raw = form.get(f"p.{f.name}")
        text = raw.strip() if isinstance(raw, str) else ""
        if f.type is FieldType.BOOL:
            if form.get(f"b.{f.name}") is not None:
                params[f.name] = text == "on"
        elif f.type is FieldType.NAMED_VALUES:
            changes: dict[str, Any] = {}
            prefix = f"nv.{f.name}."
            for key, value in form.items():  # the named parameters of a coding form
                if isinstance(key, str) and key.startswith(prefix) and isinstance(value, str):
                    if value.strip():
                        text = value.strip()
                        changes[key[len(prefix) :]] = _name_or_number(text)
            for i in range(PAIRS):
                key = str(form.get(f"k.{f.name}.{i}") or "").strip()
                value = str(form.get(f"v.{f.name}.{i}") or "").strip()
                if key:
                    changes[key] = _name_or_number(value)
            if changes:
                params[f.name] = changes
        elif not text:
            continue
        elif f.type in (FieldType.INT, FieldType.FLOAT):
            params[f.name] = _number(f, text, reader)
        elif f.type in (FieldType.LIST, FieldType.FILES):
            params[f.name] = [item for item in _SPLIT.split(text) if item]
        elif f.type is FieldType.JOB_REF:
            params[f.name] = True if text.lower() == "true" else text
        else:
            params[f.name] = text
    return params


def ecu_from_form(form: Mapping[str, Any]) -> str | None:
    raw = form.get("ecu")
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return None
    if not ECU_NAME.fullmatch(text):
        raise NotPermitted(N_("{text} is not an ECU name"), values={"text": repr(text[:40])},
                           hint=N_("e.g. DME, EGS, BDC"))  # fmt: skip
    return text


# -- results -----------------------------------------------------------------------------------
def value_html(value: Any, depth: int = 0) -> Markup:
    """Any JSON value as HTML: objects as two-column tables, lists of objects as tables."""
    if depth > 6:
        return escape(json.dumps(value)[:400])
    if isinstance(value, dict):
        if not value:
            return Markup("-")
        return table(("", ""), ((k, value_html(v, depth + 1)) for k, v in value.items()))
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            return table(keys, ((value_html(v.get(k), depth + 1) for k in keys) for v in value))
        return escape(", ".join(str(v) for v in value) or "-")
    if value is None:
        return Markup("-")
    return escape(value)


def _fault_memory(
    result: Mapping[str, Any], reader: Language, info: Callable[[str], str] | None = None
) -> Markup:
    """The fault memory by ECU; ``info`` gives a DTC's repair-information link (None: the
    workshop may not read repair information, no links)."""
    _ = reader.gettext
    parts = []
    for ecu in result.get("ecus") or []:
        if not isinstance(ecu, dict):
            continue
        n = len(ecu.get("dtcs") or [])
        head = render("<h3>{t}</h3>", t=reader.ngettext(
            "{name} ({address}): {n} fault", "{name} ({address}): {n} faults", n,
            name=ecu.get("name"), address=f"0x{int(ecu.get('address') or 0):X}"))  # fmt: skip
        error = ecu.get("error") or {}
        notes = join(render('<p class="message">{m}</p>', m=m)
                     for m in (ecu.get("warning"), error_text(error, reader)) if m)  # fmt: skip
        faults = join(
            render('<details class="fault"><summary>{code} {text} ({status})</summary>{link}'
                   "<h4>{h_snap}</h4>{snap}<h4>{h_ext}</h4>{ext}</details>",
                   code=d.get("code") or d.get("id"),
                   text=reader.choose(d.get("texts") or d.get("text") or ""),
                   status=_("status {status}: {names}", status=f"0x{int(d.get('status') or 0):02X}",
                            names=", ".join(_(n) for n in d.get("status_names") or [])),
                   link=render('<p><a href="{u}" data-testid="dtc-info">{t}</a></p>',
                               u=info(str(d["code"])),
                               t=_("Repair information for {code}", code=d["code"]))
                   if info and d.get("code") else "",
                   h_snap=_("Snapshot data"), h_ext=_("Extended data"),
                   snap=value_html(d.get("snapshots")) if d.get("snapshots")
                   else note_text(d, "snapshots_note", reader, _("none")),
                   ext=value_html(d.get("extended")) if d.get("extended")
                   else note_text(d, "extended_note", reader, _("none")))
            for d in ecu.get("dtcs") or [] if isinstance(d, dict)
        )  # fmt: skip
        parts.append(join([head, notes, faults]))
    return join(parts) or render("<p>{t}</p>", t=_("No ECU answered."))


_ECU_KEYS = frozenset({"name", "address", "description", "descriptions", "present", "error",
                       "values"})  # fmt: skip
"""an identified ECU's own keys; the others are its identification values (by DID name)"""


def _identify(result: Mapping[str, Any], reader: Language) -> Markup:
    _ = reader.gettext
    ecus = [e for e in result.get("ecus") or [] if isinstance(e, dict)]
    rows = ((e.get("name"), f"0x{int(e.get('address') or 0):X}",
             reader.choose(e.get("descriptions") or e.get("description") or ""),
             _("yes") if e.get("present") else _("no"),
             value_html({k: v for k, v in e.items() if k not in _ECU_KEYS}))
            for e in ecus)  # fmt: skip
    return render("<p>{vin} {model} ({link})</p>{t}",
                  vin=render("{label} <strong>{vin}</strong>", label=_("VIN"),
                             vin=result.get("vin") or "-"),
                  model=result.get("model") or "", link=result.get("link") or "",
                  t=table((_("ECU"), _("Address"), "", _("Answers"), _("Identification")),
                          rows))  # fmt: skip


def live_series(events: list[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Per value ("DME:4001"), its numeric readings (t, value) from the job's progress events."""
    series: dict[str, list[tuple[float, float]]] = {}
    for body in events:
        values, t = body.get("values"), body.get("t")
        if not isinstance(values, dict) or not isinstance(t, int | float):
            continue
        for key, entry in values.items():
            value = entry.get("value") if isinstance(entry, dict) else entry
            if isinstance(value, dict):  # a value with its unit: {"value": 2.1, "unit": "bar"}
                value = value.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value):
                    series.setdefault(str(key), []).append((float(t), float(value)))
    return series


def live_plot(series: Mapping[str, list[tuple[float, float]]], reader: Language,
              width: int = 600, height: int = 120) -> Markup:  # fmt: skip
    """One small SVG line plot per value, scaled to its own range, with the last reading."""
    plots = []
    for key, points in series.items():
        if not points:
            continue
        ts, vs = [p[0] for p in points], [p[1] for p in points]
        t0, t1 = min(ts), max(ts) or 1.0
        v0, v1 = min(vs), max(vs)
        span_t, span_v = (t1 - t0) or 1.0, (v1 - v0) or 1.0
        coords = " ".join(
            f"{(t - t0) / span_t * (width - 10) + 5:.1f},{height - 5 - (v - v0) / span_v * (height - 10):.1f}"
            for t, v in points
        )
        plots.append(render(
            '<figure class="plot"><figcaption>{caption}'
            '</figcaption><svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            'aria-label="{key}"><rect x="0" y="0" width="{w}" height="{h}" fill="#fff" '
            'stroke="#ccc"/><polyline fill="none" stroke="#20354d" stroke-width="1.5" '
            'points="{pts}"/></svg></figure>',
            key=key, w=width, h=height, pts=coords,
            caption=reader.gettext("{key}: {last} (min {low}, max {high})", key=key,
                                   last=reader.number(vs[-1]), low=reader.number(v0),
                                   high=reader.number(v1)),
        ))  # fmt: skip
    return join(plots) or render("<p>{t}</p>", t=reader.gettext("No numeric values yet."))


def result_html(
    kind: str,
    job: Mapping[str, Any] | None,
    events: list[Mapping[str, Any]],
    reader: Language,
    dtc_info: Callable[[str], str] | None = None,
) -> Markup:
    """The job's outcome as the box returned it (``job``: the box's final job object);
    ``dtc_info``: the link of a DTC to the repair information (portal/web/info_pages.py)."""
    parts = []
    if kind == "read_live_data":
        parts.append(live_plot(live_series(events), reader))
    if job is None:
        return join(parts)
    error = job.get("error")
    if isinstance(error, dict) and error.get("message"):
        parts.append(render('<p class="message">{m}</p>', m=error_text(error, reader)))
    result = job.get("result")
    if isinstance(result, dict):
        if kind == "read_fault_memory":
            parts.append(_fault_memory(result, reader, dtc_info))
        elif kind == "identify":
            parts.append(_identify(result, reader))
        else:
            parts.append(value_html(result))
    return join(parts)
