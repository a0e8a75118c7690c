"""Reading one gateway socket (DoIP, HSFZ) for several threads that talk to DIFFERENT ECUs at the
same time (parallel programming): leader/follower reading.

There is no reader thread: a thread that waits for something (an answer from its ECU, an
acknowledgement for its target) and finds nobody reading becomes the reader, reads what arrives
(outside the lock, so other threads can send meanwhile) and sorts it into the per-address queues;
then it notifies every waiter and gives up the turn. A thread whose answer another thread read
finds it in its queue when it wakes. Used from a single thread, this is the old path plus one
uncontended lock per read, so the single-threaded benchmarks do not change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ReaderTurn:
    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        """guards the link's queues; held only briefly (never while reading the socket)"""
        self._reading = False
        self._waiting = 0

    def wait_for(
        self, ready: Callable[[], T | None], deadline: float, read: Callable[[float], None]
    ) -> T | None:
        """``ready()`` (called under :attr:`cond`) until it gives something or ``deadline``
        (``time.monotonic()``) passes; meanwhile this thread or another reads with ``read``.
        One lock round per read when alone (the single-threaded path stays as fast as it was)."""
        cond = self.cond
        with cond:
            while True:
                got = ready()
                if got is not None:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if self._reading:
                    self._waiting += 1
                    try:
                        cond.wait(remaining)
                    finally:
                        self._waiting -= 1
                    continue
                self._reading = True
                cond.release()
                try:
                    read(remaining)  # sorts what it reads into the queues under ``cond``
                finally:
                    cond.acquire()
                    self._reading = False
                    if self._waiting:
                        cond.notify_all()
