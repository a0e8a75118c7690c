"""The job runner: one entitlement check at the start, exclusive ECU jobs, events in order,
errors end a job without ending the gateway."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from firmware_py.errors import EcuNotRespondingError, EntitlementError, PreconditionError
from firmware_py.gateway.events import EventBus
from firmware_py.gateway.jobs import Caller, JobRequest, JobRunner, JobState, VehicleWorker

CLI = Caller("cli", "test")
PKG = {"package": "egs.vcipkg"}  # the handlers here do not read it


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    ticket_id: str | None = None
    would_allow: tuple[str, ...] = ()
    job: str = ""
    why: object = None  # the reason as a text to translate (None: ``reason`` as it is)


class CountingEntitlements:
    """Allows what is in ``allowed``; counts checks so a test can see there is exactly one."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.checks: list[str] = []
        self.consumed: list[Decision] = []

    def check(self, job: str, *, vin: str | None, params: object = None) -> Decision:
        self.checks.append(job)
        ok = job in self.allowed
        return Decision(
            ok, "ok" if ok else "no ticket covers it", "T1" if ok else None, ("Basic 1 day",)
        )

    def consume(self, decision: Decision) -> None:
        self.consumed.append(decision)


class Vehicle:
    def __init__(self) -> None:
        self.thread: str | None = None
        self.closed = False

    def close(self) -> None:
        self.closed = True


def make_runner(handlers, entitlements=None):
    vehicle = Vehicle()
    bus = EventBus()
    worker = VehicleWorker(lambda: vehicle)
    runner = JobRunner(bus=bus, worker=worker, handlers=handlers, entitlements=entitlements)
    return runner, bus, worker, vehicle


def test_job_runs_on_the_vehicle_thread_and_publishes_its_events() -> None:
    def identify(vehicle, ctx):
        vehicle.thread = threading.current_thread().name
        ctx.step("read VIN")
        ctx.progress(percent=100, bytes=17)
        return {"vin": "WBAJA71090B123456"}

    async def main():
        runner, bus, worker, vehicle = make_runner({"identify": identify})
        bus.bind(asyncio.get_running_loop())
        sub = bus.subscribe()
        job = await runner.run(JobRequest("identify"), CLI)
        await asyncio.sleep(0)  # let call_soon_threadsafe deliveries run
        kinds = []
        while (event := sub.get_nowait()) is not None:
            kinds.append(event.kind)
        worker.close()
        return job, kinds, vehicle

    job, kinds, vehicle = asyncio.run(main())
    assert job.state is JobState.DONE and job.result == {"vin": "WBAJA71090B123456"}
    assert vehicle.thread is not None and vehicle.thread.startswith("vci-vehicle")
    assert kinds == ["job.accepted", "job.started", "job.step", "job.progress", "job.done"]
    assert vehicle.closed


def test_denied_job_names_the_reason_and_the_tariff_and_never_runs() -> None:
    ran = []
    ent = CountingEntitlements(allowed={"identify"})

    async def main():
        runner, bus, worker, _ = make_runner({"coding": lambda v, c: ran.append(1) or {}}, ent)
        sub = bus.subscribe()
        with pytest.raises(EntitlementError) as info:
            await runner.run(JobRequest("coding", ecu="BDC"), CLI)
        worker.close()
        return info.value, sub.get_nowait()

    err, event = asyncio.run(main())
    assert "no ticket covers it" in str(err) and "Basic 1 day" in str(err)
    assert event is not None and event.kind == "job.denied"
    assert ran == [] and ent.consumed == []


def test_entitlement_is_checked_once_at_the_start_of_a_long_job() -> None:
    ent = CountingEntitlements(allowed={"programming"})
    gate, started = threading.Event(), threading.Event()

    def programming(vehicle, ctx):
        ent.allowed.clear()  # the ticket ends while the flash runs
        started.set()
        gate.wait(5)
        return {"verified": True}

    async def main():
        runner, bus, worker, _ = make_runner({"programming": programming}, ent)
        running = asyncio.create_task(runner.run(JobRequest("programming", PKG, ecu="DME"), CLI))
        assert await asyncio.to_thread(started.wait, 5)
        with pytest.raises(EntitlementError):  # no new job after the ticket's end
            await runner.run(JobRequest("programming", PKG, ecu="EGS"), CLI)
        gate.set()
        job = await running
        worker.close()
        return job

    job = asyncio.run(main())
    assert job.state is JobState.DONE and job.result == {"verified": True}
    assert ent.checks == ["programming", "programming"]
    assert len(ent.consumed) == 1


def test_second_exclusive_job_on_the_same_ecu_is_refused() -> None:
    gate, started = threading.Event(), threading.Event()

    def coding(vehicle, ctx):
        started.set()
        gate.wait(5)
        return {}

    async def main():
        runner, _, worker, _ = make_runner({"coding": coding})
        first = runner.submit(JobRequest("coding", ecu="BDC"), CLI)
        assert await asyncio.to_thread(started.wait, 5)  # running on the vehicle worker
        with pytest.raises(PreconditionError, match="another coding job is running on ECU BDC"):
            runner.admit(JobRequest("coding", ecu="BDC"), CLI)
        gate.set()
        await runner.drain()
        worker.close()
        return first

    assert asyncio.run(main()).state is JobState.DONE


def test_a_failing_job_is_reported_and_the_next_job_runs() -> None:
    def silent(vehicle, ctx):
        raise EcuNotRespondingError("ECU DME did not answer within 1.0 s")

    def crashing(vehicle, ctx):
        raise ZeroDivisionError

    async def main():
        runner, _, worker, _ = make_runner(
            {"read_fault_memory": silent, "raw_uds": crashing, "identify": lambda v, c: {"ok": 1}}
        )
        a = await runner.run(JobRequest("read_fault_memory"), CLI)
        b = await runner.run(JobRequest("raw_uds", {"request": "22 F1 90"}), CLI)
        c = await runner.run(JobRequest("identify"), CLI)
        worker.close()
        return a, b, c

    a, b, c = asyncio.run(main())
    assert a.state is JobState.FAILED and a.error["error"] == "ecu_not_responding"
    assert b.state is JobState.FAILED and b.error["error"] == "internal_error"
    assert c.state is JobState.DONE


def test_unknown_job_kind_is_refused() -> None:
    async def main():
        runner, _, worker, _ = make_runner({})
        with pytest.raises(PreconditionError, match="no job 'fly'"):
            await runner.run(JobRequest("fly"), CLI)
        worker.close()

    asyncio.run(main())


def test_slow_subscriber_loses_progress_but_never_a_final_event() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxlen=3)
    bus.publish("job.done", {}, job_id="a")
    for i in range(10):
        bus.publish("job.progress", {"percent": i}, job_id="b")
    events = [sub.get_nowait() for _ in range(3)]
    assert events[0] is not None and events[0].kind == "job.done"
    assert sub.missed == 8
