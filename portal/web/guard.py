"""Who may reach which route, and the checks every request passes.

Each route's handler declares what it needs with :func:`requires` (public, any logged-in user, a
workshop's user, the workshop's owner, the portal's operator); the :func:`guard` middleware refuses
a route without a declaration (fail closed; tests/portal/test_web_auth.py walks the router too).
In order, the guard: refuses requests another site sends (``Origin`` / ``Sec-Fetch-Site``),
loads the session from its cookie, answers a missing session (GET: to the login page; else 401)
and a role without the right (403), checks the CSRF token of every POST in constant time (the
session's token; before login a random token in its own cookie, double-submit), and sets the
security headers on every answer. Login attempts are also limited per client address
(:func:`too_many`, portal/address_limit.py), in addition to the per-login-name lock-out of
portal/login.py. Nothing a request needs is kept in this process's memory: sessions, pending
logins and the per-address counts are in the database, so any portal process behind a load
balancer can answer any request (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum, unique
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import (
    InsufficientCredit,
    LoginLocked,
    LoginRefused,
    PortalError,
    WorkshopDisabled,
)
from firmware_py.i18n import COOKIE as LANGUAGE_COOKIE
from firmware_py.i18n import LANGUAGES, N_, Language, chosen, supported
from portal.accounts import Actor
from portal.address_limit import AddressLimiter
from portal.credit import Signer
from portal.db.models import Role
from portal.i18n import portal_language
from portal.invoices import Seller
from portal.login import PendingLogins, session_actor
from portal.web.html import Markup, join, layout, post_form, render

log = logging.getLogger(__name__)
SESSION_COOKIE = "portal_session"
PENDING_COOKIE = "portal_login_pending"
"""between the password and the authenticator code: the token of a pending login
(:class:`portal.login.PendingLogins`)"""
FORM_COOKIE = "portal_form"
"""before login: the CSRF token of the sign-up and login forms (double-submit)"""
NEXT_COOKIE = "portal_next"
"""the page a GET without a session asked for (a link from the tablet to a repair instruction):
the login goes there instead of the home page (:func:`next_page`)"""
MAX_BODY = 64 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)


@unique  # two needs with the same roles would silently be one
class Need(Enum):
    """What a route needs from the request's session."""

    PUBLIC = frozenset[Role]()
    """nothing: the sign-up and login pages, the stylesheet"""
    USER = frozenset(Role)
    """any logged-in user"""
    WORKSHOP = frozenset({Role.OWNER, Role.TECHNICIAN})
    """a workshop's user"""
    OWNER = frozenset({Role.OWNER})
    OPERATOR = frozenset({Role.OPERATOR})
    OWNER_OR_OPERATOR = frozenset({Role.OWNER, Role.OPERATOR})
    """the workshop's owner for its own things, the operator for anybody's (revoking a box)"""


NEED = "portal_need"


def requires(need: Need) -> Callable[[H], H]:
    """Declare what a route's handler needs; the guard enforces it."""

    def mark(handler: H) -> H:
        setattr(handler, NEED, need)
        return handler

    return mark


def need_of(handler: object) -> Need | None:
    return getattr(handler, NEED, None)


@dataclass(frozen=True)
class WebConfig:
    factory: sessionmaker[Session]
    signer: Signer
    seller: Seller | None
    """None until the operator has written the seller's data: nothing can be sold (invoices)"""
    secure_cookies: bool = False
    """Secure cookies: served over TLS, or behind a proxy that terminates it"""
    trusted_proxies: frozenset[str] = frozenset()
    """addresses of reverse proxies whose ``X-Forwarded-For`` names the client (else the
    connection's address is the client's: behind a proxy, all clients would share one limit)"""
    hasher: PasswordHasher | None = None
    """None: the services' default (argon2id, the library's recommended parameters)"""
    pki: Path | None = None
    """the broker's CA (ca.pem, ca.key, crl.pem): signs claimed boxes' certificates and revokes
    them; None: boxes cannot be claimed or revoked on the pages"""
    broker_reload: Callable[[], None] | None = None
    """tells the broker to read the revocation list again (SIGHUP, or a command); None: the
    operator reloads it"""


CONFIG = web.AppKey("config", WebConfig)
LIMITER = web.AppKey("login_limiter", AddressLimiter)
PENDING = web.AppKey("pending_logins", PendingLogins)
ACTOR = web.RequestKey("actor", Actor)
CSRF = web.RequestKey("csrf", str)
NEW_FORM_TOKEN = web.RequestKey("new_form_token", str)
LANGUAGE = web.RequestKey("language", Language)
"""a form token made for this request (no cookie yet): the answer sets its cookie"""
T = TypeVar("T")


def config(request: web.Request) -> WebConfig:
    return request.app[CONFIG]


def actor(request: web.Request) -> Actor:
    return request[ACTOR]


def own_workshop(request: web.Request) -> int:
    """The acting workshop user's workshop (routes of ``Need.WORKSHOP`` and ``Need.OWNER``)."""
    workshop_id = actor(request).workshop_id
    assert workshop_id is not None  # the guard admitted a workshop's user only
    return workshop_id


def csrf(request: web.Request) -> str:
    return request[CSRF]


async def in_db(request: web.Request, work: Callable[[Session], T]) -> T:
    """Run ``work`` in a database session in a worker thread (the services are synchronous and
    argon2 is slow by design); commits when it returns, rolls back when it raises."""
    factory = config(request).factory

    def run() -> T:
        with factory() as session:
            result = work(session)
            session.commit()
            return result

    return await asyncio.to_thread(run)


def lang(request: web.Request) -> Language:
    """The reader's language in the portal's catalogue (firmware_py/i18n.py ``chosen``: ``?lang=``,
    the ``vci_lang`` cookie, then the browser's); kept on the request."""
    if (reader := request.get(LANGUAGE)) is None:
        code = chosen(
            request.query.get("lang"),
            request.cookies.get(LANGUAGE_COOKIE),
            request.headers.get("Accept-Language"),
        )
        reader = request[LANGUAGE] = portal_language(code)
    return reader


def nav(request: web.Request) -> Markup:
    _ = lang(request).gettext
    who: Actor | None = request.get(ACTOR)
    switch = _language_switch(request)
    if who is None:
        return render(
            '<nav><a href="/login">{login}</a><a href="/signup">{signup}</a></nav>{switch}',
            login=_("Log in"), signup=_("Sign up"), switch=switch,
        )  # fmt: skip
    links = [("/operator/workshops", N_("Workshops")), ("/operator/boxes", N_("Boxes"))] if who.is_operator else [
        ("/dashboard", N_("Credit and purchases")), ("/buy", N_("Buy a ticket")), ("/boxes", N_("Boxes")),
        ("/sessions", N_("Remote sessions")),
        ("/info", N_("Repair information")),
    ]  # fmt: skip
    if who.role is Role.OWNER:
        links.append(("/users", N_("Users")))
    if who.role in Need.OWNER_OR_OPERATOR.value:
        links.append(("/privacy", N_("Data protection")))
    links.append(("/totp", N_("Second factor")))
    anchors = Markup("".join(render('<a href="{h}">{t}</a>', h=h, t=_(t)) for h, t in links))
    logout = post_form("/logout", csrf(request), Markup(""), _("Log out"), "inline")
    return render("<nav>{a}</nav>{logout}{switch}", a=anchors, logout=logout, switch=switch)


def _language_switch(request: web.Request) -> Markup:
    """EN / DE links to this page in the other language (``?lang=``: the same path; a GET, so no
    form is sent again; the page's other query parameters are dropped)."""
    current = lang(request).code
    return render(
        '<span class="language">{links}</span>',
        links=join(
            render('<a href="?lang={l}" class="{c}" hreflang="{l}">{t}</a>', l=code,
                   c="active" if code == current else "", t=code.upper())
            for code in LANGUAGES
        ),
    )  # fmt: skip


def page(
    request: web.Request, title: str, body: Markup, *, message: str = "", status: int = 200
) -> web.Response:
    """A page in the reader's language: ``title`` and ``message`` are looked up in the catalogue
    (a title is extracted from the call: catalogs.py's ``page`` keyword)."""
    reader = lang(request)
    return web.Response(
        text=layout(
            reader.gettext(title),
            body,
            nav(request),
            reader.gettext(message) if message else "",
            language=reader.code,
        ),
        status=status,
        content_type="text/html",
    )


def error_page(
    request: web.Request, status: int, title: str, message: str, **values: object
) -> web.Response:
    """A refusal's page: ``title`` and ``message`` (a marked template, filled from ``values``)
    in the reader's language."""
    text = lang(request).gettext(message, **values)
    return page(request, title, render("<p>{m}</p>", m=text), status=status)


HTTP_REASONS = {
    400: N_("Bad Request"),
    404: N_("Not Found"),
    405: N_("Method Not Allowed"),
    413: N_("Request Entity Too Large"),
}
"""the titles of aiohttp's own refusals a reader meets, translated (else its English reason)"""


def _http_error_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's refusal (a 404 of a path or of another workshop's id, a 405, a body too large)
    as a page in the reader's language: a handler's own text (already in the reader's language),
    else the status's title."""
    title = HTTP_REASONS.get(exc.status, exc.reason)
    default = f"{exc.status}: {exc.reason}"
    message = exc.text if exc.text and exc.text != default else title
    return error_page(request, exc.status, title, message)


def status_of(err: PortalError) -> int:
    """The HTTP status of a refusal shown on a page."""
    if isinstance(err, LoginLocked):
        return 429
    if isinstance(err, LoginRefused):
        return 401
    if isinstance(err, WorkshopDisabled):
        return 403
    if isinstance(err, InsufficientCredit):
        return 402
    return 400


def hasher_kw(request: web.Request) -> dict[str, Any]:
    """The password hasher the services are to use (tests: a fast one)."""
    hasher = config(request).hasher
    return {"hasher": hasher} if hasher is not None else {}


def _same_site(request: web.Request) -> bool:
    """Whether the request comes from our own pages. Browsers send ``Origin: null`` with a form
    POST from a page under ``Referrer-Policy: no-referrer`` (ours), so ``Sec-Fetch-Site`` is asked
    first; ``Origin`` is for browsers without it."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc.lower() == request.host.lower()
    return True  # no browser: the CSRF token decides


def _load_session(factory: sessionmaker[Session], token: str) -> tuple[Actor, str] | None:
    with factory() as session:
        try:
            return session_actor(session, token)
        except PortalError:  # ended, expired, or its workshop disabled: as if none
            return None


def _secure_headers(response: web.StreamResponse, *, cacheable: bool = False) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)  # a drawing's is stricter (info_pages)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not cacheable:
        headers["Cache-Control"] = "no-store"


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               max_age: int | None = None) -> None:  # fmt: skip
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Strict",
        secure=config(request).secure_cookies,
    )  # fmt: skip


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _checked(request, handler)
    except web.HTTPRedirection as exc:  # the handlers' redirects after a POST, to the login
        response = web.Response(status=exc.status, headers={"Location": exc.headers["Location"]})
    except web.HTTPException as exc:  # aiohttp's 404, 405, 413 ...
        response = _http_error_page(request, exc)
    except Exception:  # a bug or the database gone: logged, the page says no more
        log.exception("%s %s failed", request.method, request.path)
        response = error_page(request, 500, "Error", N_("The portal failed; try again later."))
    _secure_headers(response, cacheable=request.path.startswith("/static/"))
    if supported(request.query.get("lang")) and response.content_type == "text/html":
        # the header's switch, remembered (a document printed with ?lang= changes nothing)
        set_cookie(request, response, LANGUAGE_COOKIE, lang(request).code, max_age=365 * 86400)
    if token := request.get(NEW_FORM_TOKEN):
        set_cookie(request, response, FORM_COOKIE, token)
    return response


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    need = need_of(request.match_info.handler)
    if need is None:  # a route nobody declared: refused, never served by accident
        return error_page(request, 500, "Not available",
                          N_("This page declares no access rule."))  # fmt: skip
    changing = request.method not in ("GET", "HEAD", "OPTIONS")
    if changing and not _same_site(request):
        return error_page(request, 403, "Refused",
                          N_("Requests from other web pages are refused."))  # fmt: skip
    token = request.cookies.get(SESSION_COOKIE)
    loaded = (
        await asyncio.to_thread(_load_session, config(request).factory, token) if token else None
    )
    if loaded is not None:
        request[ACTOR], request[CSRF] = loaded
    elif (form_token := request.cookies.get(FORM_COOKIE)) and len(form_token) == 43:
        request[CSRF] = form_token
    else:
        request[CSRF] = request[NEW_FORM_TOKEN] = secrets.token_urlsafe(32)  # 43 characters
    if need is not Need.PUBLIC:
        if loaded is None:
            if changing:
                return error_page(request, 401, "Log in",
                                  N_("Your session has ended; log in again."))  # fmt: skip
            to_login = web.Response(status=303, headers={"Location": "/login"})
            if request.path != "/" and len(request.path_qs) <= 2000:
                set_cookie(request, to_login, NEXT_COOKIE, request.path_qs, max_age=600)
            return to_login
        if loaded[0].role not in need.value:
            return error_page(request, 403, "Not permitted",
                              N_("Your role may not open this page."))  # fmt: skip
    if changing:
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode(), csrf(request).encode()
        ):
            return error_page(request, 403, "Refused",
                              N_("The form is out of date; reload the page."))  # fmt: skip
    return await handler(request)


async def too_many(request: web.Request) -> web.Response | None:
    """Count this attempt against the client address's limit (in the database, shared by all
    portal processes); the 429 answer when the limit is reached, else None."""
    limiter, client = request.app[LIMITER], client_address(request)
    wait = await in_db(request, lambda session: limiter.allow(session, client))
    if not wait:
        return None
    response = error_page(
        request, 429, "Too many attempts",
        N_("Too many attempts from your address; try again in {seconds} seconds."),
        seconds=int(wait) + 1,
    )  # fmt: skip
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


def next_page(request: web.Request) -> str:
    """Where a login goes: the page asked for before it (:data:`NEXT_COOKIE`) when that is a path
    of this site, else the home page. The cookie is the client's to send: anything but a local
    path (``//host``, ``/\\host``, a URL) is ignored, so it cannot lead to another site."""
    wanted = request.cookies.get(NEXT_COOKIE, "")
    local = wanted.startswith("/") and not wanted.startswith(("//", "/\\"))
    if local and wanted.isprintable() and len(wanted) <= 2000:
        return wanted
    return "/"


def client_address(request: web.Request) -> str:
    """The client's address for the per-address limit: the connection's, or when that is a
    trusted proxy, the nearest address in ``X-Forwarded-For`` that is not a trusted proxy (the
    addresses further left are the client's own claims)."""
    peer = request.remote or ""
    proxies = config(request).trusted_proxies
    if peer not in proxies:
        return peer
    hops = [
        hop.strip()
        for value in request.headers.getall("X-Forwarded-For", [])
        for hop in value.split(",")
        if hop.strip()
    ]
    return next((hop for hop in reversed(hops) if hop not in proxies), peer)


_OBJECT_ID = re.compile(r"[0-9]{1,18}")


def object_id(request: web.Request, name: str = "id") -> int:
    """The number in the path's ``name`` part, or 404. ASCII digits only: ``str.isdigit`` also
    takes "²" and other digits that ``int`` refuses (a 500 before this check)."""
    text = request.match_info[name]
    if not _OBJECT_ID.fullmatch(text):
        raise web.HTTPNotFound()
    return int(text)


def text_of(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""
