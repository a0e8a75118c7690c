"""A thread's sign of life, for the service watchdog (docs/appliance.md, "Watchdog").

The vehicle worker thread owns one :class:`Heartbeat`: it is *busy* while it runs a call for a job
and *idle* while it waits for the next one. Code that runs on the worker and may block for long
calls :func:`beat` before each wait of bounded length (every UDS request, the ENET bridge's queue),
so a legitimately long job (a flash of many minutes) beats all along, while a worker stuck in one
call stops beating. Whoever watches (the gateway's watchdog task) asks how long it has gone
without a beat while busy.

A plain module below every layer (like ``errors``): transport and UDS code may call :func:`beat`,
which only beats the heartbeat attached to the calling thread (a tester-present thread or the event
loop beat nothing: their life says nothing about the worker's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_local = threading.local()


class Heartbeat:
    """Last sign of life of one thread; read from any thread (float stores are atomic)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()
        self._busy = False

    def attach(self) -> None:
        """Make this the calling thread's heartbeat (what :func:`beat` beats on it)."""
        _local.heartbeat = self

    def busy(self) -> None:
        """The thread starts a call that may block."""
        self._last = self._clock()
        self._busy = True

    def idle(self) -> None:
        """The thread finished its call and waits for work: alive, whatever the time."""
        self._busy = False
        self._last = self._clock()

    def beat(self) -> None:
        self._last = self._clock()

    def stalled_for(self, now: float | None = None) -> float:
        """Seconds the thread has been busy without a beat (0 while idle)."""
        if not self._busy:
            return 0.0
        return max(0.0, (self._clock() if now is None else now) - self._last)


def beat() -> None:
    """The calling thread is alive and about to wait a bounded time (no-op on a thread without a
    heartbeat)."""
    heartbeat = getattr(_local, "heartbeat", None)
    if heartbeat is not None:
        heartbeat.beat()
