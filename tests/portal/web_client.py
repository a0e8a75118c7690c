"""A small browser for the portal's web tests: a real aiohttp server on 127.0.0.1 (aiohttp's
TestServer) and one real HTTP client per user, each with its own cookie jar (or one jar for
several portal processes, as a browser behind a load balancer has); ``vci-portal serve`` as a
process (:func:`served`), and several of them serving one portal (:class:`PortalFarm`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from portal.address_limit import AddressLimiter
from portal.login import PendingLogins
from portal.sessions import SessionService
from portal.web.app import make_app
from portal.web.guard import WebConfig
from tests.conftest import stop_process

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
    """``server``: a TestServer or a base URL. ``jar``: another browser's cookies (the same
    browser reaching another portal process: cookies are per host, not per port)."""

    def __init__(self, server: TestServer | str, jar: aiohttp.CookieJar | None = None) -> None:
        base = server if isinstance(server, str) else str(server.make_url("/"))
        self.jar = jar if jar is not None else aiohttp.CookieJar(unsafe=True)
        self.session = aiohttp.ClientSession(base_url=base, cookie_jar=self.jar)

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
    cfg: WebConfig, limiter: AddressLimiter | None = None, pending: PendingLogins | None = None,
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
def serve_process(state: Path, *flags: str, log: Path | None = None) -> Iterator[str]:
    """``vci-portal serve FLAGS`` as a process on 127.0.0.1 (a port of its choice) with the state
    dir ``state``; yields the base URL. Its standard error goes to ``log`` (else a pipe, shown
    when it fails to start). Stopped (its own process only) at the end."""
    env = {**os.environ, "VCI_PORTAL_STATE_DIR": str(state)}
    env.pop("VCI_PORTAL_DB", None)
    stderr: Any = log.open("w") if log is not None else subprocess.PIPE
    process = subprocess.Popen(
        [sys.executable, "-c", "from portal.cli import main; raise SystemExit(main())", "serve",
         "--port", "0", *flags],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once listening (or EOF when it failed)
        if not line.startswith("portal on http://127.0.0.1:"):
            process.wait(timeout=20)
            said = log.read_text() if log is not None else process.stderr.read()  # type: ignore[union-attr]
            raise AssertionError(f"vci-portal serve did not start: {line}{said}")
        yield line.split()[-1]
    finally:
        stop_process(process)
        if log is not None:
            stderr.close()


@contextmanager
def served(root: Path, *flags: str, bare: bool = False) -> Iterator[str]:
    """``vci-portal serve`` as a process with a fresh state dir ``root/state`` (seller data, no
    database yet) and a signing key in ``root/keys``; yields the base URL. ``bare``: nothing at
    all in the state dir, no ``--key-dir``."""
    from portal import keys
    from tests.portal.test_cli import SELLER

    state = root / "state"
    state.mkdir(parents=True)
    if not bare:
        (state / "portal.toml").write_text(SELLER)
        keys.generate(root / "keys", "portal-test")
        flags = ("--key-dir", str(root / "keys"), *flags)
    with serve_process(state, *flags) as url:
        yield url


class PortalFarm:
    """Several ``vci-portal serve`` processes serving one portal, as behind a load balancer:
    one database (migrated once beforehand, as its administrator does: ``vci-portal db
    upgrade``), one ticket signing key (made here unless ``key_dir`` has one), one seller file;
    each process its own state dir and log. :meth:`start` adds a process (its extra flags: e.g.
    the broker for the delivery worker) and returns its base URL; :meth:`close` stops them all."""

    def __init__(self, root: Path, db_url: str, key_dir: Path | None = None) -> None:
        from portal import keys
        from portal.db.engine import upgrade
        from tests.portal.test_cli import SELLER

        root.mkdir(parents=True, exist_ok=True)
        self.root, self.db_url = root, db_url
        self.key_dir = key_dir or root / "keys"
        if key_dir is None:
            keys.generate(self.key_dir, "portal-test")
        self.config = root / "portal.toml"
        self.config.write_text(SELLER)
        upgrade(db_url)
        self.urls: list[str] = []
        self._stack = ExitStack()

    def start(self, *flags: str) -> str:
        n = len(self.urls) + 1
        state = self.root / f"portal-{n}"
        state.mkdir()
        url = self._stack.enter_context(
            serve_process(
                state, "--db", self.db_url, "--key-dir", str(self.key_dir), "--config",
                str(self.config), *flags, log=state / "serve.log",
            )
        )  # fmt: skip
        self.urls.append(url)
        return url

    def close(self) -> None:
        self._stack.close()
