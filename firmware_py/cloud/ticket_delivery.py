"""The box's side of ticket delivery (docs/tickets.md): a ``ticket.deliver`` from the portal is
added exactly as ``vci ticket add`` adds a ticket (the box's trusted portal keys, its device id,
its revocation list), a ``ticket.revoke`` applies a signed revocation list as ``vci ticket
revocations`` does; the tablet's ticket list follows (``tickets.changed`` on the event bus).

The ``ticket.ack`` answer goes after the ticket is stored (or the list applied): ``ok`` true, or
false with the refusal and its reason, which is final (the portal stops sending and shows it).
A ticket delivered twice is stored once and acknowledged each time."""

from __future__ import annotations

import logging
from typing import Any

from firmware_py.cloud.schema import Message
from firmware_py.errors import TicketError, VciError

log = logging.getLogger(__name__)
MAX_TOKEN = 8192


def handle(gateway: Any, msg: Message) -> Message:
    """The ``ticket.ack`` for a ``ticket.deliver`` or ``ticket.revoke``."""
    delivery = msg.body.get("delivery")
    answer: dict[str, Any] = {"delivery": delivery}
    try:
        if getattr(gateway, "entitlements", True) is None:
            raise TicketError(
                'this box runs without ticket checks ([security] tickets = "off")',
                hint="It needs no tickets; turn the checks on to use bought ones",
            )
        if msg.type == "ticket.deliver":
            info = gateway.add_ticket(_text(msg.body.get("ticket"), "ticket"))
            answer.update(ok=True, ticket=info.get("tid"))
            log.info("ticket %s delivered by the portal", info.get("tid"))
        else:
            revoked = gateway.apply_revocations(_text(msg.body.get("revocations"), "revocations"))
            answer.update(ok=True, revoked=revoked)
    except VciError as err:
        log.warning("refused a delivered %s: %s", msg.type, err)
        answer.update(ok=False, error=err.to_dict())
    return msg.answer("ticket.ack", answer)


def _text(value: Any, what: str) -> str:
    from firmware_py.cloud.schema import ProtocolError

    if not isinstance(value, str) or not 0 < len(value) <= MAX_TOKEN:
        raise ProtocolError(f"the message's {what} is missing or not a signed token")
    return value
