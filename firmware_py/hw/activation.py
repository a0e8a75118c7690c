"""The ENET activation line (OBD pin 8): a GPIO that switches +12 V onto pin 8 through a
transistor and a resistor (hardware/README.md). Off at start and when closed, so a box that
stops does not keep the car's Ethernet awake."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class EnetActivation:
    def __init__(self, gpio: int, *, pin_factory: Any = None) -> None:
        from gpiozero import DigitalOutputDevice  # a PC without GPIO never needs it

        self.line = DigitalOutputDevice(gpio, initial_value=False, pin_factory=pin_factory)

    @property
    def on(self) -> bool:
        return bool(self.line.value)

    def set(self, on: bool) -> None:
        if on != self.on:
            log.info("ENET activation (OBD pin 8) %s", "on" if on else "off")
            self.line.value = on

    def close(self) -> None:
        self.line.off()
        self.line.close()
