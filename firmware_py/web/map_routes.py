"""The tablet page's map route: ``GET /api/maps`` lists the navigation map updates the portal
offered and the box keeps (firmware_py/gateway/map_offers.py, docs/maps.md). Installing one is a
job (``map_update`` with ``{"offer": id}``, through ``POST /api/jobs``)."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def maps_list(request: web.Request) -> web.Response:
    from firmware_py.gateway import map_offers
    from firmware_py.web.app import GATEWAY

    gateway = request.app[GATEWAY]
    keys = getattr(gateway.entitlements, "keys", None) or {}
    offers = await asyncio.get_running_loop().run_in_executor(
        None, map_offers.offers, gateway.store.state_dir, keys
    )
    return web.json_response({"offers": offers})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/maps", maps_list)
