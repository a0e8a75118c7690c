"""The box's pairing button, through gpiozero. On the Raspberry Pi it is a real GPIO pin; on a
PC it is absent (``vci pair --approve`` stands in for it) or, in tests, gpiozero's mock pin
factory drives it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class PairingButton:
    """Calls ``on_press`` (from gpiozero's thread) each time the button is pressed."""

    def __init__(
        self,
        pin: int | str,
        on_press: Callable[[], None],
        *,
        pin_factory: Any = None,
        bounce_time: float = 0.05,
    ) -> None:
        from gpiozero import Button  # imported here: a PC without GPIO never needs it

        self.button = Button(pin, pull_up=True, bounce_time=bounce_time, pin_factory=pin_factory)
        self.button.when_pressed = lambda: on_press()

    def close(self) -> None:
        self.button.close()
