"""Functionally addressed requests: one request to every ECU that listens on the functional
address, and the answers of as many ECUs as answer, collected within a window.

Where it goes on the wire is the link's business: on CAN a single frame on 0x7DF (ISO 15765-4,
11-bit normal addressing) with the answers on 0x7E8..0x7EF and flow control to 0x7E0..0x7E7; on
DoIP the functional logical address 0xE400 (ISO 13400-2), answers from each ECU's own address.

The collection window: SAE J1979 gives P2 = 50 ms for an OBD answer on CAN, but real engine and
gearbox ECUs under load answer slower (100-200 ms is common) and a DoIP gateway adds its own
routing time, so :data:`OBD_WINDOW` waits 0.5 s. Once the responders are known (the first request
of a read finds them), a later request ends as soon as each of them has answered, so the window
costs its full length only when an ECU stays silent. An ECU that answers "response pending"
(7F SID 78) is waited for up to P2* (J1979: 5 s) after its last pending answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

OBD_WINDOW = 0.5
"""seconds to collect answers to a functional request (see the module docstring)"""
P2_STAR = 5.0
"""seconds an ECU that sent "response pending" has for its final answer (J1979 P2*max)"""
CAN_FUNCTIONAL_ID = 0x7DF
CAN_RESPONSE_IDS = range(0x7E8, 0x7F0)
"""the eight OBD response identifiers; request identifier = response - 8"""
DOIP_FUNCTIONAL_ADDRESS = 0xE400


def is_pending(answer: bytes, sid: int) -> bool:
    return len(answer) == 3 and answer[0] == 0x7F and answer[1] == sid and answer[2] == 0x78


class Collector:
    """Pure bookkeeping of one functional request's answers: feed it ``(source, answer, now)``;
    :meth:`deadline` says until when to keep listening. Sources are CAN response identifiers or
    DoIP logical addresses."""

    def __init__(
        self,
        sid: int,
        now: float,
        *,
        window: float = OBD_WINDOW,
        expect: Collection[int] = (),
        p2_star: float = P2_STAR,
    ) -> None:
        self.sid = sid
        self.window_end = now + window
        self.expect = frozenset(expect)
        self.p2_star = p2_star
        self.answers: dict[int, bytes] = {}
        self.pending: dict[int, float] = {}
        """source -> until when its final answer may come"""

    def add(self, source: int, answer: bytes, now: float) -> None:
        if is_pending(answer, self.sid):
            self.pending[source] = now + self.p2_star
            return
        self.pending.pop(source, None)
        self.answers.setdefault(source, answer)  # a repeated answer is the same ECU's: first wins

    def deadline(self) -> float:
        """When listening may stop: every expected ECU answered and none is pending -> now;
        else the window's end, or later for an ECU that said "response pending"."""
        later = max(self.pending.values(), default=0.0)
        if self.expect and self.expect <= set(self.answers) and not self.pending:
            return 0.0
        return max(self.window_end, later)


def collect(
    collector: Collector,
    receive: Callable[[float], list[tuple[int, bytes]]],
    clock: Callable[[], float] = time.monotonic,
) -> dict[int, bytes]:
    """Run ``receive(timeout)`` (what arrived within ``timeout`` s, possibly nothing) until the
    collector's deadline; the final answers by source."""
    while (left := collector.deadline() - clock()) > 0:
        for source, answer in receive(min(left, 0.05)):
            collector.add(source, answer, clock())
    return dict(sorted(collector.answers.items()))
