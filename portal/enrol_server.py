"""The reference portal's enrolment endpoint (``vci-portal enrol serve``): HTTPS, ``POST
/vci/enrol`` with ``{"device", "csr", "proof"}`` (portal/enrolment.py says what they are), answered
with ``{"state": "pending"}`` until a workshop has claimed the box, then ``{"state": "issued",
"certificate": PEM}``; refusals are ``{"error", "message", "hint"}`` with a 4xx status.

Boxes have no certificate yet, so none is asked for; they check ours against the portal's CA
(``[cloud] ca_file``). Everything is bounded: the body (strict JSON, 8 KiB), connections in all
and per address, header and TLS handshake times (firmware_py/web/limits.py), and requests per
client address (a token bucket).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from firmware_py import strict_json
from firmware_py.errors import EnrolmentError
from firmware_py.web.limits import ConnectionCounter, handler_args, start_site
from portal.enrolment import Enrolment

log = logging.getLogger(__name__)
PATH = "/vci/enrol"
MAX_BODY = 8192


class RateLimit:
    """A token bucket per client address: ``burst`` requests at once, ``per_minute`` after."""

    def __init__(
        self, per_minute: float, burst: int = 20, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = per_minute / 60.0, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str) -> bool:
        now = self.clock()
        tokens, last = self.buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if len(self.buckets) > 100_000:  # forget the full buckets of addresses gone quiet
            self.buckets = {k: v for k, v in self.buckets.items() if v[0] < self.burst}
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return False
        self.buckets[client] = (tokens - 1.0, now)
        return True


def _refusal(err: EnrolmentError) -> web.Response:
    return web.json_response(err.to_dict(), status=err.status)


def make_app(enrolment: Enrolment, limit: RateLimit) -> web.Application:
    async def enrol(request: web.Request) -> web.Response:
        if not limit.allow(request.remote or "?"):
            return _refusal(EnrolmentError("too many requests", hint="Ask less often", status=429))
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _refusal(EnrolmentError(f"the body is larger than {MAX_BODY} bytes", status=413))
        try:
            # the whole body (read(n) would stop at what has arrived), at most client_max_size
            body = await asyncio.wait_for(request.read(), 10.0)
            data = strict_json.obj(strict_json.loads(body, max_bytes=MAX_BODY), "the request")
            # in a worker thread: the database (PostgreSQL over the network) must not stall
            # the other boxes' requests
            answer = await asyncio.to_thread(
                enrolment.request, data.get("device"), data.get("csr"), data.get("proof")
            )
        except TimeoutError:
            return _refusal(EnrolmentError("the body did not arrive in time", status=408))
        except web.HTTPRequestEntityTooLarge:
            return _refusal(EnrolmentError(f"the body is larger than {MAX_BODY} bytes", status=413))
        except strict_json.StrictJsonError as err:
            return _refusal(EnrolmentError(str(err)))
        except EnrolmentError as err:
            log.info("enrolment request refused (%s): %s", request.remote, err)
            return _refusal(err)
        if answer["state"] == "issued":
            log.info("box %s fetched its certificate", data.get("device"))
        return web.json_response(answer)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(PATH, enrol)
    return app


def server_ssl(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def serve(
    enrolment: Enrolment,
    host: str,
    port: int,
    cert: Path,
    key: Path,
    per_minute: float = 60.0,
    ready: Any = print,
) -> None:
    runner = web.AppRunner(
        make_app(enrolment, RateLimit(per_minute)), access_log=None, **handler_args(10.0)
    )
    await runner.setup()
    server = await start_site(
        runner, host, port, ConnectionCounter(1024, 32), ssl_context=server_ssl(cert, key)
    )
    bound = server.sockets[0].getsockname()[1]
    ready(f"vci-portal enrol ready https://{host}:{bound}{PATH}")
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await runner.cleanup()
