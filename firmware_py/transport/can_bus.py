"""Opening a CAN bus with python-can from configuration: SocketCAN (``can0`` on the Pi's CAN
HAT), serial adapters through pyserial (``slcan``), ``virtual`` (in-process) and
``vci_loopback`` (between processes on one machine, see :mod:`.loopback_bus`)."""

from __future__ import annotations

from typing import Any

import can

from firmware_py.errors import TransportError
from firmware_py.i18n import N_

HINTS = {
    "socketcan": N_(
        "Check that the CAN HAT is set up (ip link set can0 up type can bitrate 500000)"
    ),
    "slcan": N_("Check that the serial CAN adapter is plugged in and the device path is right"),
}


def open_can_bus(interface: str, channel: str, bitrate: int = 500_000) -> can.BusABC:
    kwargs: dict[str, Any] = {}
    if interface in ("slcan", "serial", "pcan", "kvaser", "vector", "gs_usb"):
        kwargs["bitrate"] = bitrate
    try:
        return can.Bus(interface=interface, channel=channel, **kwargs)
    except (can.CanError, OSError, ValueError, ImportError) as err:
        raise TransportError(
            N_("cannot open CAN bus {interface}:{channel}: {err}"),
            values={"interface": interface, "channel": channel, "err": err},
            hint=HINTS.get(interface, N_("Check [transport] can_interface and can_channel")),
        ) from err
