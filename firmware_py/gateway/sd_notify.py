"""The gateway's side of systemd's service protocol (docs/appliance.md, "Watchdog").

``READY=1`` once the page and the vehicle worker are up, ``STATUS=`` lines for ``systemctl
status``, ``STOPPING=1`` on the way out, and ``WATCHDOG=1`` every half ``WatchdogSec`` - sent only
while the event loop turns (the pings are a task on it) **and** the vehicle worker thread is not
stalled (:mod:`firmware_py.heartbeat`). A blocked loop or a worker stuck in one call gets no ping,
and systemd kills and restarts the service.

The protocol is written here, not taken from a library: it is one datagram on an ``AF_UNIX``
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket), which systemd's
own documentation (sd_notify(3), "Notes") describes for exactly this - implementing it in a few
lines instead of linking libsystemd; the PyPI ``sdnotify`` package does the same and is
unmaintained. ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` are respected as sd_watchdog_enabled(3)
says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from firmware_py.config import UdsConfig

log = logging.getLogger(__name__)

START_ALLOWANCE = 120.0
"""seconds the gateway may take from its start to its first ``WATCHDOG=1`` (the unit's
``TimeoutStartSec=``): systemd arms ``WatchdogSec=`` when it starts the process, not at
``READY=1``, and on a loaded box the imports and the start take longer than 30 s (seen in the
appliance VM under load: killed by the watchdog before it was ready, again and again)"""

STOP_EXTENSION = 30.0
"""seconds each ``EXTEND_TIMEOUT_USEC`` adds while the gateway stops with a job still running
(a flash runs to its end) and the worker is alive; sent every half of it"""


class Notifier:
    """Datagrams to systemd's notification socket; without ``$NOTIFY_SOCKET`` (not started by
    systemd) every call does nothing."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        self.address = address if address[:1] in ("/", "\0") else ""
        self.stopping = False
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        """One message of ``KEY=value`` lines; False if it could not be sent (logged, never
        raised: systemd's bookkeeping must not stop the box)."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as err:
            log.warning("systemd notification %r not sent: %s", lines[0].split("=")[0], err)
            return False
        return True

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stop(self) -> None:
        self.stopping = True
        self.send("STOPPING=1", "STATUS=stopping: finishing running jobs")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_period(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """``WatchdogSec`` in seconds if the watchdog is on for this process, else None
    (sd_watchdog_enabled(3): ``$WATCHDOG_USEC``, and ``$WATCHDOG_PID`` if set must be ours)."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1_000_000


LINK_OPEN_ALLOWANCE = 30.0
"""seconds allowed for opening or re-opening the vehicle link inside one call (vehicle discovery,
TCP connect and routing activation, each bounded by a few seconds)"""


def worker_stall_limit(uds: UdsConfig) -> float:
    """How long the vehicle worker may go without a beat before it counts as hung: the longest one
    UDS request may legitimately take (``long_request_deadline``, every "response pending"
    included) plus :data:`LINK_OPEN_ALLOWANCE`. 150 s by default."""
    return max(uds.request_deadline, uds.long_request_deadline) + LINK_OPEN_ALLOWANCE


def worker_stall(stalled_for: Callable[[], float], limit: float) -> Callable[[], str | None]:
    """The liveness check of the vehicle worker: None while it is alive (idle, or busy with a beat
    within ``limit`` seconds), else why not."""

    def check() -> str | None:
        stalled = stalled_for()
        if stalled <= limit:
            return None
        return f"vehicle worker stalled: no sign of life for {stalled:.1f} s (limit {limit:g} s)"

    return check


def allow_startup(notifier: Notifier, seconds: float = START_ALLOWANCE) -> bool:
    """At the very start: ``WATCHDOG_USEC=`` raised to ``seconds`` for the start-up (sd_notify(3)
    lets a service change its watchdog timeout); :func:`keep_watchdog` sets it back to the unit's
    ``WatchdogSec=`` with its first ping. Nothing when the watchdog is off."""
    if watchdog_period() is None:
        return False
    return notifier.send(f"WATCHDOG_USEC={int(seconds * 1_000_000)}", "WATCHDOG=1")


async def keep_watchdog(
    notifier: Notifier, period: float | None, unhealthy: Callable[[], str | None]
) -> None:
    """Run on the event loop for the gateway's life: ``WATCHDOG=1`` every ``period / 2`` while
    ``unhealthy()`` is None; once stopping, ``EXTEND_TIMEOUT_USEC`` instead, so that a job that
    still runs (a flash) keeps the stop from timing out while the worker is alive."""
    interval = period / 2 if period else STOP_EXTENSION / 2
    reported: str | None = None
    if period:  # the start-up's allowance (allow_startup) ends: the unit's WatchdogSec again
        notifier.send(f"WATCHDOG_USEC={int(period * 1_000_000)}")
    while True:
        reason = unhealthy()
        if reason is not None:
            if reported is None:  # once per stall, not at every turn
                log.error("%s: no watchdog ping, systemd will restart the gateway", reason)
                notifier.status(reason)
            reported = reason
        elif notifier.stopping:
            notifier.send(f"EXTEND_TIMEOUT_USEC={int(STOP_EXTENSION * 1_000_000)}")
        elif period:
            if reported is not None:
                log.info("vehicle worker alive again")
                notifier.status("serving")
                reported = None
            notifier.send("WATCHDOG=1")
        await asyncio.sleep(min(interval, STOP_EXTENSION / 2))
