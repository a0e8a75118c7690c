"""What the box's status LEDs and ENET activation line show, worked out from the gateway's
events: plain code that takes events and the time and says what each output should do, with no
GPIO in it (:mod:`firmware_py.hw.box` drives the pins). The patterns are documented in
hardware/README.md ("What the LEDs say").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

#: Jobs during which the car must not lose power or the box: the job LED blinks fast.
WRITING_KINDS = frozenset({"programming", "coding"})


@dataclass(frozen=True)
class Blink:
    on_time: float
    off_time: float
    n: int | None = None
    """blinks, then off; None: until told otherwise"""


class Pattern(Enum):
    OFF = None
    ON = "on"
    SLOW = Blink(1.0, 1.0)
    FAST = Blink(0.1, 0.1)
    FAILED = Blink(0.3, 0.3, 3)


class Indicators:
    """The box's state as the LEDs show it. ``enet``: the vehicle link is ENET (DoIP, HSFZ), so
    the activation line is used; ``enet_hold``: seconds the line stays on after the last job, so
    that the technician's next job finds the car's Ethernet awake."""

    def __init__(self, *, enet: bool, enet_hold: float = 300.0) -> None:
        self.enet = enet
        self.enet_hold = enet_hold
        self.running: dict[str, str] = {}
        self.vehicle = False
        self.portal = False
        self.battery_low = False
        self.shutting_down = False
        self.failed = False
        self._enet_until = 0.0

    def apply(self, kind: str, data: dict[str, Any], job_id: str | None, now: float) -> None:
        """Take one event of the gateway's bus (``firmware_py.gateway.events.Event``)."""
        job = data.get("job") or {}
        if kind == "job.started" and job_id is not None:
            self.running[job_id] = str(job.get("kind", ""))
            self.failed = False
        elif kind in ("job.done", "job.failed", "job.denied") and job_id is not None:
            if self.running.pop(job_id, None) is not None:
                self._enet_until = now + self.enet_hold
                self.failed = kind == "job.failed"
        elif kind == "vehicle.state":
            self.vehicle = bool((data.get("vehicle") or {}).get("connected"))
        elif kind == "portal.link":
            self.portal = bool(data.get("up"))
        elif kind == "battery.low":
            self.battery_low = True
        elif kind == "battery.ok":
            self.battery_low = False
        elif kind == "power.shutdown":
            self.shutting_down = True

    def leds(self) -> dict[str, Pattern]:
        if self.shutting_down:
            power = Pattern.FAST
        else:
            power = Pattern.SLOW if self.battery_low else Pattern.ON
        if set(self.running.values()) & WRITING_KINDS:
            job = Pattern.FAST
        elif self.running:
            job = Pattern.ON
        else:
            job = Pattern.FAILED if self.failed else Pattern.OFF
        return {
            "power": power,
            "vehicle": Pattern.ON if self.vehicle else Pattern.OFF,
            "portal": Pattern.ON if self.portal else Pattern.OFF,
            "job": job,
        }

    def enet_activation(self, now: float) -> bool:
        """Whether OBD pin 8 is switched on: while a job runs on an ENET link (the ENET bridge is
        a job for as long as its session is open) and ``enet_hold`` seconds after."""
        return self.enet and (bool(self.running) or now < self._enet_until)

    def next_change(self, now: float) -> float | None:
        """Seconds until :meth:`enet_activation` changes by itself, or None."""
        if self.enet and not self.running and now < self._enet_until:
            return self._enet_until - now
        return None
