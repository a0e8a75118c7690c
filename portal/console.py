"""The reference portal's web console (``vci-portal console``): one portal user's view of the
boxes it serves, in a browser. It lists the boxes and whether they are online (live), runs jobs
on a box with live progress, shows denials with their reason, and keeps the boxes' outbox records
(SQLite) and lists the newest.

The console speaks MQTT to the broker as that user (:class:`portal.remote.RemoteSession`), so the
broker's ACL decides which boxes it can reach. It is meant for one person on the portal host: it
listens on loopback by default and admits a browser that opens the URL with the access token
printed at start-up (the token becomes a SameSite=Strict, HttpOnly cookie). User accounts, a
multi-user portal and payment are not part of this reference portal.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from firmware_py import strict_json
from firmware_py.cloud.schema import Message
from portal.records import RETENTION_DAYS, RecordStore
from portal.remote import FINAL, RemoteError, RemoteSession

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
COOKIE = "vci_console"
KINDS = (
    "identify",
    "read_fault_memory",
    "clear_fault_memory",
    "read_live_data",
    "coding",
    "programming",
    "raw_uds",
)

SESSION: web.AppKey[RemoteSession] = web.AppKey("session", RemoteSession)
RECORDS: web.AppKey[RecordStore] = web.AppKey("records", RecordStore)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
SOCKETS: web.AppKey[Any] = web.AppKey("sockets", set)
RUNNING: web.AppKey[dict[str, tuple[str, str]]] = web.AppKey("running", dict)
"""console job id -> (box, the box's job id), while the job runs"""


def _authorised(request: web.Request) -> bool:
    given = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(given.encode(), request.app[TOKEN].encode())


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path == "/" and "token" in request.query:
        if not hmac.compare_digest(request.query["token"].encode(), request.app[TOKEN].encode()):
            raise web.HTTPForbidden(text="wrong access token")
        found = web.HTTPFound("/")
        found.set_cookie(COOKIE, request.app[TOKEN], httponly=True, samesite="Strict")
        raise found
    if not _authorised(request):
        raise web.HTTPUnauthorized(
            text="Open the URL that vci-portal console printed when it started (it carries the access token)."
        )
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="cross-origin request refused")
    response: web.StreamResponse = await handler(request)
    response.headers["Content-Security-Policy"] = "default-src 'self'; connect-src 'self'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _broadcast(app: web.Application, data: dict[str, Any]) -> None:
    text = json.dumps(data, default=str)
    for ws in list(app[SOCKETS]):
        if not ws.closed:
            asyncio.ensure_future(ws.send_str(text))


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "console.html")


async def _boxes(request: web.Request) -> web.Response:
    return web.json_response(dict(sorted(request.app[SESSION].states.items())))


async def _records(request: web.Request) -> web.Response:
    return web.json_response(request.app[RECORDS].latest(50))


async def _events(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    await ws.send_json({"type": "boxes", "boxes": dict(request.app[SESSION].states)})
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


async def _start_job(request: web.Request) -> web.Response:
    try:
        body = strict_json.obj(strict_json.loads(await request.read()), "the request")
    except strict_json.StrictJsonError as err:
        raise web.HTTPBadRequest(text=f"the request is not JSON of a job: {err}") from None
    box, kind = str(body.get("box", "")), str(body.get("kind", ""))
    if box not in request.app[SESSION].states:
        raise web.HTTPBadRequest(text=f"unknown box {box!r}")
    if kind not in KINDS:
        raise web.HTTPBadRequest(text=f"unknown job {kind!r}")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise web.HTTPBadRequest(text="params is not an object")
    ecu = str(body["ecu"]) if body.get("ecu") else None
    ticket = str(body["ticket"]).strip() if body.get("ticket") else None
    job = secrets.token_hex(6)
    app, loop = request.app, asyncio.get_running_loop()

    def on_event(msg: Message) -> None:  # paho's thread
        loop.call_soon_threadsafe(_relay, msg)

    def _relay(msg: Message) -> None:
        if msg.type == "job.accepted":
            app[RUNNING][job] = (box, str((msg.body.get("job") or {}).get("id", "")))
        elif msg.type in FINAL:
            app[RUNNING].pop(job, None)
        _broadcast(
            app, {"type": "job", "job": job, "box": box, "message": msg.type, "body": msg.body}
        )

    def run() -> None:
        try:
            app[SESSION].run(
                box, kind, ecu=ecu, params=params, ticket=ticket, timeout=600, on_event=on_event
            )
        except RemoteError as err:
            loop.call_soon_threadsafe(
                _broadcast,
                app,
                {
                    "type": "job",
                    "job": job,
                    "box": box,
                    "message": "error",
                    "body": {"message": str(err)},
                },
            )

    loop.run_in_executor(None, run)
    return web.json_response({"job": job, "box": box, "kind": kind})


async def _cancel_job(request: web.Request) -> web.Response:
    running = request.app[RUNNING].get(request.match_info["job"])
    if running is None:
        raise web.HTTPNotFound(text="that job is not running")
    box, box_job = running
    await asyncio.get_running_loop().run_in_executor(
        None, request.app[SESSION].cancel, box, box_job
    )
    return web.json_response({"cancelling": request.match_info["job"]})


def create_app(session: RemoteSession, records: RecordStore, token: str) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=256 * 1024)
    app[SESSION], app[RECORDS], app[TOKEN] = session, records, token
    app[SOCKETS] = set()
    app[RUNNING] = {}
    app.router.add_get("/", _index)
    app.router.add_get("/api/boxes", _boxes)
    app.router.add_get("/api/records", _records)
    app.router.add_get("/api/events", _events)
    app.router.add_post("/api/jobs", _start_job)
    app.router.add_post("/api/jobs/{job}/cancel", _cancel_job)
    from portal import console_service

    console_service.add_routes(app)  # the service booklet and the help desk
    app.router.add_static("/static", STATIC)

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()

        def on_status(box: str, state: Any) -> None:  # paho's thread
            loop.call_soon_threadsafe(
                _broadcast, app, {"type": "boxes", "boxes": dict(session.states)}
            )

        def on_record(box: str, record: dict[str, Any]) -> None:  # paho's thread
            loop.call_soon_threadsafe(
                _broadcast, app, {"type": "record", "box": box, "record": record}
            )

        session.on_status, records.on_new = on_status, on_record
        await loop.run_in_executor(None, session.boxes_online, 0.0)
        await loop.run_in_executor(None, session.keep_records, records)

    async def on_shutdown(app: web.Application) -> None:
        for ws in list(app[SOCKETS]):
            await ws.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


async def serve(
    session: RemoteSession,
    records: RecordStore,
    host: str,
    port: int,
    token: str | None = None,
    records_days: float = RETENTION_DAYS,
) -> None:
    """``records_days``: how long job results and session logs are kept (0: for good)."""
    token = token or secrets.token_urlsafe(24)
    runner = web.AppRunner(create_app(session, records, token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    retention = asyncio.create_task(records.prune_periodically(records_days))
    print(f"vci-portal console ready http://{host}:{port}/?token={token}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        retention.cancel()
        await runner.cleanup()
