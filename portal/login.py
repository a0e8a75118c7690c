"""Logging in: passwords (argon2, rehashed when the parameters change), the optional TOTP second
factor (RFC 6238, each time step usable once), lock-out after repeated failures, and server-side
sessions with a CSRF token each.

Lock-out is per login name, known or not: after :data:`MAX_FAILURES` failed logins the name is
locked for :data:`LOCK_SECONDS`, and an unknown name costs the same password check as a known one,
so neither the answer nor its timing tells which login names exist. Limiting requests per client
address is the web layer's (portal/web/guard.py). Failed attempts are committed even though the
login is refused, so :func:`authenticate` and :func:`second_factor` commit their own session. A
user with a second factor logs in in two steps: the password (answered with
:class:`SecondFactorNeeded`), then the code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from firmware_py.errors import (
    LoginLocked,
    LoginRefused,
    NotPermitted,
    SecondFactorNeeded,
    WorkshopDisabled,
)
from firmware_py.i18n import N_
from portal.accounts import HASHER, Actor, find_user, normalise_login, require_enabled
from portal.db.models import LoginGuard, PendingLogin, TotpSecret, User, WebSession

MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 12 * 3600
TOTP_STEP = 30
TOTP_WINDOW = 1
"""time steps accepted either side of now (clock drift of the authenticator)"""
PENDING_SECONDS = 300
"""how long the password step of a login with a second factor is remembered"""


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_hex(16))


def _ensure_guard(session: Session, login: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(LoginGuard)
        .values(login=login, failures=0, locked_until=0)
        .on_conflict_do_nothing(index_elements=["login"])
    )


def _fail(session: Session, login: str, now: int) -> None:
    """Count a failure (atomically); the one that reaches the limit locks the name."""
    _ensure_guard(session, login)
    failures = session.execute(
        update(LoginGuard)
        .where(LoginGuard.login == login)
        .values(failures=LoginGuard.failures + 1)
        .returning(LoginGuard.failures)
    ).scalar_one()
    if failures >= MAX_FAILURES:
        session.execute(
            update(LoginGuard)
            .where(LoginGuard.login == login)
            .values(failures=0, locked_until=now + LOCK_SECONDS)
        )
    session.commit()


def authenticate(
    session: Session,
    login: str,
    password: str,
    totp_code: str | None = None,
    *,
    hasher: PasswordHasher = HASHER,
    now: float | None = None,
) -> User:
    """The user with this login and password (and the current TOTP code if they set up a second
    factor); :class:`SecondFactorNeeded` when the password is right, the user has a second
    factor and no code was given (then :func:`second_factor`); :class:`LoginRefused` otherwise,
    :class:`LoginLocked` while locked out, :class:`WorkshopDisabled` for a disabled workshop's
    users. Runs its own transactions on
    ``session`` (give it one that is not in a transaction) and commits what it counts."""
    t = int(now if now is not None else time.time())
    login = normalise_login(login)
    _check_lock(session, login, t)
    found = find_user(session, login)
    user_id, stored = (found.id, found.password_hash) if found else (None, _dummy_hash(hasher))
    session.rollback()  # the slow hash checks below hold no transaction (on SQLite: no lock)
    try:
        ok = hasher.verify(stored, password) and user_id is not None
    except (VerificationError, InvalidHashError):
        ok = False
    rehashed = hasher.hash(password) if ok and hasher.check_needs_rehash(stored) else None
    user = session.get(User, user_id) if ok and user_id is not None else None
    if ok and user is not None and user.totp is not None and totp_code is None:
        # The password is right; the code comes in a second step. The failure count stays as
        # it is: a right password must not reset the count of wrong codes.
        if rehashed is not None and user.password_hash == stored:
            user.password_hash = rehashed
        session.commit()
        raise SecondFactorNeeded(N_("the password is right; now the code"), user_id=user.id)
    if user is not None and user.totp is not None:
        ok = _use_totp_code(session, user.totp, totp_code or "", t)
    if not ok or user is None:
        _fail(session, login, t)
        raise LoginRefused(N_("login refused: wrong login name, password or code"))
    if user.workshop is not None:
        require_enabled(user.workshop)
    if rehashed is not None and user.password_hash == stored:
        user.password_hash = rehashed
    session.execute(update(LoginGuard).where(LoginGuard.login == login).values(failures=0))
    session.commit()
    return user


def _check_lock(session: Session, login: str, now: int) -> None:
    guard = session.get(LoginGuard, login)
    if guard is not None and guard.locked_until > now:
        minutes = (guard.locked_until - now + 59) // 60
        raise LoginLocked(
            N_("too many failed logins for this login name"),
            hint=N_("Try again in {minutes} minutes, or ask the workshop's owner"),
            hint_values={"minutes": minutes},
        )


def second_factor(session: Session, user_id: int, code: str, *, now: float | None = None) -> User:
    """The second step of a login that :func:`authenticate` answered with
    :class:`SecondFactorNeeded`: the user if ``code`` is a current, unused code of theirs. A
    wrong code counts as a failed login of their login name (the same lock-out). Commits."""
    t = int(now if now is not None else time.time())
    user = session.get(User, user_id)
    if user is None:
        raise LoginRefused(N_("login refused: the user is gone"), hint=N_("Log in again"))
    _check_lock(session, user.login, t)
    if user.totp is None or not _use_totp_code(session, user.totp, code, t):
        _fail(session, user.login, t)
        raise LoginRefused(N_("login refused: wrong or used code"))
    if user.workshop is not None:
        require_enabled(user.workshop)
    session.execute(update(LoginGuard).where(LoginGuard.login == user.login).values(failures=0))
    session.commit()
    return user


def _use_totp_code(session: Session, totp: TotpSecret, code: str, now: int) -> bool:
    """Whether ``code`` is the code of a time step near ``now`` that is later than the last one
    used; if so that step becomes the last used (atomically: two logins with one code cannot
    both pass)."""
    generator = pyotp.TOTP(totp.secret, interval=TOTP_STEP)
    step_now = now // TOTP_STEP
    for step in range(step_now - TOTP_WINDOW, step_now + TOTP_WINDOW + 1):
        if step <= totp.last_step:
            continue
        if hmac.compare_digest(generator.at(step * TOTP_STEP), code.strip()):
            claimed = session.execute(
                update(TotpSecret)
                .where(TotpSecret.user_id == totp.user_id, TotpSecret.last_step < step)
                .values(last_step=step)
            )
            session.refresh(totp)
            return claimed.rowcount == 1  # type: ignore[attr-defined]
    return False


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, login: str, issuer: str = "VCI portal") -> str:
    """The ``otpauth://`` URI an authenticator app reads (as a QR code)."""
    return pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(name=login, issuer_name=issuer)


def enable_totp(
    session: Session, actor: Actor, secret: str, code: str, *, now: float | None = None
) -> None:
    """Turn on the second factor for the acting user, once they show a code of ``secret`` (so
    that their authenticator has it). The caller commits."""
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotPermitted(N_("no such user"), hint=N_("Log in again"))
    t = int(now if now is not None else time.time())
    user.totp = TotpSecret(user_id=user.id, secret=secret, last_step=0)
    session.flush()
    if not _use_totp_code(session, user.totp, code, t):
        user.totp = None
        session.flush()
        raise LoginRefused(
            N_("the code does not match the new secret"),
            hint=N_("Check the authenticator app's clock and enter the current code"),
        )


@dataclass(frozen=True)
class OpenSession:
    token: str
    """goes to the browser (cookie); the database keeps only its SHA-256"""
    csrf_token: str
    expires_at: int


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, user: User, *, now: float | None = None) -> OpenSession:
    """A new session for ``user``; sessions of anybody that have expired are deleted on the way."""
    t = int(now if now is not None else time.time())
    session.execute(delete(WebSession).where(WebSession.expires_at <= t))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_sha256=_token_key(token), user_id=user.id, csrf_token=csrf,
            created_at=t, expires_at=t + SESSION_SECONDS,
        )
    )  # fmt: skip
    session.flush()
    return OpenSession(token, csrf, t + SESSION_SECONDS)


def session_actor(session: Session, token: str, *, now: float | None = None) -> tuple[Actor, str]:
    """The actor and the CSRF token of a live session; :class:`LoginRefused` when the token is
    unknown or expired, :class:`WorkshopDisabled` when the workshop was disabled meanwhile."""
    t = int(now if now is not None else time.time())
    row = session.get(WebSession, _token_key(token))
    if row is None or row.expires_at <= t:
        raise LoginRefused(N_("the session has ended"), hint=N_("Log in again"))
    user = session.get(User, row.user_id)
    assert user is not None  # foreign key
    if user.workshop is not None and not user.workshop.enabled:
        raise WorkshopDisabled(
            N_("the workshop {name} is disabled"), values={"name": repr(user.workshop.name)}
        )
    return Actor.of(user), row.csrf_token


def check_csrf(expected: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(expected, given):
        raise NotPermitted(
            N_("the form's CSRF token is missing or wrong"), hint=N_("Reload the page")
        )


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_sha256 == _token_key(token)))


def end_sessions_of_workshop(session: Session, workshop_id: int) -> None:
    users = select(User.id).where(User.workshop_id == workshop_id)
    session.execute(delete(WebSession).where(WebSession.user_id.in_(users)))


class PendingLogins:
    """Logins whose password was right and whose authenticator code is still to come: a random
    token (in its own cookie) names the user for ``seconds``. Kept in the database (only the
    token's SHA-256), so the code may reach another portal process than the password did.
    ``clock``: the wall clock, shared by every process. The caller commits."""

    def __init__(
        self, seconds: float = PENDING_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self.seconds, self.clock = seconds, clock

    def add(self, session: Session, user_id: int) -> str:
        """A new pending login of ``user_id``; expired ones of anybody are deleted on the way."""
        now = int(self.clock())
        session.execute(delete(PendingLogin).where(PendingLogin.expires_at <= now))
        token = secrets.token_urlsafe(32)
        session.add(
            PendingLogin(
                token_sha256=_token_key(token), user_id=user_id, expires_at=now + int(self.seconds)
            )
        )
        session.flush()
        return token

    def user(self, session: Session, token: str | None) -> int | None:
        """The user of a pending login that has not expired, else None."""
        if not token:
            return None
        row = session.get(PendingLogin, _token_key(token))
        return row.user_id if row is not None and row.expires_at > int(self.clock()) else None

    def drop(self, session: Session, token: str | None) -> None:
        if token:
            session.execute(
                delete(PendingLogin).where(PendingLogin.token_sha256 == _token_key(token))
            )
