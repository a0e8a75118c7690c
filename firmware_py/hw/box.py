"""The box's hardware assembled from the pinout and ``[hw]`` configuration: status LEDs, ENET
activation line and battery ADC, driven by the gateway's event bus (:meth:`BoxHardware.follow`).
On a PC without GPIO (or with ``[hw] gpio`` off) :func:`open_hardware` returns None and says so
in the log; the gateway then runs without them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_py.errors import HardwareError
from firmware_py.hw.indicators import Indicators
from firmware_py.hw.pinout import Pinout, load_pinout

log = logging.getLogger(__name__)


class BoxHardware:
    def __init__(
        self,
        pinout: Pinout,
        *,
        enet: bool,
        enet_hold: float = 300.0,
        adc: bool = True,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from firmware_py.hw.activation import EnetActivation
        from firmware_py.hw.battery import BoxVoltmeter
        from firmware_py.hw.leds import StatusLeds

        self.pinout = pinout
        self.clock = clock
        self.indicators = Indicators(enet=enet, enet_hold=enet_hold)
        self.leds = StatusLeds(pinout.leds, pin_factory=pin_factory)
        self.activation = EnetActivation(pinout.enet_activation.gpio, pin_factory=pin_factory)
        self.voltmeter: BoxVoltmeter | None = None
        if adc:
            try:
                self.voltmeter = BoxVoltmeter(pinout.adc, pin_factory=pin_factory)
            except HardwareError as err:  # the LEDs still help; the floor uses the vehicle's
                log.error("%s: the battery floor uses the vehicle's reported voltage", err)
        self.update()

    def update(self) -> None:
        self.leds.show(self.indicators.leds())
        self.activation.set(self.indicators.enet_activation(self.clock()))

    async def follow(self, sub: Any) -> None:
        """Show the gateway's events until cancelled; ``sub`` is a subscription to its event bus,
        taken before any job can start (so that no job's start is missed)."""
        while True:
            wait = self.indicators.next_change(self.clock())
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the task's
                # cancellation when the event arrives at the same moment (the gateway's stop
                # then waited for ever on this task)
                async with asyncio.timeout(wait):
                    event = await sub.get()
            except TimeoutError:
                self.update()  # the activation line's hold ran out
                continue
            self.indicators.apply(event.kind, event.data, event.job_id, self.clock())
            self.update()

    def close(self) -> None:
        self.activation.close()
        self.leds.close()
        if self.voltmeter is not None:
            self.voltmeter.close()


def open_hardware(hw: Any, *, enet: bool, pin_factory: Any = None) -> BoxHardware | None:
    """The box's hardware per ``hw`` (:class:`firmware_py.config.HardwareConfig`), or None when
    it is not configured or this machine has no GPIO (logged, not an error: a PC runs without).
    A pinout file that is wrong is an error (:class:`HardwareError`)."""
    if not hw.gpio:
        log.info(
            "no box hardware configured ([hw] gpio off): no status LEDs, ENET activation "
            "line or battery ADC"
        )
        return None
    pinout = load_pinout(Path(hw.pinout) if hw.pinout else None)
    try:
        return BoxHardware(
            pinout, enet=enet, enet_hold=hw.enet_hold, adc=hw.adc, pin_factory=pin_factory
        )
    except Exception as err:  # gpiozero's BadPinFactory and friends: no GPIO on this machine
        log.warning(
            "box hardware not available (%s: %s): running without status LEDs, ENET activation "
            "line and battery ADC",
            type(err).__name__,
            err,
        )
        return None
