"""Workshops, their users, and who may do what: the portal's account services.

Plain functions over a SQLAlchemy :class:`~sqlalchemy.orm.Session` (the web layer's routes call
them and stay thin). Every call that touches a workshop's data takes the acting user as an
:class:`Actor` and refuses (:class:`NotPermitted`) when the actor belongs to another workshop;
operators (the platform) act on any workshop but belong to none. Logging in, second factors and
sessions are portal/login.py.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from firmware_py.errors import NotPermitted, SignupError, WorkshopDisabled
from firmware_py.i18n import N_, Text
from portal.db.models import Role, User, Workshop

HASHER = PasswordHasher()
"""argon2id with the library's current recommended parameters (RFC 9106's second choice)"""

MIN_PASSWORD = 12
LOGIN_PATTERN = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,63}")
VAT_ID_PATTERN = re.compile(r"[A-Z]{2}[0-9A-Z+*.]{2,12}")
"""the shape of an EU VAT identification number (country prefix, 2-12 characters)"""


@dataclass(frozen=True)
class Actor:
    """Who is acting: a logged-in user as the services see them."""

    user_id: int
    role: Role
    workshop_id: int | None

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.id, Role(user.role), user.workshop_id)


@dataclass(frozen=True)
class WorkshopData:
    """What a workshop signs up with; the invoice's buyer."""

    name: str
    street: str
    postcode: str
    city: str
    country: str
    vat_id: str

    def checked(self) -> WorkshopData:
        vat_id = self.vat_id.replace(" ", "").upper()
        country = self.country.strip().upper()
        for field, value in (
            (N_("name"), self.name), (N_("street"), self.street), (N_("postcode"), self.postcode),
            (N_("city"), self.city),
        ):  # fmt: skip
            if not value.strip():
                raise SignupError(N_("the workshop's {field} is empty"),
                                  values={"field": Text(field)}, hint=N_("Fill it in"))  # fmt: skip
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise SignupError(
                N_("the country {country} is not a two-letter code"),
                values={"country": repr(self.country)},
                hint=N_("Give e.g. DE"),
            )
        if not VAT_ID_PATTERN.fullmatch(vat_id):
            raise SignupError(
                N_("the VAT id {vat_id} is not a VAT identification number"),
                values={"vat_id": repr(self.vat_id)},
                hint=N_("Give it with its country prefix, e.g. DE123456789"),
            )
        return WorkshopData(
            self.name.strip(), self.street.strip(), self.postcode.strip(), self.city.strip(),
            country, vat_id,
        )  # fmt: skip


def normalise_login(login: str) -> str:
    return login.strip().lower()


def _check_new_user(login: str, password: str) -> str:
    login = normalise_login(login)
    if not LOGIN_PATTERN.fullmatch(login):
        raise SignupError(N_("{login} is not an e-mail address"), values={"login": repr(login[:80])},
                          hint=N_("Log in with e-mail"))  # fmt: skip
    if len(password) < MIN_PASSWORD:
        raise SignupError(
            N_("the password is shorter than {n} characters"),
            values={"n": MIN_PASSWORD},
            hint=N_("Choose a longer one (a passphrase of a few words)"),
        )
    return login


def _new_user(
    session: Session, *, login: str, name: str, password: str, role: Role,
    workshop: Workshop | None, hasher: PasswordHasher, now: float | None,
) -> User:  # fmt: skip
    login = _check_new_user(login, password)
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise SignupError(N_("the login {login} is taken"), values={"login": login},
                          hint=N_("Log in, or use another address"))  # fmt: skip
    user = User(
        login=login, name=name.strip() or login, role=role.value,
        password_hash=hasher.hash(password), workshop=workshop,
        created_at=int(now if now is not None else time.time()),
    )  # fmt: skip
    session.add(user)
    try:
        session.flush()
    except IntegrityError as err:  # the same login signed up at the same moment
        raise SignupError(
            N_("the login {login} is taken"),
            values={"login": login},
            hint=N_("Log in, or use another address"),
        ) from err
    return user


def sign_up(
    session: Session,
    data: WorkshopData,
    *,
    owner_login: str,
    owner_name: str,
    password: str,
    hasher: PasswordHasher = HASHER,
    now: float | None = None,
) -> User:
    """A new workshop and its owner; the caller commits. Refused when the VAT id or the login
    is taken."""
    data = data.checked()
    if session.scalar(select(Workshop.id).where(Workshop.vat_id == data.vat_id)) is not None:
        raise SignupError(
            N_("a workshop with the VAT id {vat_id} exists"),
            values={"vat_id": data.vat_id},
            hint=N_("Ask its owner to add you as a user"),
        )
    workshop = Workshop(
        name=data.name, street=data.street, postcode=data.postcode, city=data.city,
        country=data.country, vat_id=data.vat_id, enabled=True,
        created_at=int(now if now is not None else time.time()),
    )  # fmt: skip
    session.add(workshop)
    return _new_user(
        session, login=owner_login, name=owner_name, password=password, role=Role.OWNER,
        workshop=workshop, hasher=hasher, now=now,
    )  # fmt: skip


def add_user(
    session: Session,
    actor: Actor,
    workshop_id: int,
    *,
    login: str,
    name: str,
    password: str,
    role: Role = Role.TECHNICIAN,
    hasher: PasswordHasher = HASHER,
    now: float | None = None,
) -> User:
    """A technician (or a second owner) for a workshop, added by its owner or an operator."""
    workshop = workshop_for(session, actor, workshop_id)
    if not (actor.is_operator or actor.role is Role.OWNER):
        raise NotPermitted(N_("only the workshop's owner adds users"), hint=N_("Ask the owner"))
    if role is Role.OPERATOR:
        raise NotPermitted(N_("operators belong to no workshop"), hint=N_("Use add_operator"))
    return _new_user(
        session, login=login, name=name, password=password, role=role, workshop=workshop,
        hasher=hasher, now=now,
    )  # fmt: skip


def add_operator(
    session: Session, *, login: str, name: str, password: str,
    hasher: PasswordHasher = HASHER, now: float | None = None,
) -> User:  # fmt: skip
    """A portal operator (set up from the command line on the portal's machine only)."""
    return _new_user(
        session, login=login, name=name, password=password, role=Role.OPERATOR, workshop=None,
        hasher=hasher, now=now,
    )  # fmt: skip


def workshop_for(session: Session, actor: Actor, workshop_id: int) -> Workshop:
    """The workshop ``workshop_id`` if ``actor`` may see it (its own users, operators)."""
    if not actor.is_operator and actor.workshop_id != workshop_id:
        raise NotPermitted(
            N_("this belongs to another workshop"),
            hint=N_("Log in with an account of that workshop"),
        )
    workshop = session.get(Workshop, workshop_id)
    if workshop is None:
        raise NotPermitted(N_("there is no workshop {id}"), values={"id": workshop_id},
                           hint=N_("Check the workshop"))  # fmt: skip
    return workshop


def require_enabled(workshop: Workshop) -> None:
    if not workshop.enabled:
        raise WorkshopDisabled(
            N_("the workshop {name} is disabled"), values={"name": repr(workshop.name)}
        )


def require_operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise NotPermitted(
            N_("only the portal's operator may do this"), hint=N_("Ask the portal's operator")
        )


def set_enabled(session: Session, actor: Actor, workshop_id: int, enabled: bool) -> Workshop:
    """The operator disables a workshop (its users cannot log in, its purchases are refused,
    its open sessions end) or enables it again."""
    require_operator(actor)
    workshop = workshop_for(session, actor, workshop_id)
    if enabled and workshop.deleted_at is not None:
        raise NotPermitted(
            N_("the workshop {workshop_id} was deleted"),
            values={"workshop_id": workshop_id},
            hint=N_("It signs up anew"),
        )
    workshop.enabled = enabled
    if not enabled:
        from portal.login import end_sessions_of_workshop

        end_sessions_of_workshop(session, workshop_id)
    return workshop


def workshops(session: Session, actor: Actor) -> list[Workshop]:
    """All workshops (operators), or the actor's own."""
    query = select(Workshop).order_by(Workshop.id)
    if not actor.is_operator:
        query = query.where(Workshop.id == actor.workshop_id)
    return list(session.scalars(query))


def users_of(session: Session, actor: Actor, workshop_id: int) -> list[User]:
    workshop_for(session, actor, workshop_id)
    return list(session.scalars(select(User).where(User.workshop_id == workshop_id)))


def find_user(session: Session, login: str) -> User | None:
    return session.scalar(select(User).where(User.login == normalise_login(login)))
