"""The box's status LEDs through gpiozero (``LED`` per pin; blinking runs on gpiozero's own
background thread). What they show comes from :class:`firmware_py.hw.indicators.Indicators`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from firmware_py.hw.indicators import Blink, Pattern


class StatusLeds:
    """One gpiozero LED per name in ``pins`` (power, vehicle, portal, job)."""

    def __init__(self, pins: Mapping[str, int], *, pin_factory: Any = None) -> None:
        from gpiozero import LED  # imported here: a PC without GPIO never needs it

        self.leds = {name: LED(gpio, pin_factory=pin_factory) for name, gpio in pins.items()}
        self.shown: dict[str, Pattern] = {}

    def show(self, patterns: Mapping[str, Pattern]) -> None:
        """Set each LED whose pattern changed (a blink is started once, not restarted)."""
        for name, pattern in patterns.items():
            if self.shown.get(name) is pattern:
                continue
            self.shown[name] = pattern
            led = self.leds[name]
            if isinstance(pattern.value, Blink):
                b = pattern.value
                led.blink(on_time=b.on_time, off_time=b.off_time, n=b.n, background=True)
            elif pattern is Pattern.ON:
                led.on()
            else:
                led.off()

    def close(self) -> None:
        for led in self.leds.values():
            led.close()
