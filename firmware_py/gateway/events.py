"""The gateway's event bus: job progress and state changes, fanned out to every subscriber
(web page, portal link, log).

Publishing is thread-safe (the vehicle worker thread publishes through
``loop.call_soon_threadsafe``); subscribing is asyncio. Each subscriber has a bounded queue: a
subscriber that does not keep up loses the oldest *progress* events first, never a job's final
event, and is told how many it missed (``missed`` field of the next event it gets).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Event kinds a job goes through, in order; "progress" repeats.
JOB_EVENT_KINDS = ("accepted", "denied", "started", "step", "progress", "done", "failed")
FINAL_KINDS = frozenset({"denied", "done", "failed"})


@dataclass(frozen=True)
class Event:
    kind: str
    """``job.accepted``, ``job.progress``, ``job.done``, ``vehicle.connected`` ..."""
    data: dict[str, Any]
    job_id: str | None = None
    seq: int = 0
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "job_id": self.job_id,
            "seq": self.seq,
            "time": self.time,
            **self.data,
        }

    @property
    def final(self) -> bool:
        return self.kind.rpartition(".")[2] in FINAL_KINDS


class Subscription:
    def __init__(self, bus: EventBus, maxlen: int) -> None:
        self._bus = bus
        self._events: deque[Event] = deque()
        self._maxlen = maxlen
        self._wakeup = asyncio.Event()
        self.missed = 0

    def _put(self, event: Event) -> None:
        if len(self._events) >= self._maxlen:
            for i, old in enumerate(self._events):
                if not old.final:
                    del self._events[i]
                    self.missed += 1
                    break
        self._events.append(event)
        self._wakeup.set()

    async def get(self) -> Event:
        while not self._events:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._events.popleft()

    def get_nowait(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class EventBus:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._subscribers: set[Subscription] = set()
        self._seq = itertools.count(1)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, maxlen: int = 1000) -> Subscription:
        sub = Subscription(self, maxlen)
        self._subscribers.add(sub)
        return sub

    def publish(self, kind: str, data: dict[str, Any], job_id: str | None = None) -> Event:
        """Publish from any thread."""
        event = Event(kind=kind, data=data, job_id=job_id, seq=next(self._seq))
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._deliver(event)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, event)
        return event

    def _deliver(self, event: Event) -> None:
        log.debug("event %s %s", event.kind, event.job_id)
        for sub in list(self._subscribers):
            sub._put(event)
