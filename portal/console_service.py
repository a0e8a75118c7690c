"""The console's service booklet and help desk (docs/service-booklet.md, docs/helpdesk.md): a
VIN's booklet with its flagged entries, the help-desk requests with their bundles (attachments
downloadable once a request is here whole), and answers sent back to the box."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from firmware_py import strict_json
from firmware_py.cloud.schema import Message
from portal.helpdesk import HelpDeskError


def _keys() -> tuple[Any, Any]:
    from portal.console import RECORDS, SESSION

    return RECORDS, SESSION


async def _booklet(request: web.Request) -> web.Response:
    records, _ = _keys()
    vin = request.match_info["vin"].strip().upper()[:17]
    return web.json_response({"vin": vin, "entries": request.app[records].booklet.entries(vin)})


async def _helpdesk(request: web.Request) -> web.Response:
    records, _ = _keys()
    return web.json_response({"requests": request.app[records].helpdesk.requests()})


async def _helpdesk_show(request: web.Request) -> web.Response:
    records, _ = _keys()
    try:
        return web.json_response(request.app[records].helpdesk.show(request.match_info["rid"]))
    except HelpDeskError as err:
        raise web.HTTPNotFound(text=str(err)) from None


async def _attachment(request: web.Request) -> web.Response:
    records, _ = _keys()
    rid, name = request.match_info["rid"], request.match_info["name"]
    try:
        data = request.app[records].helpdesk.attachment(rid, name)
    except HelpDeskError as err:
        raise web.HTTPNotFound(text=str(err)) from None
    safe = "".join(c for c in name if c.isalnum() or c in "-_.")[:120] or "attachment"
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


async def _answer(request: web.Request) -> web.Response:
    records, session_key = _keys()
    rid = request.match_info["rid"]
    try:
        body = strict_json.obj(strict_json.loads(await request.read()), "the request")
        text = strict_json.text(body, "answer", max_len=20000).strip()
    except strict_json.StrictJsonError as err:
        raise web.HTTPBadRequest(text=f"the answer is not JSON with an answer: {err}") from None
    if not text:
        raise web.HTTPBadRequest(text="write an answer")
    session = request.app[session_key]
    try:
        box = request.app[records].helpdesk.answer(rid, text, session.user)
    except HelpDeskError as err:
        raise web.HTTPNotFound(text=str(err)) from None
    message = Message("helpdesk.answer", {"request": rid, "answer": text})
    # kept by the broker until the box is back (no expiry: its persistent session)
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: session.send(box, message, expiry=None)
    )
    return web.json_response({"request": rid, "box": box, "sent": True})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/booklet/{vin}", _booklet)
    app.router.add_get("/api/helpdesk", _helpdesk)
    app.router.add_get("/api/helpdesk/{rid}", _helpdesk_show)
    app.router.add_get("/api/helpdesk/{rid}/attachments/{name}", _attachment)
    app.router.add_post("/api/helpdesk/{rid}/answer", _answer)
