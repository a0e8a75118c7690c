"""The tablet's local page: an aiohttp application inside the gateway.

App factory and background tasks in ``cleanup_ctx`` as in aiohttp's own examples. Everything is
served by the box (no CDN: the box's Wi-Fi has no internet), no build step.

Access: a request without a valid session cookie gets the pairing page and the pairing API,
nothing else. Requests that change anything must carry the session's CSRF token in the
``X-CSRF-Token`` header (the cookie is also SameSite=Strict). Live updates come from the gateway's
event bus over one WebSocket (``/api/events``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from firmware_py.errors import VciError
from firmware_py.gateway.jobs import Caller, JobRequest
from firmware_py.web.pairing import Pairing, PairingError, Tablet

log = logging.getLogger(__name__)

COOKIE = "vci_session"
GATEWAY: web.AppKey[Any] = web.AppKey("gateway", object)
PAIRING: web.AppKey[Pairing] = web.AppKey("pairing", Pairing)
TABLET: web.RequestKey[Tablet] = web.RequestKey("tablet", Tablet)
SECURE_COOKIE: web.AppKey[bool] = web.AppKey("secure_cookie", bool)

STATIC = resources.files("firmware_py.web") / "static"
OPEN_PATHS = ("/api/pair",)
MAX_BODY = 64 * 1024
MAX_PACKAGE_UPLOAD = 256 * 1024 * 1024


def _json_error(status: int, err: VciError | str, code: str = "error") -> web.Response:
    body = (
        err.to_dict()
        if isinstance(err, VciError)
        else {"error": code, "message": err, "hint": None}
    )
    return web.json_response(body, status=status)


@web.middleware
async def security(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    app = request.app
    path = request.path
    gateway = app[GATEWAY]
    tablet = app[PAIRING].authenticate(request.cookies.get(COOKIE), gateway.now())
    if tablet is not None:
        request[TABLET] = tablet
    is_open = (
        path.startswith("/static/") or path.startswith(OPEN_PATHS) or path in ("/", "/favicon.ico")
    )
    if tablet is None and not is_open:
        return _json_error(401, "this tablet is not paired with the box", "not_paired")
    if (
        tablet is not None
        and request.method not in ("GET", "HEAD", "OPTIONS")
        and not path.startswith(OPEN_PATHS)
    ):
        if request.headers.get("X-CSRF-Token") != tablet.csrf:
            return _json_error(403, "missing or wrong CSRF token", "csrf")
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "bad_json", "message": str(err)}),
            content_type="application/json",
        ) from err
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text='{"error": "bad_json", "message": "expected an object"}',
            content_type="application/json",
        )
    return data


# -- pages ---------------------------------------------------------------------------------
async def index(request: web.Request) -> web.Response:
    page = "index.html" if TABLET in request else "pair.html"
    return web.Response(
        text=(STATIC / page).read_text(),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


# -- pairing -------------------------------------------------------------------------------
async def pair_request(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        rid, claim = request.app[PAIRING].request(
            str(data.get("name", "tablet")), request.app[GATEWAY].now()
        )
    except PairingError as err:
        return _json_error(429, err)
    request.app[GATEWAY].bus.publish("pairing.requested", {"id": rid})
    return web.json_response({"id": rid, "claim": claim, "window": request.app[PAIRING].window})


async def pair_code(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        request.app[PAIRING].enter_code(
            request.match_info["rid"], str(data.get("code", "")), request.app[GATEWAY].now()
        )
    except PairingError as err:
        return _json_error(403, err)
    return web.json_response({"approved": True})


async def pair_collect(request: web.Request) -> web.Response:
    data = await _body(request)
    pairing, gateway = request.app[PAIRING], request.app[GATEWAY]
    # A long poll: the answer comes when the box's button is pressed or the code entered, or after
    # ``wait`` seconds (at most 25) with "not yet"; the unpaired page has no event socket.
    wait = min(25.0, max(0.0, float(data.get("wait", 0) or 0)))
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            got = pairing.collect(
                request.match_info["rid"], str(data.get("claim", "")), gateway.now()
            )
        except PairingError as err:
            return _json_error(403, err)
        if got is not None or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.2)
    if got is None:
        return web.json_response({"approved": False}, status=202)
    token, tablet = got
    response = web.json_response({"approved": True, "tablet": tablet.to_dict()})
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(pairing.session_lifetime),
        httponly=True,
        samesite="Strict",
        secure=request.app[SECURE_COOKIE],
        path="/",
    )
    gateway.bus.publish("pairing.paired", {"tablet": tablet.to_dict()})
    return response


# -- session, tablets ----------------------------------------------------------------------
async def session(request: web.Request) -> web.Response:
    tablet: Tablet = request[TABLET]
    return web.json_response({"tablet": tablet.to_dict(), "csrf": tablet.csrf})


async def tablets(request: web.Request) -> web.Response:
    return web.json_response({"tablets": [t.to_dict() for t in request.app[PAIRING].tablets()]})


async def unpair(request: web.Request) -> web.Response:
    if not request.app[PAIRING].unpair(request.match_info["tid"]):
        raise web.HTTPNotFound()
    response = web.json_response({"unpaired": request.match_info["tid"]})
    if request[TABLET].id == request.match_info["tid"]:
        response.del_cookie(COOKIE, path="/")
    return response


# -- vehicle and jobs ------------------------------------------------------------------------
async def vehicle(request: web.Request) -> web.Response:
    return web.json_response(request.app[GATEWAY].vehicle_state())


async def jobs_list(request: web.Request) -> web.Response:
    runner = request.app[GATEWAY].runner
    recent = sorted(runner.jobs.values(), key=lambda j: j.created, reverse=True)[:100]
    return web.json_response({"jobs": [j.to_dict() for j in recent]})


async def job_get(request: web.Request) -> web.Response:
    job = request.app[GATEWAY].runner.jobs.get(request.match_info["jid"])
    if job is None:
        raise web.HTTPNotFound()
    return web.json_response(job.to_dict())


async def job_submit(request: web.Request) -> web.Response:
    data = await _body(request)
    kind = data.get("kind")
    params = data.get("params") or {}
    ecu = data.get("ecu")
    if (
        not isinstance(kind, str)
        or not isinstance(params, dict)
        or (ecu is not None and not isinstance(ecu, str))
    ):
        return _json_error(
            400, "a job needs 'kind' (text), optional 'ecu' (text) and 'params' (object)", "bad_job"
        )
    tablet: Tablet = request[TABLET]
    try:
        job = request.app[GATEWAY].runner.submit(
            JobRequest(kind, params, ecu), Caller("tablet", tablet.name)
        )
    except VciError as err:
        return _json_error(403 if err.code == "not_entitled" else 409, err)
    return web.json_response(job.to_dict(), status=202)


async def job_cancel(request: web.Request) -> web.Response:
    if not request.app[GATEWAY].runner.cancel(request.match_info["jid"]):
        return _json_error(409, "the job is not running", "not_running")
    return web.json_response({"cancelled": request.match_info["jid"]})


# -- flash packages and journal --------------------------------------------------------------
async def packages_list(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.json_response({"packages": gateway.packages(), "journal": gateway.flash_journal()})


async def packages_upload(request: web.Request) -> web.Response:
    name = request.query.get("name", "package.vcipkg")
    chunks, size = [], 0
    while chunk := await request.content.read(1 << 20):  # streamed: the app's body limit is 64 KiB
        size += len(chunk)
        if size > MAX_PACKAGE_UPLOAD:
            return _json_error(413, "the package is too large", "too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        info = request.app[GATEWAY].save_package(name, raw)
    except VciError as err:
        return _json_error(400, err)
    return web.json_response(info, status=201)


async def coding_descriptions(request: web.Request) -> web.Response:
    return web.json_response(request.app[GATEWAY].coding_descriptions())


async def trace_download(request: web.Request) -> web.StreamResponse:
    path = request.app[GATEWAY].latest_trace()
    if path is None:
        return _json_error(404, "no trace recorded yet: run a job first", "no_trace")
    return web.FileResponse(
        path,
        headers={
            "Content-Disposition": f'attachment; filename="{path.name}"',
            "Content-Type": "application/vnd.tcpdump.pcap",
        },
    )


# -- tickets ---------------------------------------------------------------------------------
async def tickets_list(request: web.Request) -> web.Response:
    return web.json_response({"tickets": request.app[GATEWAY].tickets()})


async def tickets_add(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        info = request.app[GATEWAY].add_ticket(str(data.get("token", "")))
    except VciError as err:
        return _json_error(400, err)
    return web.json_response(info, status=201)


# -- live events -----------------------------------------------------------------------------
async def events(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(request)
    gateway = request.app[GATEWAY]
    sub = gateway.bus.subscribe()
    try:
        await ws.send_json(
            {
                "kind": "hello",
                "vehicle": gateway.vehicle_state(),
                "jobs": [j.to_dict() for j in gateway.runner.jobs.values()][-20:],
            }
        )

        async def pump() -> None:
            while True:
                event = await sub.get()
                await ws.send_json(event.to_dict() | ({"missed": sub.missed} if sub.missed else {}))

        pumping = asyncio.create_task(pump())
        try:
            async for msg in ws:  # the page sends nothing but pings; reading detects close
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            pumping.cancel()
    finally:
        sub.close()
    return ws


def create_app(gateway: Any, pairing: Pairing, *, secure_cookie: bool = False) -> web.Application:
    """The web application for one gateway. ``gateway`` offers ``now()``, ``bus``, ``runner``,
    ``vehicle_state()``, ``tickets()``, ``add_ticket(token)``."""
    app = web.Application(middlewares=[security], client_max_size=MAX_BODY)
    app[GATEWAY] = gateway
    app[PAIRING] = pairing
    app[SECURE_COOKIE] = secure_cookie
    app.router.add_get("/", index)
    app.router.add_static("/static/", str(STATIC), show_index=False)
    app.router.add_post("/api/pair", pair_request)
    app.router.add_post("/api/pair/{rid}/code", pair_code)
    app.router.add_post("/api/pair/{rid}/collect", pair_collect)
    app.router.add_get("/api/session", session)
    app.router.add_get("/api/tablets", tablets)
    app.router.add_delete("/api/tablets/{tid}", unpair)
    app.router.add_get("/api/vehicle", vehicle)
    app.router.add_get("/api/jobs", jobs_list)
    app.router.add_post("/api/jobs", job_submit)
    app.router.add_get("/api/jobs/{jid}", job_get)
    app.router.add_post("/api/jobs/{jid}/cancel", job_cancel)
    app.router.add_get("/api/packages", packages_list)
    app.router.add_get("/api/coding", coding_descriptions)
    app.router.add_get("/api/trace", trace_download)
    app.router.add_post("/api/packages", packages_upload)
    app.router.add_get("/api/tickets", tickets_list)
    app.router.add_post("/api/tickets", tickets_add)
    app.router.add_get("/api/events", events)

    async def drain_jobs(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[GATEWAY].runner.drain()

    app.cleanup_ctx.append(drain_jobs)
    return app
