"""The repair information pages (``/info/...``): search, a vehicle by its VIN with its technical
campaigns, what names a DTC, a repair instruction, a wiring diagram, a bulletin, a part, the
drawings (the labour-value job sheet is portal/web/jobsheet_pages.py's). Every page is for a workshop's
users whose workshop holds a valid ticket with repair information (portal/content/access.py);
others get 403 with what to buy. Drawings are served as images with a Content-Security-Policy
of their own (``default-src 'none'``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware_py.errors import NotEntitled, NotPermitted
from firmware_py.i18n import N_, Language
from portal.content import access, format, search, store
from portal.content.vehicle import display_dtc, normal_dtc, normal_vin, type_code
from portal.db.models import StoredPackage
from portal.web.guard import Need, in_db, lang, own_workshop, page, requires
from portal.web.html import Markup, escape, join, render, table

routes = web.RouteTableDef()
KIND_PATH = {"instruction": "instructions", "wiring": "wiring", "bulletin": "bulletins",
             "part": "parts"}  # fmt: skip
DRAWING_CSP = "default-src 'none'; style-src 'none'; frame-ancestors 'self'; sandbox"


def link(kind: str, ref: str, title: str, vin: str | None = None) -> Markup:
    query = f"?{urlencode({'vin': vin})}" if vin else ""
    return render('<a href="/info/{p}/{r}{q}">{t}</a>', p=KIND_PATH[kind], r=quote(ref, safe=""),
                  q=query, t=title)  # fmt: skip


def vin_of(request: web.Request) -> str | None:
    return normal_vin(request.query.get("vin", "")) if request.query.get("vin") else None


async def read_page(request: web.Request, title: str, work: Any) -> web.Response:
    """Check the entitlement and render ``work(session)`` as a page (None: 404)."""
    workshop_id, now = own_workshop(request), int(time.time())

    def run(session: Session) -> Markup | tuple[str, Markup] | None:
        access.check(session, workshop_id, now)
        return work(session)

    try:
        body = await in_db(request, run)
    except NotEntitled as err:
        return page(request, "Repair information",
                    render("<p>{m}</p>", m=err.localized(lang(request))), status=403)  # fmt: skip
    except NotPermitted as err:
        return page(request, title, render("<p>{m}</p>", m=err.localized(lang(request))),
                    status=400)  # fmt: skip
    if body is None:
        raise web.HTTPNotFound()
    if isinstance(body, tuple):  # the page names its own title (a document's)
        title, body = body
    return page(request, title, body)


def _search_form(reader: Language, q: str = "", vin: str = "") -> Markup:
    _ = reader.gettext
    return render(
        '<form method="get" action="/info" class="inline" role="search">'
        '<input name="q" value="{q}" placeholder="{what}" aria-label="{search}">'
        '<input name="vin" value="{vin}" placeholder="{vin_label}" aria-label="VIN">'
        '<button type="submit">{search}</button></form>', q=q, vin=vin,
        what=_("words, a DTC (P12A1-00), a part number"), search=_("Search"),
        vin_label=_("VIN (optional)"),
    )  # fmt: skip


def _snippet(text: str) -> Markup:
    return Markup(str(escape(text)).replace(search.MARK, "<mark>").replace(search.END, "</mark>"))


@routes.get("/info")
@requires(Need.WORKSHOP)
async def search_page(request: web.Request) -> web.Response:
    q, vin = request.query.get("q", "")[:200], vin_of(request)
    reader = lang(request)
    _ = reader.gettext

    def work(session: Session) -> Markup:
        hits = search.search(session, q, type_code(vin) if vin else None) if q else []
        titles = {(h.kind, h.ref): d.title_in(reader.code) for h in hits
                  if (d := store.document(session, h.kind, h.ref)) is not None}  # fmt: skip
        found = join(
            render('<li data-kind="{k}">{a} <small>{what}</small><br><span class="snippet">{s}'
                   "</span></li>", k=h.kind, what=_(KIND_NAMES[h.kind]),
                   a=link(h.kind, h.ref, titles.get((h.kind, h.ref), h.title), vin),
                   s=_snippet(h.snippet))
            for h in hits
        )  # fmt: skip
        current = store.current(session)
        return render(
            "{form}{vehicle}<p>{count}</p><ol class=\"hits\">{found}</ol><p><small>{content}"
            "</small></p>",
            form=_search_form(reader, q, vin or ""),
            vehicle=render('<p>{t} <a href="/info/vehicles/{v}">{v}</a></p>', v=vin,
                           t=_("For the vehicle"))
            if vin else "",
            count=reader.ngettext("{n} found", "{n} found", len(hits)) if q
            else _("Search instructions, wiring diagrams, bulletins and parts; give a VIN to see "
                   "only what applies to that vehicle."),
            found=found,
            content=_("Content: {name} {version}", name=current.name,
                      version=current.content_version) if current
            else _("No content imported yet (vci-portal content import)."),
        )  # fmt: skip

    return await read_page(request, "Repair information", work)


@routes.get("/info/vehicles/{vin}")
@requires(Need.WORKSHOP)
async def vehicle_page(request: web.Request) -> web.Response:
    vin = normal_vin(request.match_info["vin"])
    if vin is None:
        raise web.HTTPNotFound()
    reader = lang(request)
    _ = reader.gettext

    def work(session: Session) -> Markup:
        model = store.vehicle(session, vin)
        found = store.campaigns(session, vin, datetime.now(UTC).year)
        open_ = [d for d, s in found if s == "open"]
        notice = render(
            '<div class="message" role="alert" data-testid="campaigns">{t}</div><ul>{items}</ul>',
            t=_("Open technical campaigns for this vehicle: {n}", n=len(open_)),
            items=join(render("<li>{a}</li>", a=link("bulletin", d.ref, d.title_in(reader.code), vin))
                       for d in open_),
        ) if open_ else render("<p>{t}</p>", t=_("No open technical campaign for this vehicle."))  # fmt: skip
        done = [d for d, s in found if s == "done"]
        return render(
            "<p>{tc}</p>{notice}{done}<h2>{h_search}</h2>{form}"
            '<h2>{h_code}</h2><form method="get" action="/info/dtc" class="inline">'
            '<input type="hidden" name="vin" value="{vin}"><input name="code" '
            'placeholder="{code_hint}" aria-label="{h_code}"><button type="submit">'
            '{show}</button></form><p><a href="/info/jobsheet?vin={vin}">{sheet}'
            "</a></p>",
            tc=_("Type code {code}: {model}", code=type_code(vin),
                 model=f"{model.name} ({model.series})" if model else _("not in the content")),
            vin=vin, notice=notice, form=_search_form(reader, "", vin),
            h_search=_("Search for this vehicle"), h_code=_("A fault code"),
            code_hint=_("P12A1-00 or 12A100"), show=_("Show"),
            sheet=_("Job sheet (labour values)"),
            done=render("<p>{t}</p>", t=_("Done: {refs}", refs=", ".join(d.ref for d in done)))
            if done else "",
        )  # fmt: skip

    return await read_page(request, _("Vehicle {vin}", vin=vin), work)


KIND_NAMES = {"instruction": N_("repair instruction"), "wiring": N_("wiring diagram"),
              "bulletin": N_("bulletin"), "part": N_("part")}  # fmt: skip
"""what a search hit is, in the reader's words"""


@routes.get("/info/dtc")
@requires(Need.WORKSHOP)
async def dtc_page(request: web.Request) -> web.Response:
    """What names a DTC (the link from a car's fault memory), for the vehicle when ``vin``."""
    code, vin = normal_dtc(request.query.get("code", "")), vin_of(request)
    if code is None:
        raise web.HTTPNotFound()
    reader = lang(request)
    _ = reader.gettext

    def work(session: Session) -> Markup:
        docs = store.linked(session, "dtc", code, vin)
        return render(
            "<p>{vehicle}</p><ul>{items}</ul>",
            vehicle=_("For the vehicle {vin}", vin=vin) if vin else _("For every vehicle"),
            items=join(render("<li>{a}</li>", a=link(d.kind, d.ref, d.title_in(reader.code), vin))
                       for d in docs)
            or render("<li>{t}</li>", t=_("Nothing in the content names this fault code.")),
        )  # fmt: skip

    title = _("Fault code {display} ({code})", display=display_dtc(code), code=code)
    return await read_page(request, title, work)


Renderer = Callable[[Session, store.Document, "str | None", Language], Markup]


def _document(kind: str, render_data: Renderer) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ref, vin, reader = request.match_info["ref"], vin_of(request), lang(request)

        def work(session: Session) -> tuple[str, Markup] | None:
            doc = store.document(session, kind, ref)
            if doc is None:
                return None
            return doc.title_in(reader.code), render_data(session, doc, vin, reader)

        return await read_page(request, KIND_NAMES[kind], work)  # page() translates it

    return handler


def _links(
    session: Session, kind: str, refs: list[str], vin: str | None, reader: Language
) -> Markup:
    docs = [d for r in refs if (d := store.document(session, kind, r)) is not None]
    return join(
        render("<li>{a}</li>", a=link(kind, d.ref, d.title_in(reader.code), vin)) for d in docs
    )


def _listed(values: Any) -> str:
    return ", ".join(values) or "-"


def _instruction(
    session: Session, doc: store.Document, vin: str | None, reader: Language
) -> Markup:
    d, _ = doc.data, reader.gettext
    steps = join(
        render("<li>{t}{torque}</li>", t=store.translated(s, "text", reader.code),
               torque=render(' <strong class="torque">{t}</strong>',
                             t=_("Torque: {value}", value=reader.unit(s["torque_nm"], "Nm", None)))
               if s.get("torque_nm") else "")
        for s in d["steps"]
    )  # fmt: skip
    return render(
        "<p>{summary}</p><p>{about}</p><p>{tools}</p>"
        "<h2>{h_steps}</h2><ol>{steps}</ol><h2>{h_wiring}</h2><ul>{wiring}</ul>"
        "<h2>{h_parts}</h2><ul>{parts}</ul><h2>{h_labour}</h2><p>{labour}</p>",
        summary=store.translated(d, "summary", reader.code),
        about=_("ECUs: {ecus}. Fault codes: {dtcs}.", ecus=_listed(d["ecus"]),
                dtcs=_listed(f"{display_dtc(c)} ({c})" for c in d["dtcs"])),
        tools=_("Tools: {tools}", tools=_listed(d["tools"])), steps=steps,
        h_steps=_("Steps"), h_wiring=_("Wiring diagrams"), h_parts=_("Parts"),
        h_labour=_("Labour operations"),
        wiring=_links(session, "wiring", d["wiring"], vin, reader),
        parts=_links(session, "part", d["parts"], vin, reader), labour=_listed(d["labour"]),
    )  # fmt: skip


def _drawing(name: str, alt: str) -> Markup:
    return render('<p><img class="drawing" src="/info/drawings/{n}" alt="{a}"></p>', n=name, a=alt)


def _wiring(session: Session, doc: store.Document, vin: str | None, reader: Language) -> Markup:
    d, _ = doc.data, reader.gettext
    rows = ((c["name"], store.translated(c, "description", reader.code), ", ".join(f"{c['name']}.{p}" for p in c["pins"]))
            for c in d["connectors"])  # fmt: skip
    return render(
        "<p>{ecus}</p>{img}<h2>{h_connectors}</h2>{rows}<h2>{h_used}</h2><ul>{used}</ul>",
        ecus=_("ECUs: {ecus}", ecus=", ".join(d["ecus"])), img=_drawing(d["drawing"], doc.title_in(reader.code)),
        h_connectors=_("Connectors"), h_used=_("Instructions that use it"),
        rows=table((_("Connector"), _("Description"), _("Pins")), rows),
        used=join(render("<li>{a}</li>", a=link(x.kind, x.ref, x.title_in(reader.code), vin))
                  for x in store.linked(session, "wiring", doc.ref, vin, ("instruction",))),
    )  # fmt: skip


CAMPAIGN_STATES = {"open": N_("open"), "done": N_("done")}


def _bulletin(session: Session, doc: store.Document, vin: str | None, reader: Language) -> Markup:
    d, _ = doc.data, reader.gettext
    state = ""
    if vin and d["kind"] == "campaign":
        states = dict((x.ref, s) for x, s in store.campaigns(session, vin, datetime.now(UTC).year))
        found = states.get(doc.ref)
        state = _("For {vin}: {state}.", vin=vin,
                  state=_(CAMPAIGN_STATES[found]) if found else _("not concerned"))  # fmt: skip
    scope = [_("type codes {codes}", codes=", ".join(d["type_codes"]) or _("all"))]
    if d["model_years"]:
        scope.append(_("model years {first}-{last}", first=d["model_years"][0],
                       last=d["model_years"][1]))  # fmt: skip
    scope += [_("serials {low}-{high}", low=a, high=b) for a, b in d["vin_ranges"]]
    return render(
        "<p><strong>{kind}</strong> {state}</p><p>{text}</p><p>{about}</p><p>{scope}</p>",
        kind=_("Technical campaign") if d["kind"] == "campaign" else _("Service bulletin"),
        state=state, text=store.translated(d, "text", reader.code),
        about=_("ECUs: {ecus}. Fault codes: {dtcs}.", ecus=_listed(d["ecus"]),
                dtcs=_listed(display_dtc(c) for c in d["dtcs"])),
        scope=_("Scope: {scope}.", scope=", ".join(scope)),
    )  # fmt: skip


def _software(software: list[Any], installed: dict[str, str], reader: Language) -> Markup:
    """The software parts the content knows for a hardware part; with the ECU's installed SVK
    (``?sw=ID:VERSION``, as identify reads it) whether a newer version exists."""
    _ = reader.gettext
    newest: dict[tuple[str, str], str] = {}
    for s in software:
        key = (s.process_class, s.sgbm_id)
        if key not in newest or store.version_key(s.version) > store.version_key(newest[key]):
            newest[key] = s.version
    rows = []
    for (pc, sgbm), version in sorted(newest.items()):
        have = installed.get(sgbm)
        if have is None:
            state = "-"
        elif store.version_key(version) > store.version_key(have):
            state = _("installed {have}: newer software {version} exists", have=have,
                      version=version)  # fmt: skip
        else:
            state = _("installed {have}: up to date", have=have)
        rows.append((pc, sgbm, version, state))
    return render("<h2>{h}</h2>{t}", h=_("Software (SVK)"),
                  t=table((_("Process class"), _("ID"), _("Newest version"), _("This ECU")),
                          rows))  # fmt: skip


def _installed(request: web.Request) -> dict[str, str]:
    found = {}
    for item in request.query.getall("sw", [])[:32]:
        sgbm, _, version = item.upper().partition(":")
        if format.SGBM_ID.fullmatch(sgbm) and format.VERSION.fullmatch(version):
            found[sgbm] = ".".join(str(int(p)) for p in version.split("."))
    return found


ECU_NAME = re.compile(r"[A-Z0-9]{1,16}")


def _ecu_software(request: web.Request) -> tuple[str, str] | None:
    """The ECU and its installed software version the link names (``?ecu=DME&version=12.04.0``,
    as the tablet's identify shows them), or None."""
    ecu, version = request.query.get("ecu", "").upper(), request.query.get("version", "")
    if ECU_NAME.fullmatch(ecu) and format.VERSION.fullmatch(version):
        return ecu, version
    return None


def _store_packages(
    session: Session, ecu_software: tuple[str, str] | None, reader: Language
) -> Markup:
    """Whether the portal's package store (portal/packages.py: signed packages the boxes can
    program) holds newer software for the ECU the link names."""
    if ecu_software is None:
        return Markup("")
    _ = reader.gettext
    ecu, have = ecu_software
    newer = sorted(
        {p.version for p in session.scalars(select(StoredPackage).where(StoredPackage.ecu == ecu))
         if format.VERSION.fullmatch(p.version)
         and store.version_key(p.version) > store.version_key(have)},
        key=store.version_key,
    )  # fmt: skip
    if not newer:
        return render('<p data-testid="store-software">{t}</p>',
                      t=_("{ecu} {have}: no newer software in the package store.", ecu=ecu,
                          have=have))  # fmt: skip
    # the translated sentence holds the link: the template is the catalogue's, the values escaped
    return render(
        '<p data-testid="store-software">' + _(
            "<strong>Newer software in the package store for {ecu} (installed {have}): "
            "{versions}.</strong> Program it from a remote session with the box "
            '(<a href="/sessions">Remote sessions</a>, Programming).'
        ) + "</p>",
        ecu=ecu, have=have, versions=", ".join(newer),
    )  # fmt: skip


def _part_page(installed: dict[str, str], ecu_software: tuple[str, str] | None = None) -> Renderer:
    def render_part(
        session: Session, doc: store.Document, vin: str | None, reader: Language
    ) -> Markup:
        d, _ = doc.data, reader.gettext
        group = store.document(session, "group", d["group"])
        newer = store.superseding(session, doc.ref)
        software = store.software(session, doc.ref)
        group_name = group.title_in(reader.code) if group else d["group"]
        return render(
            "<p>{about}</p>{packages}{newer}{supersedes}{img}{software}",
            about=_("Part number {number}, group {group}, item {item} of the illustration.",
                    number=doc.ref, group=group_name, item=d["hotspot"]) if d["hotspot"]
            else _("Part number {number}, group {group}.", number=doc.ref, group=group_name),
            packages=_store_packages(session, ecu_software, reader),
            newer=render("<p>" + _("Superseded by {part}.") + "</p>",
                         part=link("part", newer.ref, newer.title_in(reader.code), vin)) if newer else "",
            supersedes=render("<p>{t}</p>", t=_("Supersedes {parts}.",
                                                parts=", ".join(d["supersedes"])))
            if d["supersedes"] else "",
            img=_drawing(group.data["illustration"], group_name) if group else "",
            software=_software(software, installed, reader) if software else "",
        )  # fmt: skip

    return render_part


@routes.get("/info/parts/{ref}")
@requires(Need.WORKSHOP)
async def part_page(request: web.Request) -> web.Response:
    """A part; for an ECU's hardware part number also its software parts, compared with the
    installed SVK when the link gives it (``?sw=00002B12:41.7.12``), and with ``?ecu=&version=``
    whether the portal's package store holds newer software for that ECU."""
    return await _document("part", _part_page(_installed(request), _ecu_software(request)))(request)


for _kind, _render in (("instruction", _instruction), ("wiring", _wiring),
                       ("bulletin", _bulletin)):  # fmt: skip
    routes.get(f"/info/{KIND_PATH[_kind]}/{{ref}}")(
        requires(Need.WORKSHOP)(_document(_kind, _render))
    )


@routes.get("/info/drawings/{folder}/{file}")
@requires(Need.WORKSHOP)
async def drawing(request: web.Request) -> web.Response:
    name = f"{request.match_info['folder']}/{request.match_info['file']}"
    workshop_id, now = own_workshop(request), int(time.time())

    def read(session: Session) -> str | None:
        access.check(session, workshop_id, now)
        return store.drawing(session, name)

    try:
        found = await in_db(request, read)
    except NotEntitled as err:
        raise web.HTTPForbidden(text=str(err)) from None
    if found is None:
        raise web.HTTPNotFound()
    return web.Response(text=found, content_type="image/svg+xml",
                        headers={"Content-Security-Policy": DRAWING_CSP})  # fmt: skip
