"""Sign-up, login, lock-out, the TOTP second factor and sessions (portal/accounts.py,
portal/login.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pyotp
import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import (
    LoginLocked,
    LoginRefused,
    NotPermitted,
    SignupError,
    WorkshopDisabled,
)
from portal import accounts, login
from portal.accounts import Actor, Role
from portal.db.models import User
from tests.portal.conftest import FAST_HASHER, NOW, PASSWORD, at_once, sign_up, workshop_data


def _login(factory: sessionmaker[Session], name: str, password: str = PASSWORD, code: str | None = None,
           now: float = NOW) -> User:  # fmt: skip
    with factory() as session:
        return login.authenticate(session, name, password, code, hasher=FAST_HASHER, now=now)


def test_sign_up_and_log_in(factory: sessionmaker[Session]) -> None:
    owner = sign_up(factory, 1)
    assert owner.role is Role.OWNER and owner.workshop_id is not None
    user = _login(factory, "Owner1@Example.com ")
    assert user.id == owner.user_id
    with pytest.raises(SignupError, match="VAT id DE100000001 exists"):
        sign_up(factory, 1)
    with factory() as session, pytest.raises(SignupError, match="taken"):
        accounts.sign_up(session, workshop_data(2), owner_login="owner1@example.com",
                         owner_name="x", password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip
    with factory() as session, pytest.raises(SignupError, match="shorter"):
        accounts.sign_up(session, workshop_data(3), owner_login="o3@example.com",
                         owner_name="x", password="short", hasher=FAST_HASHER)  # fmt: skip
    with factory() as session, pytest.raises(SignupError, match="VAT identification"):
        accounts.sign_up(session, dataclasses.replace(workshop_data(3), vat_id="123"), owner_login="o3@example.com",
                         owner_name="x", password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip


def test_owner_adds_technician_technician_cannot(factory: sessionmaker[Session]) -> None:
    owner = sign_up(factory, 1)
    assert owner.workshop_id is not None
    with factory() as session, session.begin():
        tech = Actor.of(
            accounts.add_user(
                session,
                owner,
                owner.workshop_id,
                login="tech@example.com",
                name="Tech",
                password=PASSWORD,
                hasher=FAST_HASHER,
            )  # fmt: skip
        )
    assert tech.role is Role.TECHNICIAN and tech.workshop_id == owner.workshop_id
    assert _login(factory, "tech@example.com").id == tech.user_id
    with factory() as session, pytest.raises(NotPermitted, match="owner"):
        accounts.add_user(session, tech, owner.workshop_id, login="t2@example.com", name="T2",
                          password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip


def test_unknown_login_and_wrong_password_read_the_same(factory: sessionmaker[Session]) -> None:
    sign_up(factory, 1)
    with pytest.raises(LoginRefused) as wrong:
        _login(factory, "owner1@example.com", "wrong password!!")
    with pytest.raises(LoginRefused) as unknown:
        _login(factory, "nobody@example.com", "wrong password!!")
    assert str(wrong.value) == str(unknown.value)
    assert type(wrong.value) is type(unknown.value) is LoginRefused


@pytest.mark.parametrize("name", ["owner1@example.com", "nobody@example.com"])
def test_lock_out_after_failures(factory: sessionmaker[Session], name: str) -> None:
    """Five failures lock the login name (known or not) for the lock period, even with the right
    password; after it the right password works again."""
    sign_up(factory, 1)
    for i in range(login.MAX_FAILURES):
        with pytest.raises(LoginRefused) as refused:
            _login(factory, name, "wrong password!!", now=NOW + i)
        assert type(refused.value) is LoginRefused
    with pytest.raises(LoginLocked, match="Try again in 15 minutes"):
        _login(factory, name, now=NOW + 10)
    after = NOW + 10 + login.LOCK_SECONDS
    if name.startswith("owner"):
        assert _login(factory, name, now=after).login == name
    else:
        with pytest.raises(LoginRefused) as refused:
            _login(factory, name, now=after)
        assert type(refused.value) is LoginRefused


def test_failures_at_once_are_all_counted(factory: sessionmaker[Session]) -> None:
    """Guessing in parallel gains nothing: each failure is counted, the name ends up locked."""
    sign_up(factory, 1)

    def guess() -> str:
        try:
            _login(factory, "owner1@example.com", "wrong password!!")
        except LoginRefused as err:
            return type(err).__name__
        return "logged in"

    outcomes = at_once(2 * login.MAX_FAILURES, guess)
    assert set(outcomes) <= {"LoginRefused", "LoginLocked"}
    assert outcomes["LoginRefused"] >= login.MAX_FAILURES
    with pytest.raises(LoginLocked):
        _login(factory, "owner1@example.com", now=NOW + 1)


def test_success_resets_the_failure_count(factory: sessionmaker[Session]) -> None:
    sign_up(factory, 1)
    for _ in range(2):
        for i in range(login.MAX_FAILURES - 1):
            with pytest.raises(LoginRefused):
                _login(factory, "owner1@example.com", "wrong password!!", now=NOW + i)
        _login(factory, "owner1@example.com", now=NOW + 5)


def test_login_rehashes_when_parameters_change(factory: sessionmaker[Session]) -> None:
    sign_up(factory, 1)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    with factory() as session:
        before = accounts.find_user(session, "owner1@example.com")
        assert before is not None and stronger.check_needs_rehash(before.password_hash)
        login.authenticate(session, "owner1@example.com", PASSWORD, hasher=stronger, now=NOW)
    with factory() as session:
        after = accounts.find_user(session, "owner1@example.com")
        assert after is not None and not stronger.check_needs_rehash(after.password_hash)
        assert stronger.verify(after.password_hash, PASSWORD)


def test_totp_second_factor_and_replay(factory: sessionmaker[Session]) -> None:
    owner = sign_up(factory, 1)
    secret = login.new_totp_secret()
    totp = pyotp.TOTP(secret)
    assert totp_uri_ok(login.totp_uri(secret, "owner1@example.com"))
    with factory() as session, session.begin(), pytest.raises(LoginRefused, match="does not match"):
        login.enable_totp(
            session, owner, secret, "000000" if totp.at(NOW) != "000000" else "111111", now=NOW
        )
    with factory() as session, session.begin():
        login.enable_totp(session, owner, secret, totp.at(NOW), now=NOW)
    # the code that enabled it cannot log in (same time step), nor can a missing code
    with pytest.raises(LoginRefused):
        _login(factory, "owner1@example.com", code=totp.at(NOW), now=NOW + 1)
    with pytest.raises(LoginRefused):
        _login(factory, "owner1@example.com", now=NOW + 31)
    later = NOW + 60
    assert _login(factory, "owner1@example.com", code=totp.at(later), now=later).id == owner.user_id
    with pytest.raises(LoginRefused):  # replay of the same code in the same step
        _login(factory, "owner1@example.com", code=totp.at(later), now=later + 5)
    with pytest.raises(LoginRefused):  # an older step's code after a newer one was used
        _login(factory, "owner1@example.com", code=totp.at(later - 30), now=later + 5)


def totp_uri_ok(uri: str) -> bool:
    return uri.startswith("otpauth://totp/") and "owner1%40example.com" in uri


def test_disabled_workshop_cannot_log_in_and_its_sessions_end(
    factory: sessionmaker[Session], operator: Actor
) -> None:
    owner = sign_up(factory, 1)
    assert owner.workshop_id is not None
    with factory() as session:
        user = login.authenticate(
            session, "owner1@example.com", PASSWORD, hasher=FAST_HASHER, now=NOW
        )
        opened = login.open_session(session, user, now=NOW)
        session.commit()
    with factory() as session:
        actor, csrf = login.session_actor(session, opened.token, now=NOW + 1)
        assert actor == owner and csrf == opened.csrf_token
        login.check_csrf(csrf, opened.csrf_token)
        with pytest.raises(NotPermitted, match="CSRF"):
            login.check_csrf(csrf, "forged")
    with factory() as session, session.begin(), pytest.raises(NotPermitted, match="operator"):
        accounts.set_enabled(session, owner, owner.workshop_id, False)
    with factory() as session, session.begin():
        accounts.set_enabled(session, operator, owner.workshop_id, False)
    with pytest.raises(WorkshopDisabled):
        _login(factory, "owner1@example.com")
    with factory() as session, pytest.raises(LoginRefused, match="session has ended"):
        login.session_actor(session, opened.token, now=NOW + 2)
    with factory() as session, session.begin():
        accounts.set_enabled(session, operator, owner.workshop_id, True)
    assert _login(factory, "owner1@example.com").id == owner.user_id


def test_session_expires(factory: sessionmaker[Session]) -> None:
    sign_up(factory, 1)
    with factory() as session:
        user = login.authenticate(
            session, "owner1@example.com", PASSWORD, hasher=FAST_HASHER, now=NOW
        )
        opened = login.open_session(session, user, now=NOW)
        session.commit()
    with factory() as session:
        login.session_actor(session, opened.token, now=NOW + login.SESSION_SECONDS - 1)
        with pytest.raises(LoginRefused):
            login.session_actor(session, opened.token, now=NOW + login.SESSION_SECONDS)
        with pytest.raises(LoginRefused):
            login.session_actor(session, "not a token", now=NOW)


def test_second_factor_as_a_second_step(factory: sessionmaker[Session]) -> None:
    """Without a code, a right password of a user with a second factor is answered with
    SecondFactorNeeded (nothing counted, nothing reset); second_factor() then takes the code and
    counts a wrong one as a failed login."""
    from firmware_py.errors import SecondFactorNeeded
    from portal.db.models import LoginGuard

    owner = sign_up(factory, 1)
    secret = login.new_totp_secret()
    totp = pyotp.TOTP(secret)
    with factory() as session, session.begin():
        login.enable_totp(session, owner, secret, totp.at(NOW), now=NOW)
    with pytest.raises(LoginRefused):  # a wrong password: counted
        _login(factory, "owner1@example.com", "wrong password 123", now=NOW + 60)
    with pytest.raises(SecondFactorNeeded) as asked:
        _login(factory, "owner1@example.com", now=NOW + 60)
    assert asked.value.user_id == owner.user_id
    with factory() as session:
        assert session.get(LoginGuard, "owner1@example.com").failures == 1  # type: ignore[union-attr]
        with pytest.raises(LoginRefused, match="wrong or used code"):
            login.second_factor(session, owner.user_id, totp.at(NOW), now=NOW + 60)
        assert session.get(LoginGuard, "owner1@example.com").failures == 2  # type: ignore[union-attr]
        user = login.second_factor(session, owner.user_id, totp.at(NOW + 60), now=NOW + 60)
        assert user.id == owner.user_id
        assert session.get(LoginGuard, "owner1@example.com").failures == 0  # type: ignore[union-attr]


def test_a_new_session_prunes_expired_ones(factory: sessionmaker[Session]) -> None:
    from sqlalchemy import func, select

    from portal.db.models import WebSession

    sign_up(factory, 1)
    for at in (NOW, NOW + 10, NOW + login.SESSION_SECONDS + 5):
        with factory() as session:
            user = login.authenticate(session, "owner1@example.com", PASSWORD,
                                      hasher=FAST_HASHER, now=at)  # fmt: skip
            login.open_session(session, user, now=at)
            session.commit()
    with factory() as session:  # the first one expired (and was pruned), the others live
        assert session.scalar(select(func.count()).select_from(WebSession)) == 2
