"""``vci-portal db|workshop|user|credit`` and ``vci-portal ticket buy``: the portal's accounts,
credit and purchases from the command line of the portal's machine (docs/portal.md).

Whoever runs these has the database, so the command line is the root of trust: it creates the
first operator and signs workshops up. Every other command names the user it acts as
(``--user LOGIN``) and goes through the same service checks the web layer will use (an owner
adds technicians, an operator books payments and disables workshops, a workshop's user buys).
SQLAlchemy and the other portal extras are imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_py.errors import ConfigError, NotPermitted, StorageError
from firmware_py.gateway.tariffs import TARIFFS
from firmware_py.i18n import from_environment

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from portal.accounts import Actor


def register(sub: Any, ticket: Any) -> None:
    """Add the commands to ``vci-portal``'s sub-parsers (``ticket``'s for ``ticket buy``)."""
    db_help = "database URL (default: VCI_PORTAL_DB, else SQLite in the portal's state dir)"

    def with_db(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--db", metavar="URL", help=db_help)
        return parser

    db = sub.add_parser("db", help="the portal's database").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    with_db(db.add_parser("upgrade", help="bring the schema up to date (Alembic)")).set_defaults(
        account_handler=_db_upgrade
    )

    w = sub.add_parser("workshop", help="workshops (the portal's customers)").add_subparsers(
        dest="workshop_command", required=True, metavar="ACTION"
    )
    s = with_db(w.add_parser("signup", help="sign a workshop up with its owner"))
    for name in ("name", "street", "postcode", "city", "country", "vat-id", "owner-login"):
        s.add_argument(f"--{name}", required=True)
    s.add_argument("--owner-name", default="")
    _password_args(s)
    s.set_defaults(account_handler=_signup)
    from portal import privacy_cli

    privacy_cli.register(sub, w, with_db)  # workshop export, delete; retention run
    ls = with_db(w.add_parser("list", help="all workshops (operator)"))
    ls.add_argument("--user", required=True, help="the operator's login")
    ls.set_defaults(account_handler=_list)
    for action in ("disable", "enable"):
        d = with_db(w.add_parser(action, help=f"{action} a workshop (operator)"))
        d.add_argument("workshop", help="its id or VAT id")
        d.add_argument("--user", required=True, help="the operator's login")
        d.set_defaults(account_handler=_set_enabled, enabled=action == "enable")

    u = sub.add_parser("user", help="portal users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    a = with_db(u.add_parser("add", help="add a technician or owner to a workshop, or an operator"))
    a.add_argument("--login", required=True, help="the new user's e-mail address")
    a.add_argument("--name", default="")
    a.add_argument("--role", choices=["technician", "owner", "operator"], default="technician")
    a.add_argument("--workshop", help="its id or VAT id (not for operators)")
    a.add_argument("--user", help="who adds: the workshop's owner or an operator")
    _password_args(a)
    a.set_defaults(account_handler=_user_add)

    c = sub.add_parser("credit", help="workshops' prepaid credit").add_subparsers(
        dest="credit_command", required=True, metavar="ACTION"
    )
    b = with_db(c.add_parser("book", help="book a received bank transfer (operator)"))
    b.add_argument("--workshop", required=True, help="its id or VAT id")
    b.add_argument("--amount", required=True, type=_cents, help="EUR, e.g. 250.00")
    b.add_argument("--reference", required=True, help="the payment's bank reference")
    b.add_argument("--user", required=True, help="the operator's login")
    b.set_defaults(account_handler=_credit_book)
    sh = with_db(c.add_parser("show", help="balance and bookings"))
    sh.add_argument("--workshop", required=True, help="its id or VAT id")
    sh.add_argument("--user", required=True, help="a user of the workshop, or an operator")
    sh.set_defaults(account_handler=_credit_show)

    buy = with_db(ticket.add_parser("buy", help="buy a ticket from a workshop's credit"))
    buy.add_argument("--workshop", required=True, help="its id or VAT id")
    buy.add_argument("--user", required=True, help="the buying user's login")
    buy.add_argument("--tariff", required=True, choices=sorted(TARIFFS))
    buy.add_argument("--box", required=True, help="the box's device id")
    buy.add_argument("--vin", help="bind the ticket to one vehicle")
    buy.add_argument("--start", help="ISO time the validity starts (default: now)")
    buy.add_argument("--key-dir", required=True, type=Path)
    buy.add_argument("--kid", help="signing key id (default: the newest key)")
    buy.add_argument("--config", type=Path, help="the [seller] file (default: <state>/portal.toml)")
    buy.add_argument("--invoice-dir", type=Path, help="default: <state dir>/invoices")
    buy.set_defaults(account_handler=_ticket_buy)

    rv = with_db(
        ticket.add_parser("revoke", help="revoke a bought ticket; the list goes to its box")
    )
    rv.add_argument("purchase", type=int, help="the purchase's number")
    rv.add_argument("--user", required=True, help="the operator's login")
    rv.set_defaults(account_handler=_ticket_revoke)

    dl = with_db(
        sub.add_parser("deliver", help="send bought tickets and revocations to their boxes")
    )
    _broker_args(dl, required=True)
    dl.add_argument("--once", action="store_true", help="one round, then report what is pending")
    dl.set_defaults(account_handler=_deliver)

    sv = with_db(sub.add_parser("serve", help="the web pages for workshops and the operator"))
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument(
        "--key-dir", type=Path,
        help="the ticket signing keys (default: <state>/keys, where a first key is made if none)",
    )  # fmt: skip
    sv.add_argument("--kid", help="signing key id (default: the newest key)")
    sv.add_argument("--config", type=Path, help="the [seller] file (default: <state>/portal.toml)")
    sv.add_argument(
        "--secure-cookies", action="store_true",
        help="mark cookies Secure: served over TLS, or behind a proxy that terminates it",
    )  # fmt: skip
    sv.add_argument(
        "--trusted-proxy", action="append", default=[], metavar="ADDR",
        help="a reverse proxy's address whose X-Forwarded-For names the client (repeatable)",
    )  # fmt: skip
    _broker_args(sv, required=False)
    sv.add_argument(
        "--broker-pid", type=int, metavar="PID",
        help="after a box is revoked on the pages, send the broker (mosquitto) SIGHUP so that it "
        "reads the revocation list PKI/crl.pem now",
    )  # fmt: skip
    sv.add_argument(
        "--broker-reload", metavar="COMMAND",
        help="or run this command then (e.g. 'systemctl reload mosquitto')",
    )  # fmt: skip
    sv.add_argument(
        "--publisher-keys", type=Path, metavar="DIR",
        help="the flash-package publishers' public keys the boxes trust: serves the package "
        "store (<state>/packages) to boxes and offers its packages in remote sessions",
    )  # fmt: skip
    sv.add_argument(
        "--public-url", metavar="URL",
        help="where boxes reach these pages (e.g. https://portal.example); the package store's "
        "download URLs start with it (default: http://HOST:PORT)",
    )  # fmt: skip
    sv.set_defaults(account_handler=_serve)


def _broker_args(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The broker link tickets are delivered over (docs/portal.md, "Delivery to the box")."""
    parser.add_argument("--broker", required=required, metavar="HOST:PORT",
                        help="deliver bought tickets to their boxes through this broker")  # fmt: skip
    parser.add_argument("--pki", type=Path, required=required,
                        help="directory with ca.pem and <user>.pem/.key")  # fmt: skip
    parser.add_argument("--broker-user", required=required,
                        help="the portal user (certificate name) the broker lets serve the boxes")  # fmt: skip
    if not any(a.dest == "key_dir" for a in parser._actions):
        parser.add_argument("--key-dir", required=True, type=Path, help="the ticket signing keys")
        parser.add_argument("--kid", help="signing key id (default: the newest key)")


def _password_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the passwords differ", hint="Type the same password twice")
    return first


def _cents(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in EUR") from err
    if value != value.quantize(Decimal("0.01")):
        raise argparse.ArgumentTypeError(f"{text!r} has more than two decimals")
    return int(value * 100)


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return int(args.account_handler(args) or 0)
    except SQLAlchemyError as err:
        orig = getattr(err, "orig", None)
        raise StorageError(
            f"the portal's database: {orig or err}",
            hint="Check --db / VCI_PORTAL_DB and that the database server runs",
        ) from err


def _open(args: argparse.Namespace) -> Any:
    from portal.db.engine import database_url, open_database

    return open_database(database_url(args.db))[1]


def _actor(session: Session, login: str) -> Actor:
    from portal.accounts import Actor, find_user

    user = find_user(session, login)
    if user is None:
        raise NotPermitted(f"there is no user {login!r}", hint="vci-portal user add")
    return Actor.of(user)


def _workshop_id(session: Session, ref: str) -> int:
    from sqlalchemy import select

    from portal.db.models import Workshop

    query = select(Workshop.id).where(
        Workshop.id == int(ref)
        if ref.isdigit()
        else Workshop.vat_id == ref.replace(" ", "").upper()
    )
    found = session.scalar(query)
    if found is None:
        raise NotPermitted(f"there is no workshop {ref!r}", hint="vci-portal workshop list")
    return int(found)


def _db_upgrade(args: argparse.Namespace) -> None:
    from portal.db.engine import database_url, head_revision, upgrade

    upgrade(database_url(args.db))
    print(f"database at revision {head_revision()}")


def _signup(args: argparse.Namespace) -> None:
    from portal import accounts

    data = accounts.WorkshopData(
        args.name, args.street, args.postcode, args.city, args.country, args.vat_id
    )
    password = _password(args)
    with _open(args)() as session, session.begin():
        owner = accounts.sign_up(
            session, data, owner_login=args.owner_login, owner_name=args.owner_name,
            password=password,
        )  # fmt: skip
        session.flush()
        print(f"workshop {owner.workshop_id} signed up, owner {owner.login}")


def _list(args: argparse.Namespace) -> None:
    from portal import accounts
    from portal.invoices import euro

    with _open(args)() as session:
        actor = _actor(session, args.user)
        from portal.credit import balance

        for w in accounts.workshops(session, actor):
            state = "enabled" if w.enabled else "DISABLED"
            print(
                f"{w.id:>5}  {w.vat_id:<14} {state:<8} {euro(balance(session, actor, w.id)):>16}  {w.name}"
            )


def _set_enabled(args: argparse.Namespace) -> None:
    from portal import accounts

    with _open(args)() as session, session.begin():
        workshop = accounts.set_enabled(
            session, _actor(session, args.user), _workshop_id(session, args.workshop), args.enabled
        )
        print(f"workshop {workshop.id} {'enabled' if workshop.enabled else 'disabled'}")


def _user_add(args: argparse.Namespace) -> None:
    from portal import accounts
    from portal.db.models import Role

    password = _password(args)
    with _open(args)() as session, session.begin():
        if args.role == "operator":
            if args.workshop:
                raise ConfigError("operators belong to no workshop", hint="Leave out --workshop")
            user = accounts.add_operator(
                session, login=args.login, name=args.name, password=password
            )
        else:
            if not (args.workshop and args.user):
                raise ConfigError(
                    "a workshop's user needs --workshop and --user (its owner or an operator)"
                )
            user = accounts.add_user(
                session, _actor(session, args.user), _workshop_id(session, args.workshop),
                login=args.login, name=args.name, password=password, role=Role(args.role),
            )  # fmt: skip
        session.flush()
        print(f"user {user.login} ({user.role}) added")


def _credit_book(args: argparse.Namespace) -> None:
    from portal.credit import BankTransfer, balance
    from portal.invoices import euro

    with _open(args)() as session, session.begin():
        actor = _actor(session, args.user)
        workshop = _workshop_id(session, args.workshop)
        BankTransfer().book(session, actor, workshop, args.amount, args.reference)
        session.flush()
        print(f"booked {euro(args.amount)}; credit now {euro(balance(session, actor, workshop))}")


def _credit_show(args: argparse.Namespace) -> None:
    from portal.credit import balance, statement
    from portal.invoices import euro

    with _open(args)() as session:
        actor = _actor(session, args.user)
        workshop = _workshop_id(session, args.workshop)
        for b in statement(session, actor, workshop):
            when = datetime.fromtimestamp(b.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            print(f"{when}  {b.kind:<9} {euro(b.amount_cents):>16}  {b.reference}")
        print(f"balance {euro(balance(session, actor, workshop))}")


def _ticket_buy(args: argparse.Namespace) -> None:
    from portal import keys
    from portal.credit import Signer, buy_ticket
    from portal.db.engine import state_dir
    from portal.invoices import Seller

    seller = Seller.load(args.config or state_dir() / "portal.toml")
    kid, key = keys.load_signing_key(args.key_dir, args.kid)
    start = int(datetime.fromisoformat(args.start).timestamp()) if args.start else None
    factory = _open(args)
    with factory() as session:
        actor = _actor(session, args.user)
        workshop = _workshop_id(session, args.workshop)
    purchase = buy_ticket(
        factory, actor, workshop, tariff=args.tariff, device=args.box, vin=args.vin, start=start,
        signer=Signer(kid, key), seller=seller,
        language=from_environment(),  # the CLI's language: English unless the locale says German
    )  # fmt: skip
    directory = args.invoice_dir or state_dir() / "invoices"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"invoice-{purchase.invoice.label}.pdf"
    path.write_bytes(purchase.invoice.pdf)
    print(purchase.ticket)
    print(f"invoice {purchase.invoice.label}: {path}")


def _ticket_revoke(args: argparse.Namespace) -> None:
    from portal.delivery import revoke_purchase

    factory = _open(args)
    with factory() as session:
        actor = _actor(session, args.user)
    revoke_purchase(factory, actor, args.purchase)
    print(f"purchase {args.purchase} revoked; the revocation list goes to its box")


def _delivery(args: argparse.Namespace, factory: Any, key_dir: Path) -> Any:
    """The delivery worker of ``--broker``/``--pki``/``--broker-user`` (its session open)."""
    from portal import keys
    from portal.delivery import DeliveryWorker, Revocation
    from portal.remote import RemoteSession
    from portal.tickets import RevocationList

    host, _, port = args.broker.rpartition(":")
    if not (host and port.isdigit() and args.pki and args.broker_user):
        raise ConfigError(
            "ticket delivery needs --broker HOST:PORT, --pki and --broker-user",
            hint="See docs/portal.md",
        )
    kid, key = keys.load_signing_key(key_dir, args.kid)
    session = RemoteSession(host, int(port), args.pki, args.broker_user)
    return DeliveryWorker(factory, session, Revocation(RevocationList(key_dir), kid, key))


def _deliver(args: argparse.Namespace) -> None:
    import threading
    import time

    worker = _delivery(args, _open(args), args.key_dir)
    try:
        if args.once:
            deadline = time.monotonic() + 10  # the broker's answer to the connection
            while not worker.session.client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.1)
            sent = worker.step()
            time.sleep(2)  # the boxes that are online answer within this
            worker.take_answers()
            print(f"sent {sent}, still pending {worker.pending()}")
            return
        stop = threading.Event()
        try:
            worker.run(stop)
        except KeyboardInterrupt:
            stop.set()
    finally:
        worker.session.close()


def _serve(args: argparse.Namespace) -> None:
    import asyncio
    import contextlib
    import threading

    from portal import keys
    from portal.credit import Signer
    from portal.db.engine import state_dir
    from portal.invoices import Seller
    from portal.sessions import SessionService
    from portal.web.app import serve
    from portal.web.guard import WebConfig

    try:
        seller: Seller | None = Seller.load(args.config or state_dir() / "portal.toml")
    except ConfigError as err:  # a fresh portal serves sign-up and login; sales wait for it
        seller = None
        print(f"warning: tickets cannot be sold yet: {err} ({err.hint})", file=sys.stderr)
    key_dir = args.key_dir or state_dir() / "keys"
    if args.key_dir is None and not any(key_dir.glob("*.key")):
        kid = keys.generate(key_dir)
        print(f"made the ticket signing key {kid} in {key_dir}; boxes trust its tickets once "
              f"{kid}.pub is in their [security] portal_keys_dir", file=sys.stderr)  # fmt: skip
    kid, key = keys.load_signing_key(key_dir, args.kid)
    from portal.broker import reloader

    cfg = WebConfig(
        _open(args), Signer(kid, key), seller, secure_cookies=args.secure_cookies,
        trusted_proxies=frozenset(args.trusted_proxy), pki=args.pki,
        broker_reload=reloader(args.broker_pid, args.broker_reload),
    )  # fmt: skip
    stop, links, worker = threading.Event(), [], None
    from portal.retention import RetentionConfig
    from portal.retention import run as retention

    periods = RetentionConfig.load(args.config or state_dir() / "portal.toml")
    threading.Thread(target=retention, args=(cfg.factory, periods, stop), daemon=True,
                     name="retention").start()  # fmt: skip
    if args.broker:  # the delivery worker and the boxes' status, each in a thread of its own
        worker = _delivery(args, cfg.factory, key_dir)
        watcher = _status_watcher(args, cfg.factory)
        links += [worker.session, watcher.session]
        threading.Thread(target=worker.run, args=(stop,), daemon=True, name="delivery").start()
        threading.Thread(target=watcher.run, args=(stop,), daemon=True, name="status").start()
    packages = None
    if args.publisher_keys is not None:
        from firmware_py.keys import load_public_keys
        from portal.packages import PackageStore

        packages = PackageStore(
            cfg.factory, state_dir() / "packages", load_public_keys(args.publisher_keys), kid, key
        )
    # remote jobs share the delivery worker's broker connection
    sessions = SessionService(
        cfg.factory, worker.session if worker is not None else None, packages=packages,
        package_url=args.public_url or f"http://{args.host}:{args.port}",
    )  # fmt: skip
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(cfg, args.host, args.port, sessions, packages))
    finally:
        stop.set()
        for link in links:
            link.close()


def _status_watcher(args: argparse.Namespace, factory: Any) -> Any:
    """The boxes' status watcher (portal/box_status.py) on a broker connection of its own."""
    from portal.box_status import BoxStatusWatcher
    from portal.content.info_push import InfoPusher
    from portal.remote import RemoteSession

    host, _, port = args.broker.rpartition(":")
    watcher = BoxStatusWatcher(factory, RemoteSession(host, int(port), args.pki, args.broker_user))
    pusher = InfoPusher(factory, watcher.session)
    watcher.on_vehicle, watcher.on_round = pusher.vehicle_seen, pusher.refresh
    return watcher
