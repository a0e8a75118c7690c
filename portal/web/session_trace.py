"""The box's vehicle-link trace (pcap) offered on a remote session's page: fetched from the box
piece by piece (``trace.read`` / ``trace.chunk`` over the box's link, portal/sessions.py
:func:`~portal.sessions.box_trace`) while it streams to the browser; nothing is kept on the portal."""

from __future__ import annotations

import asyncio

from aiohttp import web

from firmware_py.errors import PortalError
from portal import sessions
from portal.web.guard import Need, actor, lang, page, requires, status_of
from portal.web.html import Markup

routes = web.RouteTableDef()
DEVICE = r"{device:[A-Za-z0-9][A-Za-z0-9._-]{0,63}}"
ID = r"{sid:[0-9]{1,18}}"


@routes.get(f"/boxes/{DEVICE}/sessions/{ID}/box-trace.pcap")
@requires(Need.WORKSHOP)
async def box_trace(request: web.Request) -> web.StreamResponse:
    from portal.web.guard import CONFIG
    from portal.web.session_pages import SERVICE, _ids

    device, who = request.match_info["device"], actor(request)
    (sid,) = _ids(request, "sid")
    pieces = sessions.box_trace(request.app[SERVICE], request.app[CONFIG].factory, who, device, sid)
    try:  # the first piece before the answer starts: a refusal is a page, not a broken file
        name, first = await asyncio.to_thread(next, pieces, ("", b""))
    except PortalError as err:
        return page(
            request,
            "No trace",
            Markup(""),
            message=err.localized(lang(request)),
            status=status_of(err),
        )
    response = web.StreamResponse(headers={
        "Content-Type": "application/vnd.tcpdump.pcap",
        "Content-Disposition": f'attachment; filename="{device}-{name or "trace.pcap"}"',
    })  # fmt: skip
    await response.prepare(request)
    await response.write(first)
    while piece := await asyncio.to_thread(next, pieces, None):
        await response.write(piece[1])
    await response.write_eof()
    return response
