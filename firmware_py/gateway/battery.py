"""The car's battery as the gateway sees it: which voltage the programming floor goes by (the
box's own measurement on OBD pin 16 when the box has the ADC, the vehicle's reported voltage
otherwise, and which one it was), and battery care: a box left plugged into a parked car shuts
itself down before it drains the battery (never during a job). :class:`BatteryCare` is plain
code that takes the voltage and the time; the gateway's battery watch feeds it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

#: what ``battery_source`` says on the page and in job steps
SOURCE_TEXT = {
    "box": "measured by the box on OBD pin 16",
    "vehicle": "reported by the vehicle",
}


def floor_voltage(services: Any, vehicle: Any) -> tuple[Callable[[], float], str]:
    """The reading the battery floor uses, and its source (``box`` or ``vehicle``).
    ``services`` is the job runner's services: ``voltmeter`` is the box's own ADC, if any."""
    voltmeter = services.get("voltmeter")
    if voltmeter is not None:
        return voltmeter.read, "box"
    return vehicle.supply_voltage, "vehicle"


def reported_once(
    read: Callable[[], float], source: str, step: Callable[..., None]
) -> Callable[[], float]:
    """``read``, that tells the job (``step``) the first reading and where it came from."""
    told: list[bool] = []

    def reading() -> float:
        volts = read()
        if not told:
            told.append(True)
            step("battery voltage", volts=round(volts, 2), battery_source=source)
        return volts

    return reading


class Care(enum.Enum):
    NOTHING = "nothing"
    LOW = "low"
    """the voltage went below the threshold: the countdown starts"""
    OK = "ok"
    """the countdown is off again (the voltage recovered)"""
    SHUT_DOWN = "shut_down"


class BatteryCare:
    """Below ``volts`` for ``after`` seconds with no job running: shut down. A running job
    restarts the countdown (the box never shuts down during a job, nor right after one)."""

    def __init__(self, volts: float, after: float) -> None:
        self.volts = volts
        self.after = after
        self.low_since: float | None = None
        self.done = False

    def observe(self, volts: float, now: float, job_running: bool) -> Care:
        if self.done:
            return Care.NOTHING
        if volts >= self.volts:
            if self.low_since is None:
                return Care.NOTHING
            self.low_since = None
            return Care.OK
        if self.low_since is None:
            self.low_since = now
            return Care.LOW
        if job_running:
            self.low_since = now
            return Care.NOTHING
        if now - self.low_since >= self.after:
            self.done = True
            return Care.SHUT_DOWN
        return Care.NOTHING

    def shutdown_in(self, now: float) -> float | None:
        return None if self.low_since is None else max(0.0, self.low_since + self.after - now)
