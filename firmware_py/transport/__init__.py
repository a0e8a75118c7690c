"""Vehicle transports: CAN buses (python-can), ISO-TP channels (can-isotp), DoIP (doipclient),
HSFZ (BMW ENET, our codec),
serial adapters (pyserial via python-can's slcan). Gives the UDS layer one kind of per-ECU
connection (a udsoncan ``BaseConnection``) whatever the wire. Knows nothing of UDS jobs."""

from firmware_py.transport.can_bus import open_can_bus
from firmware_py.transport.doip_link import (
    DoipAnnouncement,
    DoipLink,
    discover_doip,
    open_doip_link,
)
from firmware_py.transport.enet import EnetVehicle, discover_enet
from firmware_py.transport.hsfz_link import HsfzLink, discover_hsfz, open_hsfz_link
from firmware_py.transport.isotp_link import CanLink, open_can_link
from firmware_py.transport.link import VehicleLink, open_link

__all__ = [
    "CanLink",
    "DoipAnnouncement",
    "DoipLink",
    "EnetVehicle",
    "HsfzLink",
    "discover_enet",
    "discover_hsfz",
    "open_hsfz_link",
    "VehicleLink",
    "discover_doip",
    "open_can_bus",
    "open_can_link",
    "open_doip_link",
    "open_link",
]
