"""Server-rendered HTML without a template engine: :func:`render` fills a format string with
values that are HTML-escaped unless they are :class:`Markup` (HTML we built ourselves), and
:func:`layout` wraps a page's body in the one layout (one stylesheet, no scripts)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime


class Markup(str):
    """HTML that is safe as it is (built by :func:`render`); everything else is escaped."""


def escape(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def render(template: str, **values: object) -> Markup:
    """``template`` (a ``str.format`` string written by us) with every value escaped."""
    return Markup(template.format(**{name: escape(v) for name, v in values.items()}))


def join(parts: Iterable[object]) -> Markup:
    return Markup("".join(escape(part) for part in parts))


def utc(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def csrf_field(token: str) -> Markup:
    return render('<input type="hidden" name="csrf" value="{token}">', token=token)


def post_form(action: str, csrf: str, fields: Markup, button: str, css: str = "") -> Markup:
    """A POST form with the CSRF token (every state change is one)."""
    return render(
        '<form method="post" action="{action}" class="{css}">{csrf}{fields}'
        '<button type="submit">{button}</button></form>',
        action=action, csrf=csrf_field(csrf), fields=fields, button=button, css=css,
    )  # fmt: skip


def field(label: str, name: str, kind: str = "text", value: str = "", **attrs: str) -> Markup:
    extra = join(render(' {k}="{v}"', k=k.replace("_", "-"), v=v) for k, v in attrs.items())
    return render(
        '<label>{label} <input type="{kind}" name="{name}" value="{value}"{extra}></label>',
        label=label, kind=kind, name=name, value=value, extra=extra,
    )  # fmt: skip


def table(head: Iterable[str], rows: Iterable[Iterable[object]]) -> Markup:
    cells = join(
        render("<tr>{cells}</tr>", cells=join(render("<td>{c}</td>", c=c) for c in row))
        for row in rows
    )
    return render(
        "<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>",
        head=join(render("<th>{h}</th>", h=h) for h in head), cells=cells,
    )  # fmt: skip


def layout(title: str, body: Markup, nav: Markup, message: str = "", language: str = "en") -> str:
    note = render('<p class="message" role="alert">{m}</p>', m=message) if message else ""
    return render(
        '<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{title} - VCI portal</title><link rel="stylesheet" href="/static/portal.css">'
        "</head><body><header><strong>VCI portal</strong>{nav}</header>"
        "<main><h1>{title}</h1>{note}{body}</main></body></html>",
        title=title, nav=nav, note=note, body=body, language=language,
    )  # fmt: skip
