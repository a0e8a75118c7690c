"""The simulator's control API: HTTP + JSON on loopback, for tests and the demo.

GET  /state            vehicle and per-ECU state (session, DTCs, coding, region SHA-256 ...)
POST /faults           {"ecu": "DME", "delay": 0.5} ... (see firmware_py.sim.faults); {"clear": true}
POST /battery          {"volts": 12.4}
POST /reset            back to the vehicle file's state
POST /obd              {"action": "drive_cycle" | "clear" | "fault", "code": "P0300"}: the
                       engine's OBD-II state (readiness, MIL, DTCs; firmware_py.sim.obd)

A POST must say ``Content-Type: application/json`` (a web page can send ``text/plain`` across
origins without asking the browser's permission; ``application/json`` it cannot) and must not
come from another origin: any web page a developer opens could otherwise drive the simulator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from firmware_py.sim.faults import FaultSpecError
from firmware_py.strict_json import StrictJsonError, loads, number, obj

if TYPE_CHECKING:
    from firmware_py.sim.runtime import SimulatedVehicle

VEHICLE: web.AppKey[Any] = web.AppKey("vehicle", object)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        return obj(loads(await request.read()))
    except StrictJsonError as err:
        raise web.HTTPBadRequest(text=f"bad JSON: {err}") from err


@web.middleware
async def same_origin_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse POSTs that are not JSON or that come from a web page of another origin."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            return web.json_response(
                {"error": "requests from other web pages are refused"}, status=403
            )
        if request.content_type != "application/json":
            return web.json_response(
                {"error": "the control API takes Content-Type: application/json"}, status=415
            )
    return await handler(request)


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[VEHICLE].state())


async def post_faults(request: web.Request) -> web.Response:
    try:
        request.app[VEHICLE].inject(**await _json(request))
    except (FaultSpecError, TypeError, ValueError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return web.json_response(request.app[VEHICLE].state()["faults"])


async def post_battery(request: web.Request) -> web.Response:
    data = await _json(request)
    try:
        request.app[VEHICLE].inject(battery=number(data, "volts", low=0, high=60))
    except StrictJsonError as err:
        return web.json_response({"error": f"need {{'volts': number}}: {err}"}, status=400)
    return web.json_response({"battery_voltage": request.app[VEHICLE].battery.volts})


async def post_obd(request: web.Request) -> web.Response:
    data = await _json(request)
    code = data.get("code")
    if not isinstance(data.get("action"), str) or not (code is None or isinstance(code, str)):
        return web.json_response({"error": "need {'action': text, 'code': text}"}, status=400)
    try:
        return web.json_response(request.app[VEHICLE].obd(data["action"], code))
    except FaultSpecError as err:
        return web.json_response({"error": str(err)}, status=400)


async def post_reset(request: web.Request) -> web.Response:
    request.app[VEHICLE].reset()
    return web.json_response({"reset": True})


async def start_control_api(
    vehicle: SimulatedVehicle, host: str, port: int
) -> tuple[web.AppRunner, int]:
    app = web.Application(middlewares=[same_origin_json])
    app[VEHICLE] = vehicle
    app.router.add_get("/state", get_state)
    app.router.add_post("/faults", post_faults)
    app.router.add_post("/battery", post_battery)
    app.router.add_post("/reset", post_reset)
    app.router.add_post("/obd", post_obd)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, int(bound)
