"""systemd's service protocol (firmware_py/gateway/sd_notify.py): a real AF_UNIX datagram socket
stands for systemd's; a real ``vci gateway`` process, and in-process a real vehicle worker thread
that hangs on an event, which must stop the watchdog pings."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_py import heartbeat
from firmware_py.config import UdsConfig
from firmware_py.gateway.jobs import VehicleWorker
from firmware_py.gateway.sd_notify import (
    Notifier,
    keep_watchdog,
    watchdog_period,
    worker_stall,
    worker_stall_limit,
)
from tests.conftest import start_gateway_process


class Vehicle:
    """What the worker opens: nothing to talk to (these tests are about the thread)."""

    def close(self) -> None:
        pass


class NotifySocket:
    """systemd's end: datagrams received on a bound AF_UNIX socket."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    def messages(self, timeout: float) -> Iterator[list[str]]:
        """Messages (as lists of lines) until ``timeout`` seconds have passed."""
        ends = time.monotonic() + timeout
        while (left := ends - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            yield data.decode().split("\n")

    def wait_for(self, line: str, timeout: float) -> list[list[str]]:
        """Every message up to the first with ``line``; fails if none comes within ``timeout``."""
        seen = []
        for message in self.messages(timeout):
            seen.append(message)
            if line in message:
                return seen
        raise AssertionError(f"no {line!r} within {timeout} s; got {seen}")

    def count(self, line: str, timeout: float) -> int:
        return sum(line in m for m in self.messages(timeout))

    def drain(self) -> None:
        for _ in self.messages(0.01):
            pass


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    """An abstract socket, as systemd passes it (``@...``)."""
    sock = NotifySocket(f"@vci-test-{uuid.uuid4().hex}")
    yield sock
    sock.sock.close()


def test_gateway_process_says_ready_pings_the_watchdog_and_none_while_stopped(
    box: Any, sim_process: Any, notify_socket: NotifySocket
) -> None:
    period = 0.4  # WATCHDOG_USEC: pings every 0.2 s
    env = {
        **os.environ,
        "VCI_CONFIG": str(box.config),
        "NOTIFY_SOCKET": notify_socket.address,
        "WATCHDOG_USEC": str(int(period * 1e6)),
    }
    with start_gateway_process(sim_process.cli_args("doip"), env) as gateway:
        before = notify_socket.wait_for("READY=1", 10)
        # systemd arms the watchdog at the start: the start-up gets 120 s, then WatchdogSec again
        assert before[0] == ["WATCHDOG_USEC=120000000", "WATCHDOG=1"]
        restored = [i for i, m in enumerate(before) if f"WATCHDOG_USEC={int(period * 1e6)}" in m]
        assert restored and restored[0] > 0
        ready = before[-1]
        assert any(line.startswith("STATUS=serving the page on http") for line in ready)
        assert f"MAINPID={gateway.process.pid}" in ready
        assert notify_socket.count("WATCHDOG=1", 2.0) >= 6  # 10 expected in 2 s

        # the whole process stopped (what the appliance test does with kill -STOP): no pings
        gateway.process.send_signal(signal.SIGSTOP)
        try:
            notify_socket.drain()
            assert notify_socket.count("WATCHDOG=1", 3 * period) == 0
        finally:
            gateway.process.send_signal(signal.SIGCONT)
        notify_socket.wait_for("WATCHDOG=1", 5)
        gateway.stop()
        notify_socket.wait_for("STOPPING=1", 5)


def test_a_filesystem_notify_socket_is_used_too() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:  # short: sun_path has 108 bytes
        receiver = NotifySocket(str(Path(tmp) / "notify"))
        notifier = Notifier({"NOTIFY_SOCKET": receiver.address})
        try:
            notifier.status("hello")
            assert receiver.wait_for("STATUS=hello", 2) == [["STATUS=hello"]]
        finally:
            notifier.close()
            receiver.sock.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False
    assert Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled is False


@pytest.mark.parametrize(
    ("env", "period"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_period_follows_sd_watchdog_enabled(env: dict[str, str], period: Any) -> None:
    assert watchdog_period(env, pid=4242) == period


def test_the_stall_limit_outlasts_the_longest_legitimate_request() -> None:
    uds = UdsConfig()
    assert worker_stall_limit(uds) == 150.0
    assert worker_stall_limit(uds) > uds.long_request_deadline > uds.p2_star


def test_a_busy_worker_that_beats_stays_alive_and_one_that_stops_beating_stalls() -> None:
    now = [0.0]
    beat = heartbeat.Heartbeat(clock=lambda: now[0])
    check = worker_stall(beat.stalled_for, limit=150.0)
    now[0] = 1000.0
    assert check() is None  # idle for long: alive
    beat.busy()
    for _ in range(10):  # a flash of 20 minutes, one request every 2 minutes
        now[0] += 120.0
        assert check() is None
        beat.beat()
    now[0] += 151.0
    reason = check()
    assert reason is not None and "stalled" in reason and "151.0 s" in reason
    beat.idle()
    assert check() is None


def test_watchdog_pings_stop_while_the_vehicle_worker_hangs_and_resume_after(
    notify_socket: NotifySocket,
) -> None:
    release = threading.Event()
    other_thread_beats = threading.Event()
    limit = 0.6

    def hang(vehicle: Any) -> None:
        release.wait(30)  # a call that never returns (stands for a library blocked for good)

    def beater() -> None:  # a thread of its own (like tester present) beating: must not count
        while not other_thread_beats.wait(0.05):
            heartbeat.beat()

    async def scenario() -> None:
        worker = VehicleWorker(Vehicle)
        await worker.start()
        notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
        pings = asyncio.create_task(
            keep_watchdog(notifier, 0.2, worker_stall(worker.heartbeat.stalled_for, limit))
        )
        receive = asyncio.get_running_loop().run_in_executor
        try:
            assert await receive(None, notify_socket.count, "WATCHDOG=1", 0.5) >= 3
            job = asyncio.ensure_future(worker.run(hang))
            messages = await receive(None, lambda: list(notify_socket.messages(limit + 1.0)))
            # pings go on up to the limit, then one STATUS says why they stopped, then none
            status = [i for i, m in enumerate(messages) if m[0].startswith("STATUS=")]
            assert len(status) == 1, messages
            assert messages[status[0]][0].startswith("STATUS=vehicle worker stalled"), messages
            assert ["WATCHDOG=1"] not in messages[status[0] :], messages
            assert await receive(None, notify_socket.count, "WATCHDOG=1", 0.6) == 0
            release.set()
            await job
            assert await receive(None, notify_socket.count, "WATCHDOG=1", 0.5) >= 2
        finally:
            release.set()
            other_thread_beats.set()
            pings.cancel()
            notifier.close()
            worker.close()

    thread = threading.Thread(target=beater, daemon=True)
    thread.start()
    asyncio.run(scenario())
    thread.join(5)


def test_a_long_job_that_keeps_beating_keeps_the_pings_going(notify_socket: NotifySocket) -> None:
    limit = 0.3

    def long_job(vehicle: Any) -> None:  # many short waits, each beating (like UDS requests)
        ends = time.monotonic() + 5 * limit
        while time.monotonic() < ends:
            heartbeat.beat()
            time.sleep(0.02)

    async def scenario() -> None:
        worker = VehicleWorker(Vehicle)
        await worker.start()
        notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
        pings = asyncio.create_task(
            keep_watchdog(notifier, 0.1, worker_stall(worker.heartbeat.stalled_for, limit))
        )
        job = asyncio.ensure_future(worker.run(long_job))
        messages = await asyncio.get_running_loop().run_in_executor(
            None, lambda: list(notify_socket.messages(5 * limit))
        )
        await job
        pings.cancel()
        notifier.close()
        worker.close()
        # first the unit's WatchdogSec back (the start-up's allowance ends), then only pings
        assert messages[0] == ["WATCHDOG_USEC=100000"]
        assert all(m == ["WATCHDOG=1"] for m in messages[1:])
        assert len(messages) >= 11

    asyncio.run(scenario())


def test_every_uds_request_on_the_worker_beats_its_heartbeat(sim_process: Any) -> None:
    """The beats come from the UDS layer itself (EcuSession), over a real DoIP link to ``vci
    sim``: a job of many requests is alive as long as its requests come and go."""
    from firmware_py.config import TransportConfig
    from firmware_py.uds.vehicle import VehicleSession

    beats: list[str] = []

    def clock() -> float:
        beats.append(threading.current_thread().name)
        return time.monotonic()

    transport = TransportConfig(doip_host=sim_process.doip_host, doip_port=sim_process.doip_port)
    worker = VehicleWorker(lambda: VehicleSession.open(transport, "doip"))
    worker.heartbeat = heartbeat.Heartbeat(clock=clock)

    def five_requests(vehicle: Any) -> None:
        del beats[:]  # what opening the link did is not counted
        for _ in range(5):
            vehicle.ecu("DME").raw(bytes.fromhex("22F190"))

    async def scenario() -> None:
        await worker.start()
        try:
            await worker.run(five_requests)
        finally:
            worker.close()

    asyncio.run(scenario())
    on_worker = [name for name in beats if name.startswith("vci-vehicle")]
    assert len(on_worker) >= 5 + 1  # one (or two) per request, and idle at the end
    assert on_worker == beats  # no other thread (tester present) beat the worker's heartbeat


def test_on_stop_a_live_worker_extends_the_stop_timeout_instead_of_pinging(
    notify_socket: NotifySocket,
) -> None:
    async def scenario() -> list[list[str]]:
        notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
        pings = asyncio.create_task(keep_watchdog(notifier, 0.2, lambda: None))
        receive = asyncio.get_running_loop().run_in_executor
        try:
            await receive(None, notify_socket.wait_for, "WATCHDOG=1", 2)
            notifier.stop()  # SIGTERM: the gateway waits for its running jobs
            return await receive(None, lambda: list(notify_socket.messages(0.5)))
        finally:
            pings.cancel()
            notifier.close()

    messages = asyncio.run(scenario())
    stopping = next(i for i, m in enumerate(messages) if "STOPPING=1" in m)
    after = messages[stopping + 1 :]  # pings sent before the stop may still be in the queue
    assert len(after) >= 3 and all(m == ["EXTEND_TIMEOUT_USEC=30000000"] for m in after), messages
