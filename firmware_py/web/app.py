"""The tablet's local page: an aiohttp application inside the gateway.

App factory and background tasks in ``cleanup_ctx`` as in aiohttp's own examples. Everything is
served by the box (no CDN: the box's Wi-Fi has no internet), no build step.

Access: a request without a valid session cookie gets the pairing page and the pairing API,
nothing else. Requests that change anything must carry the session's CSRF token in the
``X-CSRF-Token`` header (the cookie is also SameSite=Strict). Live updates come from the gateway's
event bus over one WebSocket (``/api/events``).

Every request must name the box in ``Host`` (the address the client connected to, localhost, the
box's mDNS name or a configured name: a foreign name is a DNS-rebinding page); every request that
changes anything and the WebSocket must come from the page itself (``Origin`` the same as
``Host``; a browser always sends it on these). JSON bodies are read with the strict reader
(:mod:`firmware_py.strict_json`), bounded in size and time; bad input is a 4xx with a JSON error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from firmware_py.config import WebConfig
from firmware_py.errors import StorageError, VciError
from firmware_py.gateway.jobs import Caller, JobRequest
from firmware_py.i18n import N_, Text
from firmware_py.strict_json import StrictJsonError, loads, number, obj, text
from firmware_py.web.pairing import Pairing, PairingError, Tablet
from firmware_py.web.report_routes import add_report_routes

log = logging.getLogger(__name__)

COOKIE = "vci_session"
GATEWAY: web.AppKey[Any] = web.AppKey("gateway", object)
PAIRING: web.AppKey[Pairing] = web.AppKey("pairing", Pairing)
TABLET: web.RequestKey[Tablet] = web.RequestKey("tablet", Tablet)
SECURE_COOKIE: web.AppKey[bool] = web.AppKey("secure_cookie", bool)
WEB: web.AppKey[WebConfig] = web.AppKey("web", WebConfig)
HOSTS: web.AppKey[frozenset[str]] = web.AppKey("hosts", frozenset)

STATIC = resources.files("firmware_py.web") / "static"
OPEN_PATHS = ("/api/pair", "/i18n/")
MAX_BODY = 64 * 1024
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _json_error(status: int, err: VciError | str, code: str = "error") -> web.Response:
    body = (
        err.to_dict()
        if isinstance(err, VciError)
        else {"error": code, "message": err, "hint": None}
    )
    return web.json_response(body, status=status)


def _host_name(value: str) -> str | None:
    """The host of a ``Host`` header or an origin's ``host[:port]``, lower case, or None."""
    try:
        return urlsplit("//" + value).hostname
    except ValueError:
        return None


def _known_host(request: web.Request) -> bool:
    """``Host`` names the box: the address this connection reached, or a name it answers to."""
    host = _host_name(request.headers.get("Host", ""))
    if host is None:
        return False
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return host in request.app[HOSTS] or bool(sockname and host == str(sockname[0]).lower())


def _captive_redirect(request: web.Request) -> web.Response | None:
    """The captive portal (docs/appliance.md): on the box's Wi-Fi every name resolves to the box,
    so a tablet's connectivity check (``GET http://connectivitycheck.gstatic.com/generate_204``)
    arrives here under a foreign name. A plain GET or HEAD outside the API is sent to the page
    under the box's own address (the Host's port kept), which the tablet shows as the network's
    sign-in page. Nothing is served under the foreign name: a DNS-rebinding page gets a redirect
    to another origin, whose answer its script cannot read; the API and WebSocket stay 421."""
    if request.method not in ("GET", "HEAD") or "Upgrade" in request.headers:
        return None
    if request.path.startswith("/api/"):
        return None
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return None
    address = str(sockname[0])
    if ":" in address:
        address = f"[{address}]"
    host = request.headers.get("Host", "")
    try:
        port = urlsplit("//" + host).port
    except ValueError:
        port = None
    location = f"http://{address}{f':{port}' if port else ''}/"
    return web.Response(
        status=302, headers={"Location": location, "Cache-Control": "no-store"}, text=location
    )


def _same_origin(request: web.Request) -> bool:
    """A request from the page itself: no ``Origin`` (not a browser, or a same-origin GET) or
    one whose scheme is http(s) and whose host and port are the ``Host`` the request went to."""
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


@web.middleware
async def security(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    app = request.app
    path = request.path
    if not _known_host(request):
        captive = _captive_redirect(request)
        if captive is not None:
            return captive
        return _json_error(
            421, "this page is only served under the box's own address or name", "wrong_host"
        )
    changing = request.method not in SAFE_METHODS or request.headers.get("Upgrade", "") != ""
    if changing and not _same_origin(request):
        return _json_error(403, "requests from other web pages are refused", "foreign_origin")
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
        and request.method not in SAFE_METHODS
        and not path.startswith(OPEN_PATHS)
    ):
        if request.headers.get("X-CSRF-Token") != tablet.csrf:
            return _json_error(403, "missing or wrong CSRF token", "csrf")
    try:
        response = await handler(request)
    except StrictJsonError as err:
        return _json_error(400, err)
    except StorageError as err:
        return _json_error(507, err)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _too_large(size: int) -> web.HTTPRequestEntityTooLarge:
    message = Text(
        N_("the body has {size} bytes or more; at most {max_body} are taken"),
        {"size": size, "max_body": MAX_BODY},
    )
    body = {
        "error": "too_large",
        "message": str(message),
        "hint": None,
        "i18n": {"message": message.to_json(), "hint": None},  # as VciError.to_dict()
    }
    return web.HTTPRequestEntityTooLarge(
        max_size=MAX_BODY,
        actual_size=size,
        text=json.dumps(body),
        content_type="application/json",
    )


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object: strict JSON (:mod:`firmware_py.strict_json`), at most
    ``MAX_BODY`` bytes, sent within the configured body timeout. Raises StrictJsonError (400)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large(request.content_length)
    try:
        async with asyncio.timeout(request.app[WEB].body_timeout):
            raw = await request.content.read(MAX_BODY + 1)
            while len(raw) <= MAX_BODY and (more := await request.content.read(MAX_BODY + 1)):
                raw += more
    except TimeoutError:
        raise StrictJsonError(N_("the body did not arrive in time")) from None
    if len(raw) > MAX_BODY:
        raise _too_large(len(raw))
    return obj(loads(raw or b"{}", max_bytes=MAX_BODY))


# -- pages ---------------------------------------------------------------------------------
async def index(request: web.Request) -> web.Response:
    page = "index.html" if TABLET in request else "pair.html"
    return web.Response(
        text=(STATIC / page).read_text(),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


# -- pairing -------------------------------------------------------------------------------
def _client(request: web.Request) -> str:
    """The asking client's address (pairing keeps one request and its code attempts per address)."""
    return request.remote or ""


async def pair_request(request: web.Request) -> web.Response:
    data = await _body(request)
    pairing = request.app[PAIRING]
    rid, claim = pairing.request(
        text(data, "name", max_len=200, default="tablet"),
        request.app[GATEWAY].now(),
        _client(request),
    )
    pending = pairing.pending(rid)
    request.app[GATEWAY].bus.publish("pairing.requested", {"id": rid})
    return web.json_response(
        {
            "id": rid,
            "claim": claim,
            "window": pairing.window,
            "short_code": pending.short_code if pending else "",
        }
    )


async def pair_code(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        request.app[PAIRING].enter_code(
            request.match_info["rid"],
            text(data, "code", max_len=64),
            request.app[GATEWAY].now(),
            _client(request),
        )
    except PairingError as err:
        return _json_error(403, err)
    return web.json_response({"approved": True})


async def pair_collect(request: web.Request) -> web.Response:
    data = await _body(request)
    pairing, gateway = request.app[PAIRING], request.app[GATEWAY]
    # A long poll: the answer comes when the box's button is pressed or the code entered, or after
    # ``wait`` seconds (at most 25) with "not yet"; the unpaired page has no event socket.
    wait = number(data, "wait", low=0, high=25, default=0)
    claim = text(data, "claim", max_len=200)
    rid = request.match_info["rid"]
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            got = pairing.collect(rid, claim, gateway.now())
        except PairingError as err:
            return _json_error(403, err)
        if got is not None or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.2)
    if got is None:
        pending = pairing.pending(rid)
        return web.json_response(
            {"approved": False, "use_code": bool(pending and pending.use_code)}, status=202
        )
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
    info = request.app[WEB].repair_info_url.rstrip("/")
    return web.json_response(
        {"tablet": tablet.to_dict(), "csrf": tablet.csrf, "repair_info_url": info}
    )


async def info_for_dtc(request: web.Request) -> web.Response:
    """A fault code's repair instructions and the car's open campaigns, from the box's cache of
    repair information (firmware_py/gateway/info_cache.py): no portal needed."""
    cache = getattr(request.app[GATEWAY], "info_cache", None)
    vin, code = request.match_info["vin"].upper(), request.match_info["code"].upper()
    found = cache.for_dtc(vin, code) if cache is not None else None
    if found is None:
        return web.json_response(
            {"error": "not_cached", "message": f"no repair information is cached for {vin[:17]}",
             "hint": "Identify the car while the box holds a ticket with repair information "
             "and reaches the portal"}, status=404)  # fmt: skip
    return web.json_response(found)


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
    kind = text(data, "kind", max_len=40)
    params = obj(data.get("params") or {}, "params")
    ecu = data.get("ecu")
    if ecu is not None:
        ecu = text(data, "ecu", max_len=40)
    unknown = set(data) - {"kind", "params", "ecu"}
    if unknown:
        raise StrictJsonError(
            N_("a job has kind, ecu and params, not {value}"),
            values={"value": repr(sorted(unknown)[0][:40])},
        )
    tablet: Tablet = request[TABLET]
    try:
        job = request.app[GATEWAY].runner.submit(
            JobRequest(kind, params, ecu), Caller("tablet", tablet.name)
        )
    except (StrictJsonError, StorageError):
        raise
    except VciError as err:
        return _json_error(403 if err.code == "not_entitled" else 409, err)
    return web.json_response(job.to_dict(), status=202)


async def job_cancel(request: web.Request) -> web.Response:
    if not request.app[GATEWAY].runner.cancel(request.match_info["jid"]):
        return _json_error(409, "the job is not running", "not_running")
    return web.json_response({"cancelled": request.match_info["jid"]})


# -- the ENET bridge (docs/enet.md) -------------------------------------------------------------
async def bridge_state(request: web.Request) -> web.Response:
    return web.json_response(
        {**request.app[GATEWAY].bridge_state(), "your_address": request.remote}
    )


async def bridge_open(request: web.Request) -> web.Response:
    data = await _body(request)
    client = data.get("client") or request.remote  # default: this tablet's own address
    try:  # client and timeout are checked with the job's parameters (job_params)
        job = request.app[GATEWAY].open_bridge(
            client, data.get("timeout"), Caller("tablet", request[TABLET].name)
        )
    except StrictJsonError:
        raise
    except VciError as err:
        return _json_error(403 if err.code == "not_entitled" else 409, err)
    return web.json_response(job, status=202)


async def bridge_close(request: web.Request) -> web.Response:
    job = request.app[GATEWAY].close_bridge()
    if job is None:
        return _json_error(409, "no ENET bridge is open", "not_open")
    return web.json_response({"closing": job})


# -- flash packages and journal --------------------------------------------------------------
async def packages_list(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.json_response({"packages": gateway.packages(), "journal": gateway.flash_journal()})


async def packages_upload(request: web.Request) -> web.Response:
    """A package streamed to a temporary file in the store (never whole in memory), bounded in
    size and time, verified, then kept under its name; nothing is left behind when it fails."""
    gateway = request.app[GATEWAY]
    name = request.query.get("name", "package.vcipkg")
    if len(name) > 200:
        raise StrictJsonError(N_("the package's name is longer than 200 characters"))
    limit = gateway.max_package_bytes
    if request.content_length is not None and request.content_length > limit:
        return _json_error(413, f"a package may have at most {limit} bytes", "too_large")
    loop = asyncio.get_running_loop()
    path, f = await loop.run_in_executor(None, gateway.package_upload)
    try:
        size = 0
        with f:
            while True:
                async with asyncio.timeout(request.app[WEB].body_timeout):
                    chunk = await request.content.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    return _json_error(
                        413, f"a package may have at most {limit} bytes", "too_large"
                    )
                await loop.run_in_executor(None, f.write, chunk)
        info = await loop.run_in_executor(None, gateway.keep_package, name, path)
    except TimeoutError:
        return _json_error(408, "the upload stalled", "timeout")
    except OSError as err:
        return _json_error(507, f"the package could not be stored: {err.strerror}", "storage_error")
    except VciError as err:
        return _json_error(400, err)
    finally:
        path.unlink(missing_ok=True)
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
        info = request.app[GATEWAY].add_ticket(text(data, "token", max_len=16384))
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
            try:
                while True:
                    event = await sub.get()
                    await ws.send_json(
                        event.to_dict() | ({"missed": sub.missed} if sub.missed else {})
                    )
            except Exception:  # never a socket that silently stops: the page reconnects
                log.exception("event socket stopped")
                await ws.close()

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


def host_names(cfg: WebConfig) -> frozenset[str]:
    """Names the page answers to besides the address a client connected to (see ``WebConfig``)."""
    me = socket.gethostname().lower()
    extra = {h.strip().lower() for h in cfg.allowed_hosts.split(",") if h.strip()}
    return frozenset({"localhost", "127.0.0.1", "::1", me, f"{me}.local"} | extra)


def create_app(
    gateway: Any, pairing: Pairing, *, secure_cookie: bool = False, web_cfg: WebConfig | None = None
) -> web.Application:
    """The web application for one gateway. ``gateway`` offers ``now()``, ``bus``, ``runner``,
    ``vehicle_state()``, ``tickets()``, ``add_ticket(token)``."""
    app = web.Application(middlewares=[security], client_max_size=MAX_BODY)
    app[GATEWAY] = gateway
    app[PAIRING] = pairing
    app[SECURE_COOKIE] = secure_cookie
    app[WEB] = web_cfg or WebConfig()
    app[HOSTS] = host_names(app[WEB])
    app.router.add_get("/", index)
    app.router.add_static("/static/", str(STATIC), show_index=False)
    app.router.add_post("/api/pair", pair_request)
    app.router.add_post("/api/pair/{rid}/code", pair_code)
    app.router.add_post("/api/pair/{rid}/collect", pair_collect)
    app.router.add_get("/api/session", session)
    app.router.add_get("/api/tablets", tablets)
    app.router.add_get("/api/info/{vin}/dtc/{code}", info_for_dtc)
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
    from firmware_py.web import helpdesk_routes

    helpdesk_routes.add_routes(app)  # the service booklet and help desk (docs/helpdesk.md)
    from firmware_py.web import i18n_routes, map_routes

    map_routes.add_routes(app)  # navigation map offers (docs/maps.md)
    i18n_routes.add_routes(app)  # the page's languages (docs/translating.md)
    app.router.add_post("/api/tickets", tickets_add)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/bridge", bridge_state)
    app.router.add_post("/api/bridge/open", bridge_open)
    app.router.add_post("/api/bridge/close", bridge_close)
    add_report_routes(app, GATEWAY)  # firmware_py/web/report_routes.py

    async def stop_jobs(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[GATEWAY].runner.stop()  # ask them to stop first: a bridge would wait an hour

    app.cleanup_ctx.append(stop_jobs)
    return app
