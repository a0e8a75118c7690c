"""MQTT topics, all under one prefix per box (the broker's ACL confines a box to it)."""

PREFIX = "vci/box"


def box(device: str) -> str:
    return f"{PREFIX}/{device}"


def state(device: str) -> str:
    """retained: ``online`` / ``offline`` (the box's last will)"""
    return f"{box(device)}/state"


def requests(device: str) -> str:
    """portal -> box"""
    return f"{box(device)}/req"


def responses(device: str, user: str) -> str:
    """box -> one portal user (the request's MQTT 5 response topic)"""
    return f"{box(device)}/res/{user}"


def outbox(device: str) -> str:
    """box -> portal: records to keep"""
    return f"{box(device)}/outbox"
