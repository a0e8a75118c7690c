"""A small browser for the portal's web tests: a real aiohttp server on 127.0.0.1 (aiohttp's
TestServer) and one real HTTP client per user, each with its own cookie jar; and ``vci-portal
serve`` as a process (:func:`served`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from portal.sessions import SessionService
from portal.web.app import make_app
from portal.web.guard import AttemptLimiter, PendingLogins, WebConfig

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]
    body: bytes

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Browser:
    def __init__(self, server: TestServer | str) -> None:
        """``server``: the in-process portal, or the base URL of a ``vci-portal serve``."""
        base = server if isinstance(server, str) else str(server.make_url("/"))
        self.session = aiohttp.ClientSession(
            base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    async def get(self, path: str) -> Answer:
        async with self.session.get(path, allow_redirects=False) as response:
            body = await response.read()
            return Answer(response.status, body.decode(errors="replace"),
                          dict(response.headers), body)  # fmt: skip

    async def csrf(self, path: str = "/login") -> str:
        """The CSRF token a page's forms carry (the session's, or before login the form's)."""
        page = await self.get(path)
        found = CSRF.search(page.text)
        assert found, f"no form with a CSRF token on {path}: {page.status} {page.text[:300]}"
        return found.group(1)

    async def post(self, path: str, data: dict[str, str], csrf: str | None = "page",
                   headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
        """POST ``data``; ``csrf``: "page" takes the token from a page, None sends none."""
        form = dict(data)
        if csrf == "page":
            form["csrf"] = await self.csrf("/login" if path in ("/login", "/signup") else "/totp")
        elif csrf is not None:
            form["csrf"] = csrf
        async with self.session.post(path, data=form, allow_redirects=False,
                                     headers=headers or {}) as response:  # fmt: skip
            body = await response.read()
            return Answer(response.status, body.decode(errors="replace"),
                          dict(response.headers), body)  # fmt: skip

    async def log_in(self, login: str, password: str, code: str | None = None) -> Answer:
        """The password; then, when the portal asks for it and ``code`` is given, the code."""
        answer = await self.post("/login", {"login": login, "password": password})
        if code is not None and 'action="/login/code"' in answer.text:
            answer = await self.post(
                "/login/code", {"code": code}, csrf=CSRF.search(answer.text)[1]
            )  # type: ignore[index]
        return answer

    async def close(self) -> None:
        await self.session.close()


@asynccontextmanager
async def portal(
    cfg: WebConfig, limiter: AttemptLimiter | None = None, pending: PendingLogins | None = None,
    sessions: SessionService | None = None,
) -> AsyncIterator[
    tuple[TestServer, list[Browser]]
]:  # fmt: skip
    """The portal's app on a real socket on 127.0.0.1; browsers made with ``Browser(server)``
    are appended to the list and closed at the end. ``sessions``: the remote sessions' service
    (with a broker connection)."""
    server = TestServer(make_app(cfg, limiter, pending, sessions), host="127.0.0.1")
    await server.start_server()
    browsers: list[Browser] = []
    try:
        yield server, browsers
    finally:
        for browser in browsers:
            await browser.close()
        await server.close()


@contextmanager
def served(root: Path, *flags: str, bare: bool = False) -> Iterator[str]:
    """``vci-portal serve`` as a process on 127.0.0.1 (a port of its choice) with a fresh state dir
    ``root/state`` (seller data, no database yet) and a signing key in ``root/keys``; yields the
    base URL. ``bare``: nothing at all in the state dir, no ``--key-dir``. Stopped (its own
    process only) at the end."""
    from portal import keys
    from tests.portal.test_cli import SELLER

    state = root / "state"
    state.mkdir()
    if not bare:
        (state / "portal.toml").write_text(SELLER)
        keys.generate(root / "keys", "portal-test")
        flags = ("--key-dir", str(root / "keys"), *flags)
    env = {**os.environ, "VCI_PORTAL_STATE_DIR": str(state)}
    env.pop("VCI_PORTAL_DB", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from portal.cli import main; raise SystemExit(main())", "serve",
         "--port", "0", *flags],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()  # printed once listening (or EOF when it failed)
        assert line.startswith("portal on http://127.0.0.1:"), process.stderr.read()
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=20)
