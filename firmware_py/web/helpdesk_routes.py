"""The tablet page's help-desk route: the box's help-desk requests, their state and the help
desk's answers (docs/helpdesk.md). Requests themselves are jobs (``help_desk_request``, through
``POST /api/jobs``); the service booklet is the ``service_history`` job and needs no route."""

from __future__ import annotations

from aiohttp import web


async def helpdesk_list(request: web.Request) -> web.Response:
    from firmware_py.web.app import GATEWAY

    return web.json_response({"requests": request.app[GATEWAY].helpdesk_requests()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/helpdesk", helpdesk_list)
