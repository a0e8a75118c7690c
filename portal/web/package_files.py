"""The package store's files served to boxes: ``GET /packages/<sha256>.vcipkg?t=<token>``, with
HTTP Range (aiohttp's FileResponse: a box's download resumes from the bytes it has). The signed,
expiring token made for one box and one package is the credential (portal/packages.py says why
not the box's client certificate); the route needs no login."""

from __future__ import annotations

from aiohttp import web

from firmware_py.errors import PackageError, TicketError
from portal.packages import PackageStore
from portal.web.guard import Need, requires

PACKAGES = web.AppKey("package_store", PackageStore)
routes = web.RouteTableDef()


@routes.get(r"/packages/{sha256:[0-9a-f]{64}}.vcipkg")
@requires(Need.PUBLIC)
async def package_file(request: web.Request) -> web.StreamResponse:
    store = request.app.get(PACKAGES)
    if store is None:
        raise web.HTTPNotFound(text="this portal keeps no package store")
    sha256 = request.match_info["sha256"]
    try:
        store.check_token(request.query.get("t", ""), sha256)
        path = store.path_of(sha256)
    except (TicketError, PackageError) as err:
        raise web.HTTPForbidden(text=f"{err}") from err
    if not path.is_file():
        raise web.HTTPNotFound(text="the package is no longer in the store")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
