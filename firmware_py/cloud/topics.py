"""MQTT topics, all under one prefix per box; the broker's ACL (broker/acl.example) confines each
identity to the ones it needs, so a topic names who may have sent what arrives on it.

Under ``vci/box/<box>/``: ``state`` (box -> portal, retained), ``outbox`` (box -> portal),
``req/<user>`` (that portal user -> box; only that user may publish there) and ``res/<user>``
(box -> that user; only that user may read there). The box takes the requesting user from the
topic a request arrived on, never from the message.
"""

from __future__ import annotations

PREFIX = "vci/box"


def box(device: str) -> str:
    return f"{PREFIX}/{device}"


def state(device: str) -> str:
    """retained: ``online`` / ``offline`` (the box's last will)"""
    return f"{box(device)}/state"


def requests(device: str, user: str) -> str:
    """one portal user -> box (requests and outbox acknowledgements)"""
    return f"{box(device)}/req/{user}"


def all_requests(device: str) -> str:
    """what the box subscribes to: every user's requests topic"""
    return f"{box(device)}/req/+"


def responses(device: str, user: str) -> str:
    """box -> one portal user (the request's MQTT 5 response topic)"""
    return f"{box(device)}/res/{user}"


def outbox(device: str) -> str:
    """box -> portal: records to keep"""
    return f"{box(device)}/outbox"


def parse(topic: str) -> tuple[str, str, str | None] | None:
    """``(box, kind, user)`` of a topic of this layout (``user`` for ``req`` and ``res``), or
    ``None`` for any other topic."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PREFIX or not parts[2]:
        return None
    device, kind, rest = parts[2], parts[3], parts[4:]
    if kind in ("state", "outbox") and not rest:
        return device, kind, None
    if kind in ("req", "res") and len(rest) == 1 and rest[0] and rest[0] not in ("+", "#"):
        return device, kind, rest[0]
    return None
