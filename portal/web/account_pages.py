"""Accounts on the web: sign-up, login (the password, then the authenticator's code when the
user turned the second factor on) and logout, the owner's users page, and turning on the
second factor. Thin over portal/accounts.py and portal/login.py; who may call each route is
declared with ``@requires`` and enforced by portal/web/guard.py."""

from __future__ import annotations

import re

import segno
from aiohttp import web
from sqlalchemy.orm import Session

from firmware_py.errors import (
    LoginLocked,
    NotPermitted,
    PortalError,
    SecondFactorNeeded,
    WorkshopDisabled,
)
from firmware_py.i18n import N_
from portal import accounts, login
from portal.db.models import Role, User
from portal.web.guard import (
    NEXT_COOKIE,
    PENDING,
    PENDING_COOKIE,
    SESSION_COOKIE,
    Need,
    actor,
    csrf,
    hasher_kw,
    in_db,
    lang,
    next_page,
    own_workshop,
    page,
    requires,
    set_cookie,
    status_of,
    text_of,
    too_many,
)
from portal.web.html import Markup, field, join, post_form, render, table

routes = web.RouteTableDef()
SECRET_PATTERN = re.compile(r"[A-Z2-7]{16,64}")


SIGNUP_FIELDS = (
    (N_("Workshop name"), "name"), (N_("Street"), "street"), (N_("Postcode"), "postcode"),
    (N_("City"), "city"), (N_("Country (two letters)"), "country"), (N_("VAT id"), "vat_id"),
    (N_("Your name"), "owner_name"), (N_("Your e-mail (login)"), "owner_login"),
)  # fmt: skip


def _signup_form(request: web.Request, values: dict[str, str]) -> Markup:
    _ = lang(request).gettext
    fields = join(
        field(_(label), name, value=values.get(name, "")) for label, name in SIGNUP_FIELDS
    )
    password = field(_("Password (12 characters or more)"), "password", "password", minlength="12")
    return post_form("/signup", csrf(request), join([fields, password]), _("Sign up"))


@routes.get("/signup")
@requires(Need.PUBLIC)
async def signup_page(request: web.Request) -> web.Response:
    return page(request, "Sign up your workshop", _signup_form(request, {}))


@routes.post("/signup")
@requires(Need.PUBLIC)
async def signup(request: web.Request) -> web.Response:
    form = await request.post()
    values = {name: text_of(form, name) for _, name in SIGNUP_FIELDS}
    if refused := await too_many(request):
        return refused
    data = accounts.WorkshopData(
        values["name"], values["street"], values["postcode"], values["city"], values["country"],
        values["vat_id"],
    )  # fmt: skip

    def sign_up(session: Session) -> None:
        accounts.sign_up(
            session, data, owner_login=values["owner_login"], owner_name=values["owner_name"],
            password=text_of(form, "password"), **hasher_kw(request),  # type: ignore[arg-type]
        )  # fmt: skip

    try:
        await in_db(request, sign_up)
    except PortalError as err:
        return page(request, "Sign up your workshop", _signup_form(request, values),
                    message=err.localized(lang(request)), status=status_of(err))  # fmt: skip
    return _login_page(request, N_("Your workshop is signed up: log in."), values["owner_login"])


def _login_page(request: web.Request, message: str = "", login_name: str = "",
                status: int = 200) -> web.Response:  # fmt: skip
    _ = lang(request).gettext
    fields = join([
        field(_("E-mail"), "login", "email", login_name, autocomplete="username"),
        field(_("Password"), "password", "password", autocomplete="current-password"),
    ])  # fmt: skip
    return page(request, "Log in", post_form("/login", csrf(request), fields, _("Log in")),
                message=message, status=status)  # fmt: skip


def _code_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    _ = lang(request).gettext
    fields = field(_("Code from your authenticator app"), "code", inputmode="numeric",
                   autocomplete="one-time-code", autofocus="autofocus")  # fmt: skip
    form = post_form("/login/code", csrf(request), fields, _("Log in"))
    return page(request, "Second factor", form, message=message, status=status)


def _logged_in(request: web.Request, opened: login.OpenSession) -> web.Response:
    out = web.Response(status=303, headers={"Location": next_page(request)})
    set_cookie(request, out, SESSION_COOKIE, opened.token, login.SESSION_SECONDS)
    out.del_cookie(PENDING_COOKIE, path="/")
    out.del_cookie(NEXT_COOKIE, path="/")
    return out


@routes.get("/login")
@requires(Need.PUBLIC)
async def login_page(request: web.Request) -> web.Response:
    return _login_page(request)


@routes.post("/login")
@requires(Need.PUBLIC)
async def log_in(request: web.Request) -> web.Response:
    form = await request.post()
    name = text_of(form, "login")
    if refused := await too_many(request):
        return refused

    def authenticate(session: Session) -> login.OpenSession:
        user = login.authenticate(
            session, name, text_of(form, "password"), **hasher_kw(request),  # type: ignore[arg-type]
        )  # fmt: skip
        return login.open_session(session, user)

    try:
        opened = await in_db(request, authenticate)
    except SecondFactorNeeded as err:
        pending, user_id = request.app[PENDING], err.user_id
        token = await in_db(request, lambda session: pending.add(session, user_id))
        out = _code_page(request)
        set_cookie(request, out, PENDING_COOKIE, token, int(pending.seconds))
        return out
    except PortalError as err:
        return _login_page(request, err.localized(lang(request)), name, status_of(err))
    return _logged_in(request, opened)


@routes.post("/login/code")
@requires(Need.PUBLIC)
async def log_in_code(request: web.Request) -> web.Response:
    form = await request.post()
    if refused := await too_many(request):
        return refused
    token, pending = request.cookies.get(PENDING_COOKIE), request.app[PENDING]
    user_id = await in_db(request, lambda session: pending.user(session, token))
    if user_id is None:
        return _login_page(request, N_("The login took too long: log in again."), status=401)

    def second_factor(session: Session) -> login.OpenSession:
        user = login.second_factor(session, user_id, text_of(form, "code"))
        return login.open_session(session, user)

    try:
        opened = await in_db(request, second_factor)
    except (LoginLocked, WorkshopDisabled) as err:
        await in_db(request, lambda session: pending.drop(session, token))
        return _login_page(request, err.localized(lang(request)), status=status_of(err))
    except PortalError as err:
        return _code_page(request, err.localized(lang(request)), status_of(err))
    await in_db(request, lambda session: pending.drop(session, token))
    return _logged_in(request, opened)


@routes.post("/logout")
@requires(Need.USER)
async def log_out(request: web.Request) -> web.Response:
    token = request.cookies[SESSION_COOKIE]
    await in_db(request, lambda session: login.end_session(session, token))
    out = web.Response(status=303, headers={"Location": "/login"})
    out.del_cookie(SESSION_COOKIE, path="/")
    return out


def _users_body(request: web.Request, users: list[tuple[str, str, str]]) -> Markup:
    _ = lang(request).gettext
    fields = join([
        field(_("E-mail (login)"), "login", "email"), field(_("Name"), "name"),
        field(_("Password (12 characters or more)"), "password", "password", minlength="12"),
    ])  # fmt: skip
    roles = {"owner": _("owner"), "technician": _("technician")}
    return render(
        "{users}<h2>{add_title}</h2>{form}",
        users=table((_("Login"), _("Name"), _("Role")),
                    [(login_, name, roles.get(role, role)) for login_, name, role in users]),
        add_title=_("Add a technician"),
        form=post_form("/users", csrf(request), fields, _("Add")),
    )  # fmt: skip


def _users(session: Session, request: web.Request) -> list[tuple[str, str, str]]:
    found = accounts.users_of(session, actor(request), own_workshop(request))
    return [(u.login, u.name, u.role) for u in found]


@routes.get("/users")
@requires(Need.OWNER)
async def users_page(request: web.Request) -> web.Response:
    users = await in_db(request, lambda session: _users(session, request))
    return page(request, "Users", _users_body(request, users))


@routes.post("/users")
@requires(Need.OWNER)
async def add_user(request: web.Request) -> web.Response:
    form = await request.post()

    def add(session: Session) -> None:
        accounts.add_user(
            session, actor(request), own_workshop(request), login=text_of(form, "login"),
            name=text_of(form, "name"), password=text_of(form, "password"),
            role=Role.TECHNICIAN, **hasher_kw(request),  # type: ignore[arg-type]
        )  # fmt: skip

    message, status = lang(request).gettext("The technician can log in now."), 200
    try:
        await in_db(request, add)
    except PortalError as err:
        message, status = err.localized(lang(request)), status_of(err)
    users = await in_db(request, lambda session: _users(session, request))
    return page(request, "Users", _users_body(request, users), message=message, status=status)


def _totp_body(request: web.Request, login_name: str, secret: str) -> Markup:
    _ = lang(request).gettext
    uri = login.totp_uri(secret, login_name)
    fields = join([
        render('<input type="hidden" name="secret" value="{s}">', s=secret),
        field(_("Code the app shows now"), "code", inputmode="numeric",
              autocomplete="one-time-code"),
    ])  # fmt: skip
    return render(
        "<p>{scan}</p>"
        '{qr}<p class="ticket">{secret}</p><p class="ticket">{uri}</p>{form}',
        scan=_("Scan the code with your authenticator app, or enter the key by hand:"),
        qr=Markup(segno.make(uri, error="m").svg_inline(scale=4, title=_("TOTP key"))),
        secret=secret, uri=uri,
        form=post_form("/totp", csrf(request), fields, _("Turn on the second factor")),
    )  # fmt: skip


def _me(session: Session, request: web.Request) -> tuple[str, bool]:
    user = session.get(User, actor(request).user_id)
    assert user is not None  # the session's user
    return user.login, user.totp is not None


@routes.get("/totp")
@requires(Need.USER)
async def totp_page(request: web.Request) -> web.Response:
    login_name, on = await in_db(request, lambda session: _me(session, request))
    if on:
        on_text = lang(request).gettext("Your second factor is on.")
        return page(request, "Second factor", render("<p>{t}</p>", t=on_text))
    return page(request, "Second factor", _totp_body(request, login_name, login.new_totp_secret()))


@routes.post("/totp")
@requires(Need.USER)
async def enable_totp(request: web.Request) -> web.Response:
    form = await request.post()
    secret, code = text_of(form, "secret"), text_of(form, "code")

    def enable(session: Session) -> str:
        login_name, on = _me(session, request)
        if on:
            raise NotPermitted(N_("your second factor is on already"), hint=N_("Nothing to do"))
        if not SECRET_PATTERN.fullmatch(secret):
            raise NotPermitted(N_("the form's key is malformed"), hint=N_("Reload the page"))
        login.enable_totp(session, actor(request), secret, code)
        return login_name

    try:
        await in_db(request, enable)
    except PortalError as err:
        login_name, on = await in_db(request, lambda session: _me(session, request))
        if not SECRET_PATTERN.fullmatch(secret):
            secret = login.new_totp_secret()
        body = render("") if on else _totp_body(request, login_name, secret)
        return page(
            request,
            "Second factor",
            body,
            message=err.localized(lang(request)),
            status=status_of(err),
        )
    done = lang(request).gettext(
        "Your second factor is on: from now on you log in with a code too."
    )
    return page(request, "Second factor", render("<p>{t}</p>", t=done))
