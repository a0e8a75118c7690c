"""Tickets and revocation lists delivered to their boxes over the broker link: nobody copies a
ticket from the portal to the box.

A purchase queues its ticket's delivery in the transaction that books it (portal/credit.py);
:func:`revoke_purchase` puts the ticket on the revocation list (in the database, so that every
portal process sends the same list) and queues the list's delivery. :class:`DeliveryWorker` publishes what is pending to its box (``ticket.deliver``,
``ticket.revoke``, QoS 1, a fresh message id each attempt) and marks a delivery done only on the
box's ``ticket.ack``, which the box sends after it stored the ticket or applied the list, or
refused it with the reason (a ticket for another box): a refusal is final and shown to the
workshop. Unacknowledged deliveries go again with a backoff that doubles up to
:data:`RETRY_CAP`, and at once when the worker's broker connection comes back. Adding a ticket
is idempotent on the box, so a delivery that arrives twice leaves one ticket.

An acknowledgement counts only from the response topic of the box the delivery is for (the
broker lets only that box publish there), never by a field of the message.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.cloud import topics
from firmware_py.cloud.schema import Message, ProtocolError
from firmware_py.i18n import N_, Language
from portal.accounts import Actor, require_operator
from portal.db.engine import write_transaction
from portal.db.models import Delivery, DeliveryKind, DeliveryState, Purchase, RevokedTicket
from portal.i18n import portal_language
from portal.tickets import RevocationList

log = logging.getLogger(__name__)
RETRY_FIRST = 5
"""seconds before an unacknowledged delivery goes again; doubled each time up to RETRY_CAP"""
RETRY_CAP = 120
BATCH = 50


@dataclass(frozen=True)
class Revocation:
    """The key that signs the revocation list when it is sent, and the reference tool's list
    file beside the keys (``vci-portal revoke``), whose entries the list carries too."""

    revocations: RevocationList
    kid: str
    key: Any


def revoke_purchase(
    factory: sessionmaker[Session], actor: Actor, purchase_id: int, *, now: float | None = None
) -> Delivery:
    """The operator revokes a purchase's ticket: it goes on the revocation list, which is kept
    in the database (every portal process, on any machine, sends the same list), and the list's
    delivery to the purchase's box is queued (a ticket delivery still pending is refused by the
    box once the list is there)."""
    require_operator(actor)
    with write_transaction(factory) as session:
        purchase = session.get(Purchase, purchase_id)
        if purchase is None:
            from firmware_py.errors import NotPermitted

            raise NotPermitted(
                N_("there is no purchase {purchase_id}"),
                values={"purchase_id": purchase_id},
                hint=N_("Check the number"),
            )
        return queue_revocation(session, purchase, actor.user_id, now)


def queue_revocation(
    session: Session, purchase: Purchase, revoked_by: int | None, now: float | None = None
) -> Delivery:
    """Put ``purchase``'s ticket on the database's revocation list (once) and queue the list's
    delivery to its box."""
    t = int(now if now is not None else time.time())
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(RevokedTicket)
        .values(ticket_id=purchase.ticket_id, revoked_by=revoked_by, revoked_at=t)
        .on_conflict_do_nothing(index_elements=["ticket_id"])
    )
    delivery = Delivery(
        purchase_id=purchase.id, device=purchase.device, kind=DeliveryKind.REVOCATION.value,
        state=DeliveryState.PENDING.value, attempts=0, next_attempt_at=0, created_at=t,
    )  # fmt: skip
    session.add(delivery)
    session.flush()
    return delivery


def revoke_ticket(
    factory: sessionmaker[Session], ticket_id: str, revocations: RevocationList
) -> tuple[int, Delivery | None]:
    """``vci-portal revoke TID`` (whoever has the keys and the database): the ticket goes on the
    reference tool's revocation list; when the portal sold it, it goes on the database's list
    too and the list's delivery to its box is queued. Returns the file list's sequence and the
    delivery (None: no purchase has this ticket)."""
    with write_transaction(factory) as session:
        sequence = revocations.revoke(ticket_id)
        purchase = session.scalar(select(Purchase).where(Purchase.ticket_id == ticket_id))
        if purchase is None:
            return sequence, None
        return sequence, queue_revocation(session, purchase, None)


def signed_revocations(db: Session, revocation: Revocation) -> str:
    """The revocation list as a box gets it, signed now: the tickets revoked in the database and
    those of the reference tool's file."""
    revoked = list(db.scalars(select(RevokedTicket.ticket_id)))  # one statement: one snapshot
    return revocation.revocations.export(revocation.key, revocation.kid, revoked)


def states(session: Session, purchase_ids: list[int]) -> dict[int, list[Delivery]]:
    """The deliveries of these purchases, oldest first (for the workshop's dashboard)."""
    out: dict[int, list[Delivery]] = {}
    if purchase_ids:
        rows = session.scalars(
            select(Delivery).where(Delivery.purchase_id.in_(purchase_ids)).order_by(Delivery.id)
        )
        for row in rows:
            out.setdefault(row.purchase_id, []).append(row)
    return out


_SAID = {
    (DeliveryKind.TICKET.value, DeliveryState.DELIVERED.value): N_("ticket delivered to {device}"),
    (DeliveryKind.TICKET.value, DeliveryState.REFUSED.value): N_(
        "ticket refused by {device}: {why}"
    ),
    (DeliveryKind.TICKET.value, None): N_("ticket on its way to {device}"),
    (DeliveryKind.REVOCATION.value, DeliveryState.DELIVERED.value): N_(
        "revocation delivered to {device}"
    ),
    (DeliveryKind.REVOCATION.value, DeliveryState.REFUSED.value): N_(
        "revocation refused by {device}: {why}"
    ),
    (DeliveryKind.REVOCATION.value, None): N_("revocation on its way to {device}"),
}
"""what the workshop reads of a delivery, by kind and state (None: still on its way)"""


def describe(delivery: Delivery, reader: Language | None = None) -> str:
    """One line for people, in ``reader``'s language (English by default): ``ticket delivered to
    box-1``, ``... refused by box-1: why`` (the box's reason as it sent it)."""
    reader = reader or portal_language(None)
    ticket = delivery.kind == DeliveryKind.TICKET.value
    kind = DeliveryKind.TICKET.value if ticket else DeliveryKind.REVOCATION.value
    state = delivery.state if delivery.state in (
        DeliveryState.DELIVERED.value, DeliveryState.REFUSED.value) else None  # fmt: skip
    said = reader.gettext(_SAID[(kind, state)], device=delivery.device, why=delivery.refusal or "")
    if state is None and delivery.attempts:
        return reader.ngettext(
            "{said} ({n} attempt)", "{said} ({n} attempts)", delivery.attempts, said=said
        )
    return said


class DeliveryWorker:
    """Sends pending deliveries through ``session`` (a :class:`portal.remote.RemoteSession` of a
    portal user the broker lets serve the boxes) and takes the boxes' acknowledgements from its
    inbox. Call :meth:`step` repeatedly, or :meth:`run` in a thread."""

    def __init__(
        self, factory: sessionmaker[Session], session: Any, revocation: Revocation
    ) -> None:
        self.factory = factory
        self.session = session
        self.revocation = revocation
        self._was_connected = True
        self._subscribed: set[str] = set()

    def step(self, now: float | None = None) -> int:
        """Take the acknowledgements that arrived, then send what is due; returns how many
        deliveries were sent."""
        self.take_answers()
        t = int(now if now is not None else time.time())
        connected = bool(self.session.client.is_connected())
        if connected and not self._was_connected:
            # back after an outage: what waited goes now, not at the end of its backoff
            with write_transaction(self.factory) as db:
                db.execute(
                    update(Delivery)
                    .where(Delivery.state == DeliveryState.PENDING.value)
                    .values(next_attempt_at=0)
                )
        self._was_connected = connected
        if not connected:
            return 0  # paho would queue them; they go when the link is back, with fresh ids
        sent = 0
        with write_transaction(self.factory) as db:
            due = list(
                db.scalars(
                    select(Delivery)
                    .where(
                        Delivery.state == DeliveryState.PENDING.value,
                        Delivery.next_attempt_at <= t,
                    )
                    .order_by(Delivery.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            for delivery in due:
                delivery.attempts += 1
                try:
                    message = self._message(db, delivery)
                    message.encode()  # one larger than a message may be is logged, tried later
                except ProtocolError as err:
                    log.error(
                        "delivery %d to %s cannot be sent: %s", delivery.id, delivery.device, err
                    )
                else:
                    self._subscribe(delivery.device)
                    self.session.send(delivery.device, message, wait=False, expiry=RETRY_CAP)
                    sent += 1
                delay = min(RETRY_CAP, RETRY_FIRST * 2 ** (delivery.attempts - 1))
                delivery.next_attempt_at = t + delay
        return sent

    def _message(self, db: Session, delivery: Delivery) -> Message:
        if delivery.kind == DeliveryKind.TICKET.value:
            purchase = db.get(Purchase, delivery.purchase_id)
            assert purchase is not None  # a foreign key
            body = {"delivery": delivery.id, "ticket": purchase.ticket}
            return Message("ticket.deliver", body, time=time.time())
        signed = signed_revocations(db, self.revocation)
        return Message(
            "ticket.revoke", {"delivery": delivery.id, "revocations": signed}, time=time.time()
        )

    def _subscribe(self, device: str) -> None:
        topic = topics.responses(device, self.session.user)
        if topic not in self._subscribed:
            codes = self.session.subscribe(topic)
            if not any(getattr(c, "is_failure", False) for c in codes):
                self._subscribed.add(topic)

    def take_answers(self) -> int:
        """Apply the ``ticket.ack`` messages in the session's inbox; returns how many counted."""
        taken = 0
        while True:
            try:
                topic, message = self.session.inbox.get_nowait()
            except queue.Empty:
                return taken
            parsed = topics.parse(topic)
            if message.type != "ticket.ack" or parsed is None or parsed[1] != "res":
                continue
            taken += self._acknowledged(parsed[0], message.body)

    def _acknowledged(self, box: str, body: dict[str, Any]) -> int:
        delivery_id = body.get("delivery")
        if not isinstance(delivery_id, int) or isinstance(delivery_id, bool):
            return 0
        error = body.get("error")
        if body.get("ok") is True:
            outcome: dict[str, Any] = {"state": DeliveryState.DELIVERED.value}
        else:
            message = error.get("message") if isinstance(error, dict) else None
            outcome = {
                "state": DeliveryState.REFUSED.value,
                "refusal": str(message or "refused without a reason")[:500],
            }
        # One conditional UPDATE, not read-then-write: the workers of several portal processes
        # hear the same answers (they share the portal user's response topic), and of two
        # answers to one delivery taken at once the first to commit decides; the other finds
        # it no longer pending (PostgreSQL checks the condition again after the row's lock).
        with write_transaction(self.factory) as db:
            done = db.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.device == box,  # only the box the delivery is for answers for it
                    Delivery.state == DeliveryState.PENDING.value,  # not twice (a redelivery's)
                )
                .values(**outcome, done_at=int(time.time()))
                .execution_options(synchronize_session=False)
            )
            return int(done.rowcount)  # type: ignore[attr-defined]

    def pending(self) -> int:
        with self.factory() as db:
            rows = db.scalars(
                select(Delivery.id).where(Delivery.state == DeliveryState.PENDING.value)
            )
            return len(list(rows))

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Deliver until ``stop`` is set; a failing round is logged and the next one follows."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # the database or the broker away for a moment: try again
                log.exception("ticket delivery round failed")
            stop.wait(interval)
