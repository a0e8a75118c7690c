"""The web application (:func:`make_app`) and ``vci-portal serve`` (:func:`serve`): the pages'
routes, the guard middleware, the body limit, and the listening socket with the same connection
and header limits as the box's page (firmware_py/web/limits.py)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from firmware_py.web.limits import ConnectionCounter, handler_args, start_site
from portal.address_limit import AddressLimiter
from portal.login import PendingLogins
from portal.packages import PackageStore
from portal.sessions import SessionService
from portal.web import (
    account_pages,
    box_pages,
    info_pages,
    jobsheet_pages,
    operator,
    package_files,
    pages,
    privacy_pages,
    session_packages,
    session_pages,
    session_trace,
)
from portal.web.guard import (
    CONFIG,
    LIMITER,
    MAX_BODY,
    PENDING,
    WebConfig,
    guard,
)

log = logging.getLogger(__name__)


def make_app(
    cfg: WebConfig,
    limiter: AddressLimiter | None = None,
    pending: PendingLogins | None = None,
    sessions: SessionService | None = None,
    packages: PackageStore | None = None,
) -> web.Application:
    """The portal's pages; ``limiter`` and ``pending`` with their own limits or clock (tests).
    Both keep their state in the database, as everything else a request needs: any number of
    these apps, in any number of processes, serve the same portal. ``sessions``: the remote
    sessions' service with the process's broker connection (without it the session pages refuse
    to start jobs and say why). ``packages``: the package store served to boxes (without it
    ``/packages/`` answers 404)."""
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[CONFIG] = cfg
    app[LIMITER] = limiter or AddressLimiter()
    app[PENDING] = pending or PendingLogins()
    app.add_routes(account_pages.routes)
    app.add_routes(pages.routes)
    app.add_routes(operator.routes)
    app.add_routes(box_pages.routes)
    app[session_pages.SERVICE] = sessions or SessionService(cfg.factory, None)
    app.add_routes(session_pages.routes)
    app.add_routes(info_pages.routes)
    app.add_routes(jobsheet_pages.routes)
    app.add_routes(session_packages.routes)
    app.add_routes(session_trace.routes)
    app.add_routes(privacy_pages.routes)
    if packages is not None:
        app[package_files.PACKAGES] = packages
    app.add_routes(package_files.routes)
    return app


async def serve(
    cfg: WebConfig, host: str, port: int, sessions: SessionService | None = None,
    packages: PackageStore | None = None,
) -> None:  # fmt: skip
    """Serve until cancelled (Ctrl-C)."""
    runner = web.AppRunner(
        make_app(cfg, sessions=sessions, packages=packages),
        access_log=None,
        **handler_args(header_timeout=15.0),
    )
    await runner.setup()
    server = await start_site(runner, host, port, ConnectionCounter(512, 64))
    bound = server.sockets[0].getsockname()[1]  # the chosen one for --port 0
    print(f"portal on http://{host}:{bound}/", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await runner.cleanup()
