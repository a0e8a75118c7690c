"""What one client on the Wi-Fi may take of the page's server: connections in total and per
client address, and how long a client may take to send a request's headers.

aiohttp bounds header reading only through ``keepalive_timeout``: since aio-libs/aiohttp#13681
(in 3.14.5, the version pyproject.toml requires) it arms that timer when a connection is made and
closes the connection if no complete request has arrived when it fires, however slowly the
headers trickle in (``RequestHandler.connection_made`` / ``_process_keepalive``); before it, a
connection that never finished its first request stayed open for good. We set it to
``header_timeout``; tests/web/test_limits.py fails should a version lose it.
aiohttp has no limit on the number of connections at all, so :class:`ConnectionGuard` wraps the
protocol aiohttp makes for each connection (one place, public API only: ``AppRunner.server`` is
the protocol factory) and closes a connection at once when the box or that client address is
full. Bodies are bounded where they are read (``app._body``, the package upload).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)


class ConnectionCounter:
    """Open connections in total and per client address."""

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.total = 0
        self.per_client: dict[str, int] = {}
        self.refused = 0

    def admit(self, client: str) -> bool:
        if self.total >= self.max_total or self.per_client.get(client, 0) >= self.max_per_client:
            self.refused += 1
            return False
        self.total += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return True

    def release(self, client: str) -> None:
        self.total -= 1
        left = self.per_client.get(client, 1) - 1
        if left > 0:
            self.per_client[client] = left
        else:
            self.per_client.pop(client, None)


class ConnectionGuard(asyncio.Protocol):
    """Admits a connection to aiohttp's protocol (``inner``) only within the counter's limits."""

    def __init__(self, inner: Any, counter: ConnectionCounter) -> None:
        self.inner = inner
        self.counter = counter
        self.client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        if not self.counter.admit(client):
            if self.counter.refused % 100 == 1:
                log.warning("connection from %s refused: too many open connections", client)
            cast(asyncio.Transport, transport).abort()
            return
        self.client = client
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is None:
            return
        self.counter.release(self.client)
        self.client = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.client is not None else None

    def pause_writing(self) -> None:
        if self.client is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.inner.resume_writing()


async def start_site(
    runner: web.AppRunner,
    host: str,
    port: int,
    counter: ConnectionCounter,
    ssl_context: ssl.SSLContext | None = None,
) -> asyncio.Server:
    """Listen on ``host:port`` for ``runner``'s app, every connection through the guard (and
    TLS with ``ssl_context``: the portal's enrolment server uses these limits too).
    (aiohttp's ``TCPSite`` takes no protocol wrapper, hence ``create_server`` here.)"""
    factory: Callable[[], Any] = runner.server  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: ConnectionGuard(factory(), counter),
        host,
        port,
        reuse_address=True,
        backlog=128,
        ssl=ssl_context,
        ssl_handshake_timeout=10.0 if ssl_context is not None else None,
    )


def handler_args(header_timeout: float) -> dict[str, Any]:
    """aiohttp's own limits for the page: header timeout (see the module's docstring), request
    line and header sizes."""
    return {
        "keepalive_timeout": header_timeout,
        "max_line_size": 4096,
        "max_field_size": 8190,
        "max_headers": 64,
    }
