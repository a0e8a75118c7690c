"""The workshop's pages: sign-up, login and logout, credit and purchases, buying a ticket, a
purchase with its ticket, the invoice PDF, the owner's users page and the second factor. Each
handler parses its form, calls one service (portal/accounts.py, login.py, credit.py) and renders
the answer; who may call it is declared with ``@requires`` and enforced by portal/web/guard.py."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import segno
from aiohttp import web
from sqlalchemy.orm import Session

from firmware_py.errors import (
    InsufficientCredit,
    LoginLocked,
    LoginRefused,
    NotPermitted,
    PortalError,
    WorkshopDisabled,
)
from firmware_py.gateway.tariffs import TARIFFS
from portal import accounts, credit, login
from portal.db.models import Role, User
from portal.invoices import euro, price_of
from portal.web.guard import (
    LIMITER,
    SESSION_COOKIE,
    Need,
    actor,
    client_address,
    config,
    csrf,
    error_page,
    in_db,
    message_of,
    page,
    requires,
    set_cookie,
    text_of,
)
from portal.web.html import Markup, field, join, post_form, render, table, utc

routes = web.RouteTableDef()
CSS = (Path(__file__).parent / "static" / "portal.css").read_bytes()
SECRET_PATTERN = re.compile(r"[A-Z2-7]{16,64}")


def _status(err: PortalError) -> int:
    if isinstance(err, LoginLocked):
        return 429
    if isinstance(err, LoginRefused):
        return 401
    if isinstance(err, WorkshopDisabled):
        return 403
    if isinstance(err, InsufficientCredit):
        return 402
    return 400


def _hasher_kw(request: web.Request) -> dict[str, object]:
    hasher = config(request).hasher
    return {"hasher": hasher} if hasher is not None else {}


@routes.get("/static/portal.css")
@requires(Need.PUBLIC)
async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(
        body=CSS, content_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


@routes.get("/")
@requires(Need.USER)
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/operator/workshops" if actor(request).is_operator else "/dashboard")


SIGNUP_FIELDS = (
    ("Workshop name", "name"), ("Street", "street"), ("Postcode", "postcode"), ("City", "city"),
    ("Country (two letters)", "country"), ("VAT id", "vat_id"), ("Your name", "owner_name"),
    ("Your e-mail (login)", "owner_login"),
)  # fmt: skip


def _signup_form(request: web.Request, values: dict[str, str]) -> Markup:
    fields = join(field(label, name, value=values.get(name, "")) for label, name in SIGNUP_FIELDS)
    password = field("Password (12 characters or more)", "password", "password", minlength="12")
    return post_form("/signup", csrf(request), join([fields, password]), "Sign up")


@routes.get("/signup")
@requires(Need.PUBLIC)
async def signup_page(request: web.Request) -> web.Response:
    return page(request, "Sign up your workshop", _signup_form(request, {}))


@routes.post("/signup")
@requires(Need.PUBLIC)
async def signup(request: web.Request) -> web.Response:
    form = await request.post()
    values = {name: text_of(form, name) for _, name in SIGNUP_FIELDS}
    if wait := request.app[LIMITER].allow(client_address(request)):
        return _too_many(request, wait)
    data = accounts.WorkshopData(
        values["name"], values["street"], values["postcode"], values["city"], values["country"],
        values["vat_id"],
    )  # fmt: skip

    def sign_up(session: Session) -> None:
        accounts.sign_up(
            session, data, owner_login=values["owner_login"], owner_name=values["owner_name"],
            password=text_of(form, "password"), **_hasher_kw(request),  # type: ignore[arg-type]
        )  # fmt: skip

    try:
        await in_db(request, sign_up)
    except PortalError as err:
        return page(request, "Sign up your workshop", _signup_form(request, values),
                    message=message_of(err), status=_status(err))  # fmt: skip
    return _login_page(request, "Your workshop is signed up: log in.", values["owner_login"])


def _login_page(request: web.Request, message: str = "", login_name: str = "",
                status: int = 200) -> web.Response:  # fmt: skip
    fields = join([
        field("E-mail", "login", "email", login_name, autocomplete="username"),
        field("Password", "password", "password", autocomplete="current-password"),
        field("Code from your authenticator app (if you turned it on)", "code",
              inputmode="numeric", autocomplete="one-time-code"),
    ])  # fmt: skip
    return page(request, "Log in", post_form("/login", csrf(request), fields, "Log in"),
                message=message, status=status)  # fmt: skip


def _too_many(request: web.Request, wait: float) -> web.Response:
    response = error_page(
        request, 429, "Too many attempts",
        f"Too many attempts from your address; try again in {int(wait) + 1} seconds.",
    )  # fmt: skip
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


@routes.get("/login")
@requires(Need.PUBLIC)
async def login_page(request: web.Request) -> web.Response:
    return _login_page(request)


@routes.post("/login")
@requires(Need.PUBLIC)
async def log_in(request: web.Request) -> web.Response:
    form = await request.post()
    name = text_of(form, "login")
    if wait := request.app[LIMITER].allow(client_address(request)):
        return _too_many(request, wait)

    def authenticate(session: Session) -> login.OpenSession:
        user = login.authenticate(
            session,
            name,
            text_of(form, "password"),
            text_of(form, "code") or None,
            **_hasher_kw(request),  # type: ignore[arg-type]
        )
        return login.open_session(session, user)

    try:
        opened = await in_db(request, authenticate)
    except PortalError as err:
        return _login_page(request, message_of(err), name, _status(err))
    out = web.Response(status=303, headers={"Location": "/"})
    set_cookie(request, out, SESSION_COOKIE, opened.token, login.SESSION_SECONDS)
    return out


@routes.post("/logout")
@requires(Need.USER)
async def log_out(request: web.Request) -> web.Response:
    token = request.cookies[SESSION_COOKIE]
    await in_db(request, lambda session: login.end_session(session, token))
    out = web.Response(status=303, headers={"Location": "/login"})
    out.del_cookie(SESSION_COOKIE, path="/")
    return out


def _workshop_id(request: web.Request) -> int:
    workshop_id = actor(request).workshop_id
    assert workshop_id is not None  # Need.WORKSHOP / Need.OWNER
    return workshop_id


@routes.get("/dashboard")
@requires(Need.WORKSHOP)
async def dashboard(request: web.Request) -> web.Response:
    who, workshop_id = actor(request), _workshop_id(request)

    def read(session: Session) -> Markup:
        workshop = accounts.workshop_for(session, who, workshop_id)
        bookings = credit.statement(session, who, workshop_id)
        bought = credit.purchases(session, who, workshop_id)
        return render(
            '<p>{name}, {city} (VAT id {vat})</p><p class="balance">Credit: {balance}</p>'
            "<p>Top up by bank transfer to the portal's account{iban}; the operator books it "
            'when it arrives.</p><h2>Purchases</h2>{bought}<h2>Bookings</h2>{bookings}',
            name=workshop.name, city=workshop.city, vat=workshop.vat_id,
            balance=euro(credit.balance(session, who, workshop_id)),
            iban=f" {config(request).seller.iban}" if config(request).seller.iban else "",
            bought=table(
                ("Bought", "Tariff", "Box", "VIN", "Valid", "Invoice"),
                ((utc(p.created_at), TARIFFS[p.tariff].name, p.device, p.vin or "-",
                  f"{utc(p.starts_at)} - {utc(p.ends_at)}" if p.starts_at else "one use",
                  render('<a href="/purchases/{id}">{label}</a>', id=p.id, label=p.invoice.label))
                 for p in bought),
            ),
            bookings=table(
                ("Booked", "Kind", "Amount", "Reference"),
                ((utc(b.created_at), b.kind, euro(b.amount_cents), b.reference)
                 for b in bookings),
            ),
        )  # fmt: skip

    return page(request, "Credit and purchases", await in_db(request, read))


def _buy_form(request: web.Request, values: dict[str, str]) -> Markup:
    options = join(
        render('<option value="{id}"{sel}>{name}: {price}</option>', id=t.id,
               sel=Markup(" selected") if values.get("tariff") == t.id else Markup(""),
               name=t.name, price=euro(price_of(t).gross_cents)
               + (" + VAT" if t.net else " incl. VAT"))
        for t in TARIFFS.values()
    )  # fmt: skip
    fields = join([
        render('<label>Tariff <select name="tariff">{o}</select></label>', o=options),
        field("Box device id (on the box's label)", "device", value=values.get("device", "")),
        field("VIN (optional: bind the ticket to one vehicle)", "vin",
              value=values.get("vin", "")),
        field("Valid from (UTC; empty: now)", "start", "datetime-local",
              values.get("start", "")),
    ])  # fmt: skip
    return post_form("/buy", csrf(request), fields, "Buy from the credit")


@routes.get("/buy")
@requires(Need.WORKSHOP)
async def buy_page(request: web.Request) -> web.Response:
    return page(request, "Buy a ticket", _buy_form(request, {}))


@routes.post("/buy")
@requires(Need.WORKSHOP)
async def buy(request: web.Request) -> web.Response:
    form = await request.post()
    values = {name: text_of(form, name).strip() for name in ("tariff", "device", "vin", "start")}
    cfg = config(request)
    try:
        start = None
        if values["start"]:
            try:
                start = int(datetime.fromisoformat(values["start"]).replace(tzinfo=UTC).timestamp())
            except ValueError as err:
                raise NotPermitted("the start is not a date and time",
                                   hint="Give it as YYYY-MM-DDTHH:MM (UTC)") from err  # fmt: skip
        bought = await asyncio.to_thread(
            lambda: credit.buy_ticket(
                cfg.factory, actor(request), _workshop_id(request), tariff=values["tariff"],
                device=values["device"], vin=values["vin"] or None, start=start,
                signer=cfg.signer, seller=cfg.seller,
            )
        )  # fmt: skip
    except PortalError as err:
        return page(request, "Buy a ticket", _buy_form(request, values),
                    message=message_of(err), status=_status(err))  # fmt: skip
    raise web.HTTPSeeOther(f"/purchases/{bought.id}")


def _object_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 18:
        raise web.HTTPNotFound()
    return int(text)


@routes.get("/purchases/{id}")
@requires(Need.WORKSHOP)
async def purchase_page(request: web.Request) -> web.Response:
    purchase_id, who = _object_id(request), actor(request)

    def read(session: Session) -> Markup:
        p = credit.purchase(session, who, purchase_id)
        return render(
            "<p>{tariff} for the box {device}{vin}, valid {valid}.</p>"
            "<p>The ticket (copy it to the box):</p><p class=\"ticket\">{ticket}</p>"
            '<p><a href="/invoices/{invoice_id}.pdf">Invoice {label} (PDF)</a></p>',
            tariff=TARIFFS[p.tariff].name, device=p.device,
            vin=f" and the vehicle {p.vin}" if p.vin else "",
            valid=f"{utc(p.starts_at)} to {utc(p.ends_at)}" if p.starts_at
            else "for one use from its activation",
            ticket=p.ticket, invoice_id=p.invoice.id, label=p.invoice.label,
        )  # fmt: skip

    try:
        body = await in_db(request, read)
    except NotPermitted:  # another workshop's or none: the same answer
        raise web.HTTPNotFound() from None
    return page(request, f"Purchase {purchase_id}", body)


@routes.get("/invoices/{id}.pdf")
@requires(Need.USER)
async def invoice_pdf(request: web.Request) -> web.Response:
    invoice_id, who = _object_id(request), actor(request)

    def read(session: Session) -> tuple[str, bytes]:
        found = credit.invoice(session, who, invoice_id)
        return found.label, found.pdf

    try:
        label, pdf = await in_db(request, read)
    except NotPermitted:
        raise web.HTTPNotFound() from None
    return web.Response(
        body=pdf, content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{label}.pdf"'},
    )  # fmt: skip


def _users_body(request: web.Request, users: list[tuple[str, str, str]]) -> Markup:
    fields = join([
        field("E-mail (login)", "login", "email"), field("Name", "name"),
        field("Password (12 characters or more)", "password", "password", minlength="12"),
    ])  # fmt: skip
    return render(
        "{users}<h2>Add a technician</h2>{form}",
        users=table(("Login", "Name", "Role"), users),
        form=post_form("/users", csrf(request), fields, "Add"),
    )


def _users(session: Session, request: web.Request) -> list[tuple[str, str, str]]:
    found = accounts.users_of(session, actor(request), _workshop_id(request))
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
            session, actor(request), _workshop_id(request), login=text_of(form, "login"),
            name=text_of(form, "name"), password=text_of(form, "password"),
            role=Role.TECHNICIAN, **_hasher_kw(request),  # type: ignore[arg-type]
        )  # fmt: skip

    message, status = "The technician can log in now.", 200
    try:
        await in_db(request, add)
    except PortalError as err:
        message, status = message_of(err), _status(err)
    users = await in_db(request, lambda session: _users(session, request))
    return page(request, "Users", _users_body(request, users), message=message, status=status)


def _totp_body(request: web.Request, login_name: str, secret: str) -> Markup:
    uri = login.totp_uri(secret, login_name)
    fields = join([
        render('<input type="hidden" name="secret" value="{s}">', s=secret),
        field("Code the app shows now", "code", inputmode="numeric",
              autocomplete="one-time-code"),
    ])  # fmt: skip
    return render(
        "<p>Scan the code with your authenticator app, or enter the key by hand:</p>"
        '{qr}<p class="ticket">{secret}</p><p class="ticket">{uri}</p>{form}',
        qr=Markup(segno.make(uri, error="m").svg_inline(scale=4, title="TOTP key")),
        secret=secret, uri=uri,
        form=post_form("/totp", csrf(request), fields, "Turn on the second factor"),
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
        return page(request, "Second factor", render("<p>Your second factor is on.</p>"))
    return page(request, "Second factor", _totp_body(request, login_name, login.new_totp_secret()))


@routes.post("/totp")
@requires(Need.USER)
async def enable_totp(request: web.Request) -> web.Response:
    form = await request.post()
    secret, code = text_of(form, "secret"), text_of(form, "code")

    def enable(session: Session) -> str:
        login_name, on = _me(session, request)
        if on:
            raise NotPermitted("your second factor is on already", hint="Nothing to do")
        if not SECRET_PATTERN.fullmatch(secret):
            raise NotPermitted("the form's key is malformed", hint="Reload the page")
        login.enable_totp(session, actor(request), secret, code)
        return login_name

    try:
        await in_db(request, enable)
    except PortalError as err:
        login_name, on = await in_db(request, lambda session: _me(session, request))
        if not SECRET_PATTERN.fullmatch(secret):
            secret = login.new_totp_secret()
        body = render("") if on else _totp_body(request, login_name, secret)
        return page(request, "Second factor", body, message=message_of(err), status=_status(err))
    return page(request, "Second factor", render("<p>Your second factor is on: from now on "
                                                 "you log in with a code too.</p>"))  # fmt: skip
