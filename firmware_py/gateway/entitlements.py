"""Entitlements: the tickets on this box and whether they allow a job - the one check the job
runner makes for the CLI, the tablet page and the portal alike.

``check`` has no side effects; the runner calls it once when a job starts (a programming job that
started under a valid ticket is never cut off by the ticket's end) and then ``consume`` (which
activates a ticket on first use and uses up one-use tickets).

What a ticket has used (its activation time, its uses) is kept in ``ticket_usage`` by ticket id for
good: removing a ticket and adding it again does not start it afresh. Each activation and use also
goes to the outbox (``ticket.activated``, ``ticket.used``), so the portal knows it too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.store import Store
from firmware_py.gateway.tariffs import (
    TARIFFS,
    JobKind,
    describe_job,
    required_scope,
    tariffs_allowing,
)
from firmware_py.gateway.ticket_token import (
    Ticket,
    TicketRefused,
    parse_revocations,
    parse_ticket,
    parse_time_beacon,
)
from firmware_py.gateway.trusted_time import TrustedClock
from firmware_py.i18n import N_, Text

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tickets (
        tid TEXT PRIMARY KEY, token TEXT NOT NULL, added_at REAL NOT NULL,
        activated_at REAL, uses_left INTEGER)""",
    # kept by ticket id for good, whatever is removed (tickets.activated_at/uses_left: unused
    # since this table; copied into it once below)
    """CREATE TABLE IF NOT EXISTS ticket_usage (
        tid TEXT PRIMARY KEY, activated_at REAL, uses_used INTEGER NOT NULL DEFAULT 0)""",
    "CREATE TABLE IF NOT EXISTS revoked (tid TEXT PRIMARY KEY)",
    # a use held for a request that is consumed when the portal acknowledges it (help desk)
    """CREATE TABLE IF NOT EXISTS ticket_reservations (
        ref TEXT PRIMARY KEY, tid TEXT NOT NULL, job TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS revocation_state (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)",
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    ticket_id: str | None = None
    would_allow: tuple[str, ...] = ()
    job: str = ""
    vin: str | None = None
    """the vehicle the chosen ticket is bound to: the job runs only on that car"""
    why: Text | None = None
    """``reason`` as a text to translate (firmware_py/i18n.py); None: ``reason`` as it is"""


@dataclass(frozen=True)
class Usage:
    """What a ticket has used, from the ledger."""

    activated_at: float | None
    uses_left: int | None
    """what is left, uses held for requests waiting for the portal taken off"""
    reserved: int = 0


@dataclass(frozen=True)
class TicketInfo:
    tid: str
    tariff: str
    tariff_name: str
    scopes: tuple[str, ...]
    vin: str | None
    state: str
    """valid, not yet valid, expired, used up, revoked, not activated"""
    valid_until: float | None
    time_left: float | None
    uses_left: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "time_left_text": _duration(self.time_left) if self.time_left is not None else None,
        }


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min"


#: the refusal for a ticket in a state, one whole sentence each (translated: docs/translating.md)
STATE_REASONS = {
    "expired": N_("ticket {ticket} is expired"),
    "revoked": N_("ticket {ticket} is revoked"),
    "used up": N_("ticket {ticket} is used up"),
    "not yet valid": N_("ticket {ticket} is not yet valid"),
    "held by a request waiting for the portal": N_(
        "ticket {ticket} is held by a request waiting for the portal"
    ),
}


class Entitlements:
    def __init__(
        self,
        store: Store,
        portal_keys: Mapping[str, Ed25519PublicKey],
        device_id: str,
        clock: TrustedClock,
    ) -> None:
        self.store = store
        self.keys = dict(portal_keys)
        self.device_id = device_id
        self.clock = clock
        store.ensure_schema("entitlements", SCHEMA)
        self.outbox = Outbox(store)
        self._adopt_old_usage()

    def _adopt_old_usage(self) -> None:
        """Usage that boxes before the ledger kept in the tickets table joins the ledger."""
        db = self.store.connection()
        rows = db.execute(
            "SELECT tid, token, activated_at, uses_left FROM tickets WHERE tid NOT IN"
            " (SELECT tid FROM ticket_usage) AND (activated_at IS NOT NULL OR uses_left IS NOT NULL)"
        ).fetchall()
        for row in rows:
            try:
                uses = parse_ticket(row["token"], self.keys).uses
            except TicketRefused:
                uses = None
            left = row["uses_left"]
            used = max(0, uses - left) if uses is not None and left is not None else 0
            with self.store.transaction() as tx:
                tx.execute(
                    "INSERT OR IGNORE INTO ticket_usage(tid, activated_at, uses_used) VALUES (?,?,?)",
                    (row["tid"], row["activated_at"], used),
                )

    # -- tickets ---------------------------------------------------------------------------
    def add_ticket(self, token: str) -> TicketInfo:
        """Verify and keep a ticket; :class:`TicketRefused` (with ``reason``) if it is no good."""
        ticket = parse_ticket(token, self.keys)
        if ticket.device != self.device_id:
            raise TicketRefused(
                "other_device",
                N_("the ticket is for box {device}, this is {device_id}"),
                values={"device": repr(ticket.device), "device_id": repr(self.device_id)},
                hint=N_("Ask the portal for a ticket for this box"),
            )
        self.clock.observe_signed_time(ticket.iat)  # the portal signed when it issued it
        if self._is_revoked(ticket.tid):
            raise TicketRefused(
                "revoked", N_("ticket {tid} was revoked by the portal"), values={"tid": ticket.tid}
            )
        now = self.clock.now()
        if ticket.exp is not None and now >= ticket.exp:
            raise TicketRefused(
                "expired",
                N_("ticket {tid} expired"),
                values={"tid": ticket.tid},
                hint=N_("Buy a new ticket"),
            )
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO tickets(tid, token, added_at) VALUES (?,?,?) ON CONFLICT(tid) DO NOTHING",
                (ticket.tid, ticket.token, now),
            )
        return self._info(ticket, self._usage(ticket), now)

    def remove_ticket(self, tid: str) -> bool:
        """Remove a ticket from the box; what it used stays in the ledger (adding it again does
        not start it afresh)."""
        with self.store.transaction() as db:
            return db.execute("DELETE FROM tickets WHERE tid = ?", (tid,)).rowcount > 0

    def _usage(self, ticket: Ticket) -> Usage:
        row = (
            self.store.connection()
            .execute(
                "SELECT activated_at, uses_used FROM ticket_usage WHERE tid = ?", (ticket.tid,)
            )
            .fetchone()
        )
        activated = row["activated_at"] if row else None
        used = row["uses_used"] if row else 0
        held = int(
            self.store.connection()
            .execute("SELECT COUNT(*) FROM ticket_reservations WHERE tid = ?", (ticket.tid,))
            .fetchone()[0]
        )
        left = None if ticket.uses is None else max(0, ticket.uses - used - held)
        return Usage(activated, left, held)

    def _stored(self) -> list[tuple[Ticket, Usage]]:
        out = []
        for row in (
            self.store.connection()
            .execute("SELECT tid, token FROM tickets ORDER BY added_at")
            .fetchall()
        ):
            try:
                ticket = parse_ticket(row["token"], self.keys)
                out.append((ticket, self._usage(ticket)))
            except TicketRefused as err:  # e.g. its key was withdrawn from the box
                log.warning("stored ticket %s no longer verifies: %s", row["tid"], err)
        return out

    def _is_revoked(self, tid: str) -> bool:
        return (
            self.store.connection()
            .execute("SELECT 1 FROM revoked WHERE tid = ?", (tid,))
            .fetchone()
            is not None
        )

    def _window(self, ticket: Ticket, row: Usage) -> tuple[float | None, float | None]:
        start = ticket.nbf
        end: float | None = ticket.exp
        if ticket.duration is not None and row.activated_at is not None:
            activated_end = row.activated_at + ticket.duration
            end = activated_end if end is None else min(end, activated_end)
        return start, end

    def _state(self, ticket: Ticket, row: Usage, now: float) -> str:
        if self._is_revoked(ticket.tid):
            return "revoked"
        start, end = self._window(ticket, row)
        if start is not None and now < start:
            return "not yet valid"
        if end is not None and now >= end:
            return "expired"
        if row.uses_left is not None and row.uses_left <= 0:
            return "held by a request waiting for the portal" if row.reserved else "used up"
        if ticket.duration is not None and row.activated_at is None:
            return "not activated"
        return "valid"

    def _info(self, ticket: Ticket, row: Usage, now: float) -> TicketInfo:
        start, end = self._window(ticket, row)
        if ticket.duration is not None and row.activated_at is None:
            left: float | None = float(ticket.duration)
        else:
            left = None if end is None else max(0.0, end - now)
        tariff = TARIFFS[ticket.tariff]
        return TicketInfo(
            ticket.tid,
            ticket.tariff,
            tariff.name,
            tuple(sorted(ticket.scopes)),
            ticket.vin,
            self._state(ticket, row, now),
            end,
            left,
            row.uses_left,
        )

    def tickets(self) -> list[TicketInfo]:
        now = self.clock.now()
        return [self._info(t, row, now) for t, row in self._stored()]

    # -- the check -----------------------------------------------------------------------------
    def check(
        self, job: str | JobKind, *, vin: str | None, params: Mapping[str, Any] | None = None
    ) -> Decision:
        """Whether a ticket allows ``job`` with these ``params`` (a raw request needs the scope
        of what it does: :func:`firmware_py.gateway.tariffs.required_scope`)."""
        try:
            kind = JobKind(job)
        except ValueError:
            return Decision(False, f"unknown job {job!r}", job=str(job))
        params = params or {}
        scope = required_scope(kind, params)
        would = tariffs_allowing(kind, scope)
        label = describe_job(kind, params)
        if scope is None:
            return Decision(True, "free", job=label)
        now = self.clock.now()
        reasons: list[Text] = []
        candidates = []
        for ticket, usage in self._stored():
            tid = ticket.tid
            if scope not in ticket.scopes:
                reasons.append(Text(
                    N_("ticket {ticket} ({tariff}) does not include {scope}"),
                    {"ticket": tid, "tariff": TARIFFS[ticket.tariff].name, "scope": scope.value},
                ))  # fmt: skip
                continue
            if ticket.vin is not None and vin is not None and ticket.vin != vin:
                reasons.append(Text(
                    N_("ticket {ticket} is for vehicle {vin}, this is {this_vin}"),
                    {"ticket": tid, "vin": ticket.vin, "this_vin": vin},
                ))  # fmt: skip
                continue
            if ticket.vin is not None and vin is None:
                reasons.append(Text(
                    N_("ticket {ticket} is bound to vehicle {vin}; identify the vehicle first"),
                    {"ticket": tid, "vin": ticket.vin},
                ))  # fmt: skip
                continue
            state = self._state(ticket, usage, now)
            if state in ("valid", "not activated"):
                candidates.append((ticket, usage))
            else:
                reasons.append(Text(STATE_REASONS.get(state, N_("ticket {ticket} is {state}")),
                                    {"ticket": tid, "state": state}))  # fmt: skip
        if not candidates:
            why = (
                Text.join(reasons)
                if reasons
                else Text(N_("no ticket on this box includes {scope}"), {"scope": scope.value})
            )
            return Decision(False, str(why), None, would, label, why=why)
        # Prefer tickets with a running time over one-use tickets, and the one ending first.
        candidates.sort(
            key=lambda tr: (tr[1].uses_left is not None, self._window(*tr)[1] or float("inf"))
        )
        chosen = candidates[0][0]
        return Decision(True, f"ticket {chosen.tid}", chosen.tid, would, label, chosen.vin)

    def consume(self, decision: Decision) -> None:
        """The job runs under this ticket: activate it (first use) and count a use, in the
        ledger and, in the same transaction, in the outbox for the portal."""
        if not decision.allowed or decision.ticket_id is None:
            return
        with self.store.transaction() as db:
            self._count_use(db, decision.ticket_id, decision.job)

    def reserve(self, db: sqlite3.Connection, decision: Decision, ref: str) -> None:
        """Hold a use of the decision's ticket for ``ref`` (inside the caller's transaction,
        with what it sends): it is no longer offered to other jobs, and is consumed by
        :meth:`deliver` when the portal acknowledges ``ref``, never before."""
        if decision.allowed and decision.ticket_id is not None:
            db.execute(
                "INSERT OR IGNORE INTO ticket_reservations(ref, tid, job) VALUES (?,?,?)",
                (ref, decision.ticket_id, decision.job),
            )

    def deliver(self, db: sqlite3.Connection, ref: str) -> bool:
        """The portal acknowledged ``ref``: consume the use held for it, once (a second
        acknowledgement finds nothing held). Inside the caller's transaction."""
        row = db.execute(
            "SELECT tid, job FROM ticket_reservations WHERE ref = ?", (ref,)
        ).fetchone()
        if row is None:
            return False
        db.execute("DELETE FROM ticket_reservations WHERE ref = ?", (ref,))
        self._count_use(db, row["tid"], row["job"])
        return True

    def _count_use(self, db: sqlite3.Connection, tid: str, job: str) -> None:
        now = self.clock.now()
        db.execute("INSERT OR IGNORE INTO ticket_usage(tid) VALUES (?)", (tid,))
        activated = db.execute(
            "UPDATE ticket_usage SET activated_at = ? WHERE tid = ? AND activated_at IS NULL",
            (now, tid),
        ).rowcount
        db.execute("UPDATE ticket_usage SET uses_used = uses_used + 1 WHERE tid = ?", (tid,))
        used = db.execute("SELECT uses_used FROM ticket_usage WHERE tid = ?", (tid,)).fetchone()
        body = {"ticket": tid, "job": job, "time": now, "uses_used": used[0]}
        if activated:
            self.outbox.insert(db, "ticket.activated", body, f"ticket-{tid}-activated")
        self.outbox.insert(db, "ticket.used", body, f"ticket-{tid}-use-{used[0]}")

    def apply_revocations(self, signed_list: str) -> int:
        """Apply a revocation list signed by the portal; older lists than the last one are ignored.
        Returns the number of tickets now revoked."""
        signed = parse_revocations(signed_list, self.keys)
        seq, revoked = signed.seq, signed.revoked
        self.clock.observe_signed_time(signed.iat)
        with self.store.transaction() as db:
            row = db.execute("SELECT seq FROM revocation_state WHERE id = 1").fetchone()
            if row is not None and seq <= row["seq"]:
                return 0
            db.executemany("INSERT OR IGNORE INTO revoked(tid) VALUES (?)", [(t,) for t in revoked])
            db.execute(
                "INSERT INTO revocation_state(id, seq) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq",
                (seq,),
            )
        return len(revoked)

    def observe_time_beacon(self, beacon: str) -> bool:
        """A time beacon signed by the portal for this box moves trusted time forward (only
        forward); :class:`TicketRefused` if it is not one."""
        return self.clock.observe_signed_time(parse_time_beacon(beacon, self.keys, self.device_id))
