"""Reading one gateway socket (DoIP, HSFZ) for several threads that talk to DIFFERENT ECUs at the
same time (parallel programming): leader/follower reading.

There is no reader thread: a thread that waits for something (an answer from its ECU, an
acknowledgement for its target) and finds nobody reading becomes the reader, reads what arrives
(outside the lock, so other threads can send meanwhile) and sorts it into the per-address queues;
then it notifies every waiter and gives up the turn. A thread whose answer another thread read
finds it in its queue when it wakes. Used from a single thread, this is the old path plus one
uncontended lock per read, so the single-threaded benchmarks do not change.

:class:`GatewayQueues` is what the DoIP and HSFZ links keep around it: the answers per ECU address
(bounded: a chatty or hostile gateway costs bounded memory) and the acknowledgements per target
of the messages in flight.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from firmware_py.transport.functional import OBD_WINDOW, Collector, collect

T = TypeVar("T")
A = TypeVar("A")
log = logging.getLogger(__name__)
MAX_QUEUED = 64
"""answers kept per ECU that nobody has read yet (an ECU's answers to one request: a few)"""


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


class GatewayQueues(Generic[A]):
    """Answers by ECU address and acknowledgements (of type ``A``) by target, for a link whose
    socket is read in turns (:class:`ReaderTurn`, :attr:`turn`). ``read(timeout)`` is the link's
    reader: it sorts what it reads with :meth:`put` and :meth:`put_ack` (under ``turn.cond``)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.turn = ReaderTurn()
        self.queues: dict[int, collections.deque[bytes]] = {}
        """answers not read yet, only for ECUs the box talks to, MAX_QUEUED each"""
        self.acks: dict[int, collections.deque[A]] = {}
        """acknowledgements (and refusals) by the target of the message in flight"""
        self.dropped = 0
        """answers dropped: from addresses nobody asked, or over MAX_QUEUED"""
        self.functional: collections.deque[tuple[int, bytes]] | None = None
        """while a functional request collects answers: every ECU's answers, in order (a
        functional request holds the link alone: see :mod:`firmware_py.transport.functional`)"""

    def watch(self, address: int) -> None:
        """Keep answers from ``address`` (a connection to that ECU was made)."""
        with self.turn.cond:
            self.queues.setdefault(address, collections.deque())

    def clear(self) -> None:
        """Forget every unread answer (the connection was made again)."""
        with self.turn.cond:
            for queue in self.queues.values():
                queue.clear()

    def stats(self) -> dict[str, int]:
        with self.turn.cond:
            return {"dropped": self.dropped, "queued": sum(len(q) for q in self.queues.values())}

    def put(self, source: int, data: bytes) -> None:
        """(Under ``turn.cond``.) Keep an ECU's answer for its reader; drop (count, log now and
        then) what no one will read."""
        if self.functional is not None:
            if len(self.functional) < MAX_QUEUED:
                self.functional.append((source, data))
            else:
                self.drop(source, "unread answers to a functional request")
            return
        queue = self.queues.get(source)
        if queue is not None and len(queue) < MAX_QUEUED:
            queue.append(data)
            return
        self.drop(source, "no one asked that address" if queue is None else "unread answers")

    def drop(self, source: int, why: str) -> None:
        """(Under ``turn.cond``.) Count an answer dropped; log at 1, 2, 4, 8 ... (not a flood)."""
        self.dropped += 1
        if self.dropped & (self.dropped - 1) == 0:
            log.warning(
                "%s: dropped a diagnostic message from 0x%04X (%s); %d dropped so far",
                self.what,
                source,
                why,
                self.dropped,
            )

    def receive(self, source: int, timeout: float, read: Callable[[float], None]) -> bytes | None:
        """The next answer from ``source`` within ``timeout`` (None: none came)."""
        with self.turn.cond:
            queue = self.queues.setdefault(source, collections.deque())
        return self.turn.wait_for(
            lambda: queue.popleft() if queue else None, time.monotonic() + timeout, read
        )

    def drop_queued(self, source: int) -> None:
        with self.turn.cond:
            queue = self.queues.get(source)
            if queue is not None:
                queue.clear()

    def put_ack(self, target: int, ack: A) -> None:
        """(Under ``turn.cond``.) An acknowledgement for the message in flight to ``target``;
        dropped when none is (a late one)."""
        acks = self.acks.get(target)
        if acks is not None:
            acks.append(ack)

    def request(
        self, target: int, write: Callable[[], None], timeout: float, read: Callable[[float], None]
    ) -> A | None:
        """Send a message to ``target`` with ``write`` and wait for its acknowledgement (None:
        none within ``timeout``). Waits outside the link's send lock: other threads send to
        other ECUs meanwhile (each target has its own acknowledgement queue)."""
        with self.turn.cond:
            acks = self.acks.setdefault(target, collections.deque(maxlen=8))
            acks.clear()
        try:
            write()
            return self.turn.wait_for(
                lambda: acks.popleft() if acks else None, time.monotonic() + timeout, read
            )
        finally:
            with self.turn.cond:
                self.acks.pop(target, None)

    def functional_request(
        self,
        send: Callable[[], None],
        read: Callable[[float], None],
        sid: int,
        *,
        window: float = OBD_WINDOW,
        expect: Collection[int] = (),
    ) -> dict[int, bytes]:
        """Send a functional request with ``send`` (which waits for its acknowledgement) and
        collect every ECU's final answer (:mod:`.functional`). Meanwhile every diagnostic message
        read counts as an answer to it: the caller has no other request in flight on the link
        (the vehicle worker runs one job at a time)."""
        with self.turn.cond:
            caught = self.functional = collections.deque()
        try:
            send()
            collector = Collector(sid, time.monotonic(), window=window, expect=expect)

            def receive(timeout: float) -> list[tuple[int, bytes]]:
                self.turn.wait_for(
                    lambda: True if caught else None, time.monotonic() + timeout, read
                )
                with self.turn.cond:
                    got = list(caught)
                    caught.clear()
                return got

            return collect(collector, receive)
        finally:
            with self.turn.cond:
                self.functional = None
