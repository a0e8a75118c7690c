"""The job runner: the one place where every job - from the CLI, the tablet page or the
portal - is checked and run.

For each job it (docs/architecture.md, "Everything is a job"):

1. checks the caller's entitlement once, when the job starts (a programming job that started
   under a valid ticket is never cut off by the ticket's end; the next job is denied). Resuming
   a journaled programming job that was interrupted is not checked again: it finishes what a
   valid ticket started, and the journal, not the request, says what it flashes;
2. checks the preconditions it owns (vehicle connected, no other exclusive job on that ECU, no
   job that holds the whole vehicle - the ENET bridge - open);
3. runs the job's handler on the vehicle worker thread, which serialises access to the car;
4. publishes ``job.*`` events on the event bus: accepted/denied, started, step/progress, done/failed.

Handlers are plain synchronous functions ``handler(vehicle, ctx) -> dict`` declared in a table
(:data:`firmware_py.gateway.job_handlers.HANDLERS`); they report progress with ``ctx.progress``.
Journaling of steps that change the car is the handler's sequencer's business (the flash and
coding sequencers write the journal before each step).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from firmware_py.errors import EntitlementError, PreconditionError, VciError
from firmware_py.gateway.events import EventBus
from firmware_py.gateway.flash_journal import FlashJournal
from firmware_py.gateway.job_params import check_params
from firmware_py.heartbeat import Heartbeat
from firmware_py.i18n import N_, Text

log = logging.getLogger(__name__)

#: Jobs that hold the vehicle while they run (the car has one tester at a time): while one runs,
#: every other job is refused with this message (formatted with the job's params), and one is
#: admitted only when no other job is queued or running.
VEHICLE_HOLDING = {"enet_bridge": N_("the ENET bridge is open for {client}; close it first")}

#: Jobs whose ticket is not consumed when they start but when what they send is delivered: the
#: handler reserves it (``ctx.decision``), and the portal's acknowledgement consumes it
#: (a help-desk request: docs/helpdesk.md); a failed send never uses it up.
CONSUMED_ON_DELIVERY = frozenset({"help_desk_request"})

#: Jobs that run when no car answers, given ``None`` for the vehicle: a help-desk request is most
#: needed when the car does not talk at all (the bundle then says why there is no vehicle data).
VEHICLE_OPTIONAL = frozenset({"help_desk_request"})


def _bound_vin(decision: Any) -> str | None:
    """The VIN the ticket chosen for a job is bound to, if any."""
    vin = getattr(decision, "vin", None)
    return vin if isinstance(vin, str) else None


def vin_in_result(kind: str, result: Any) -> str | None:
    """The VIN a job's result carries (read_vin, identify, read_did of F190), if any."""
    if not isinstance(result, dict):
        return None
    if kind in ("read_vin", "identify"):
        vin = result.get("vin")
    elif kind == "read_did":
        vin = ((result.get("dids") or {}).get("F190") or {}).get("value")
    else:
        return None
    return vin if isinstance(vin, str) and vin else None


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DENIED = "denied"


@dataclass(frozen=True)
class Caller:
    """Who asked: ``origin`` is ``cli``, ``tablet`` or ``portal``; ``who`` names the tablet or
    the remote technician (for the session log)."""

    origin: str
    who: str = ""


@dataclass(frozen=True)
class JobRequest:
    kind: str
    """A :class:`firmware_py.gateway.entitlements.JobKind` value, e.g. ``read_fault_memory``."""
    params: Mapping[str, Any] = field(default_factory=dict)
    ecu: str | None = None
    """Target ECU (name or address) for single-ECU jobs; ``None`` means all or not applicable."""


@dataclass
class Job:
    id: str
    request: JobRequest
    caller: Caller
    state: JobState = JobState.QUEUED
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    """the last step and progress published (a page that reloads shows it)"""
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.request.kind,
            "ecu": self.request.ecu,
            "params": dict(self.request.params),
            "origin": self.caller.origin,
            "who": self.caller.who,
            "state": self.state.value,
            "result": self.result,
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
            "progress": dict(self.progress),
        }


class EntitlementCheck(Protocol):
    """What the runner needs of :class:`firmware_py.gateway.entitlements.Entitlements`."""

    def check(self, job: Any, *, vin: str | None, params: Mapping[str, Any]) -> Any: ...
    def consume(self, decision: Any) -> None: ...


class JobContext:
    """Handed to a handler on the vehicle worker thread."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self._runner = runner
        self.job = job
        self.params = job.request.params
        self.ecu = job.request.ecu
        self.services = runner.services
        self.decision: Any = None
        """the entitlement decision the job runs under (its ticket), if any"""
        self.entitlements = runner.entitlements
        self._last_progress: dict[Any, float] = {}
        """when progress was last published, per ECU (parallel programming reports several)"""
        self.vehicle: Any = None

    def on(self, vehicle: Any) -> JobContext:
        self.vehicle = vehicle
        return self

    @property
    def cancelled(self) -> bool:
        """True once someone asked to stop the job (long-running jobs such as live data check it)."""
        return self.job.cancel.is_set()

    def step(self, name: str, **data: Any) -> None:
        """A new step of the job began (always published). ``name``'s placeholders are filled
        from ``data`` (``step("write coding of {ecu}", ecu="BDC")``; a data file's
        ``{"en":..,"de":..}`` is a value too): ``step`` is its English, ``step_i18n`` the template
        the tablet shows in its language."""
        shown = {**data, **_step(name, data)}
        self.job.progress = shown
        self._runner.bus.publish("job.step", shown, job_id=self.job.id)

    def progress(self, min_interval: float = 0.1, **data: Any) -> None:
        """Progress within a step; rate-limited to one event per ``min_interval`` seconds unless
        ``percent`` reaches 100. A ``step`` in it is filled as :meth:`step` fills one."""
        now = time.monotonic()
        key = data.get("ecu")
        if data.get("percent", 0) < 100 and now - self._last_progress.get(key, 0.0) < min_interval:
            return
        self._last_progress[key] = now
        if "step" in data:
            data.update(_step(data["step"], data))
        self.job.progress.update(data)
        self._runner.bus.publish("job.progress", data, job_id=self.job.id)


def _step(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """A step's English (``step``) and, when it has placeholders ``data`` fills, its template and
    values (``step_i18n``: firmware_py/i18n.py Text) for the tablet to translate."""
    try:
        named = {f for _, f, _, _ in string.Formatter().parse(name) if f}
    except ValueError:  # braces that are no placeholders: the name as it is
        named = set()
    if not named or not named <= data.keys():
        return {"step": name, "step_i18n": None}
    text = Text(name, {k: data[k] for k in named})
    return {"step": str(text), "step_i18n": text.to_json()}


Handler = Callable[[Any, JobContext], dict[str, Any]]


def _link_epoch(vehicle: Any) -> Any:
    """Changes whenever the vehicle's link connected again (``VehicleSession.connects``)."""
    return getattr(vehicle, "connects", None)


class VehicleAbsent:
    """What a :data:`VEHICLE_OPTIONAL` job gets when no car could be reached: every use of it
    raises the error the link gave, so a handler's "read what the car gives" paths record why."""

    link = None
    """no vehicle link, so no trace of it"""

    def __init__(self, error: VciError) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self.error

    def close(self) -> None:
        pass


class VehicleWorker:
    """One thread per connected vehicle. The vehicle object (e.g. a ``VehicleSession``) is opened
    lazily on that thread by ``open_vehicle`` and re-opened after a lost connection.

    :attr:`vin` is the VIN of the car connected now, as far as the worker knows: it is forgotten
    when the link is closed or lost, and read again (``read_vin``, on the worker thread) after
    every (re)open and every reconnect of the link. Entitlement checks of VIN-bound tickets use it.
    """

    def __init__(
        self,
        open_vehicle: Callable[[], Any],
        name: str = "vehicle",
        read_vin: Callable[[Any], str | None] | None = None,
    ) -> None:
        self._open_vehicle = open_vehicle
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vci-{name}")
        self._vehicle: Any = None
        self._read_vin = read_vin
        self.vin: str | None = None
        self._vin_epoch: Any = None
        self.heartbeat = Heartbeat()
        """busy while the thread runs a call, beaten before each bounded wait in it (every UDS
        request): the service watchdog pings only while it is not stalled (docs/appliance.md)"""

    @property
    def vehicle(self) -> Any:
        """The vehicle open now (None: none), e.g. for the trace its link writes."""
        return self._vehicle

    @property
    def reads_vin(self) -> bool:
        return self._read_vin is not None

    def learn_vin(self, vehicle: Any) -> str | None:
        """Read the VIN of the car connected now (worker thread); ``None`` if none answers."""
        self.vin = None
        if self._read_vin is not None:
            try:
                self.vin = self._read_vin(vehicle)
            except Exception as err:  # noqa: BLE001 - an unread VIN is unknown, not a failed job
                log.info("the VIN could not be read: %s", err)
        self._vin_epoch = _link_epoch(vehicle)
        return self.vin

    def _with_vehicle(self, fn: Callable[[Any], Any], optional: bool = False) -> Any:
        self.heartbeat.attach()
        self.heartbeat.busy()
        try:
            return self._call(fn, optional)
        finally:
            self.heartbeat.idle()

    def _call(self, fn: Callable[[Any], Any], optional: bool = False) -> Any:
        if self._vehicle is None:
            try:
                self._vehicle = self._open_vehicle()
            except VciError as err:
                if not optional:
                    raise
                log.info("running without a vehicle: %s", err)
                self.vin = None
                return fn(VehicleAbsent(err))
            self.learn_vin(self._vehicle)
        try:
            return fn(self._vehicle)
        except VciError as err:
            if err.code in ("connection_lost", "vehicle_not_found"):
                self._close_vehicle()
            raise
        finally:
            vehicle = self._vehicle
            if vehicle is not None and _link_epoch(vehicle) != self._vin_epoch:
                self.learn_vin(vehicle)  # the link connected again: maybe to another car

    def _close_vehicle(self) -> None:
        self.vin = None
        vehicle, self._vehicle = self._vehicle, None
        if vehicle is not None:
            try:
                vehicle.close()
            except Exception:  # noqa: BLE001 - closing a broken link must not hide the cause
                log.exception("closing the vehicle link failed")

    async def start(self) -> None:
        """Start the thread (without opening the vehicle): it answers before this returns."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.heartbeat.attach)

    async def run(self, fn: Callable[[Any], Any], optional: bool = False) -> Any:
        """Call ``fn(vehicle)`` on the vehicle's thread. ``optional``: when the vehicle cannot
        be opened, ``fn`` gets a :class:`VehicleAbsent` instead of the job failing."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_vehicle, fn, optional)

    def close(self) -> None:
        self._executor.submit(self._close_vehicle)
        self._executor.shutdown(wait=True)


class JobRunner:
    def __init__(
        self,
        *,
        bus: EventBus,
        worker: VehicleWorker,
        handlers: Mapping[str, Handler],
        entitlements: EntitlementCheck | None,
        exclusive_kinds: frozenset[str] = frozenset({"programming", "coding"}),
        services: Mapping[str, Any] | None = None,
        precondition: Callable[[JobRequest], None] | None = None,
    ) -> None:
        self.bus = bus
        self.precondition = precondition
        """checked before a job is admitted, after its parameters (the gateway: can the record
        of a job that changes the car be kept?); raises to refuse"""
        self.worker = worker
        self.handlers = handlers
        self.entitlements = entitlements
        self.exclusive_kinds = exclusive_kinds
        self.services = dict(services or {})
        """what handlers need besides the vehicle (the store, the configuration)"""
        self._busy_ecus: set[str] = set()
        self._holder: Job | None = None
        """the running job that holds the vehicle (:data:`VEHICLE_HOLDING`), if any"""
        self._tasks: set[asyncio.Task[Job]] = set()
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def active(self) -> list[Job]:
        """The jobs queued or running (a system update or a vehicle-holding job waits for none)."""
        return [j for j in self.jobs.values() if j.state in (JobState.QUEUED, JobState.RUNNING)]

    def _new_id(self) -> str:
        return f"{time.strftime('%Y%m%d')}-{next(self._ids):04d}-{uuid.uuid4().hex[:6]}"

    def admit(self, request: JobRequest, caller: Caller) -> tuple[Job, Any]:
        """Entitlement and precondition checks; raises (and publishes ``job.denied``) if refused.
        Bad parameters and a box that cannot keep the job's record are refused before the job
        exists (it is not in the job list)."""
        check_params(request.kind, request.params, local=caller.origin == "cli")
        if self.precondition is not None:
            self.precondition(request)
        job = Job(id=self._new_id(), request=request, caller=caller)
        self.jobs[job.id] = job
        try:
            if request.kind not in self.handlers:
                raise PreconditionError(
                    N_("the gateway has no job {kind}"), values={"kind": repr(request.kind)}
                )
            decision = None
            if self.entitlements is not None and not self._journaled_resume(request):
                # the scope of THIS request (a raw request's is that of what it does)
                decision = self.entitlements.check(
                    request.kind, vin=self.worker.vin, params=request.params
                )
                if not decision.allowed:
                    allow = ", ".join(decision.would_allow) or "none"
                    raise EntitlementError(
                        N_("{job} is not allowed: {reason}"),
                        values={
                            "job": decision.job or request.kind,
                            "reason": decision.why or decision.reason,
                        },
                        hint=N_("Add a ticket of a tariff that includes it ({tariffs})"),
                        hint_values={"tariffs": allow},
                    )
            self._check_vehicle_free(job)
            if request.kind in self.exclusive_kinds and request.ecu in self._busy_ecus:
                raise PreconditionError(
                    N_("another {kind} job is running on ECU {ecu}"),
                    values={"kind": request.kind, "ecu": request.ecu},
                    hint=N_("Wait until it has finished"),
                )
        except VciError as err:
            job.state = JobState.DENIED
            job.error = err.to_dict()
            job.finished = time.time()
            self.bus.publish("job.denied", {"job": job.to_dict()}, job_id=job.id)
            raise
        if (
            decision is not None
            and self.entitlements is not None
            and not _bound_vin(decision)
            and request.kind not in CONSUMED_ON_DELIVERY
        ):
            self.entitlements.consume(decision)  # a VIN-bound ticket: once the car is checked
        if request.kind in VEHICLE_HOLDING:
            self._holder = job
        self.bus.publish("job.accepted", {"job": job.to_dict()}, job_id=job.id)
        return job, decision

    def _journaled_resume(self, request: JobRequest) -> bool:
        """A programming job that resumes an interrupted one the journal holds (the programming
        handler then flashes only what the journal names, never a new package)."""
        resume = request.params.get("resume")
        store = self.services.get("store")
        if request.kind != "programming" or not resume or store is None:
            return False
        return any(resume is True or r.job_id == resume for r in FlashJournal(store).unfinished())

    @property
    def vehicle_holder(self) -> Job | None:
        """The job that holds the vehicle now (the open ENET bridge), or None."""
        holder = self._holder
        if holder is not None and holder.state in (JobState.QUEUED, JobState.RUNNING):
            return holder
        return None

    def _check_vehicle_free(self, job: Job) -> None:
        holder = self.vehicle_holder
        if holder is not None:
            template = VEHICLE_HOLDING[holder.request.kind]
            names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
            raise PreconditionError(
                template,
                values={name: holder.request.params.get(name, "?") for name in names},
                hint=N_("Close the ENET bridge on the tablet's page or with: vci bridge close"),
            )
        if job.request.kind in VEHICLE_HOLDING:
            busy = [j for j in self.active() if j is not job]
            if busy:
                raise PreconditionError(
                    N_("job {id} ({kind}) is still using the vehicle"),
                    values={"id": busy[0].id, "kind": busy[0].request.kind},
                    hint=N_("Wait until it has finished or cancel it, then open the bridge"),
                )

    async def run(self, request: JobRequest, caller: Caller) -> Job:
        """Admit and run a job to its end; returns it (``state`` done or failed)."""
        job, decision = self.admit(request, caller)
        return await self._execute(job, decision)

    def submit(self, request: JobRequest, caller: Caller) -> Job:
        """Admit a job and run it in the background; follow it on the event bus."""
        job, decision = self.admit(request, caller)
        task = asyncio.get_running_loop().create_task(self._execute(job, decision))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def _on_vehicle(self, job: Job, decision: Any, handler: Handler, ctx: JobContext) -> Any:
        """The job on the worker thread. A job under a VIN-bound ticket runs only on that car:
        the VIN is read again right before it (the link may have connected to another car since
        the job was admitted), and the ticket is consumed only then."""
        bound = _bound_vin(decision)
        if bound is not None:
            vin = self.worker.learn_vin(ctx.vehicle) if self.worker.reads_vin else self.worker.vin
            if vin != bound:
                raise EntitlementError(
                    N_(
                        "{kind} is not allowed: the ticket is for vehicle {bound}, the car connected now is {vin}"
                    )
                    if vin
                    else N_(
                        "{kind} is not allowed: the ticket is for vehicle {bound}, the car connected now is not identified (its VIN cannot be read)"
                    ),
                    values={"kind": job.request.kind, "bound": bound, "vin": vin},
                    hint=N_("Connect the car the ticket is for, or add a ticket for this car"),
                )
            if self.entitlements is not None and job.request.kind not in CONSUMED_ON_DELIVERY:
                self.entitlements.consume(decision)
        ctx.decision = decision
        result = handler(ctx.vehicle, ctx)
        learned = vin_in_result(job.request.kind, result)
        if learned:
            self.worker.vin = learned
        return result

    async def _execute(self, job: Job, decision: Any = None) -> Job:
        handler = self.handlers[job.request.kind]
        exclusive = job.request.kind in self.exclusive_kinds and job.request.ecu is not None
        if exclusive:
            self._busy_ecus.add(job.request.ecu)  # type: ignore[arg-type]
        ctx = JobContext(self, job)
        job.state = JobState.RUNNING
        self.bus.publish("job.started", {"job": job.to_dict()}, job_id=job.id)
        try:
            job.result = await self.worker.run(
                lambda vehicle: self._on_vehicle(job, decision, handler, ctx.on(vehicle)),
                optional=job.request.kind in VEHICLE_OPTIONAL,
            )
            job.state = JobState.DONE
        except VciError as err:
            job.state = JobState.FAILED
            job.error = err.to_dict()
        except Exception as err:  # noqa: BLE001 - a bug must end the job, not the gateway
            log.exception("job %s crashed", job.id)
            job.state = JobState.FAILED
            job.error = {
                "error": "internal_error",
                "message": f"internal error: {err!r}",
                "hint": None,
            }
        finally:
            if exclusive:
                self._busy_ecus.discard(job.request.ecu)  # type: ignore[arg-type]
            job.finished = time.time()
        kind = "job.done" if job.state is JobState.DONE else "job.failed"
        self.bus.publish(kind, {"job": job.to_dict()}, job_id=job.id)
        return job

    def cancel(self, job_id: str) -> bool:
        """Ask a running job to stop at its next safe point (not every job can: see its handler)."""
        job = self.jobs.get(job_id)
        if job is None or job.state not in (JobState.QUEUED, JobState.RUNNING):
            return False
        job.cancel.set()
        return True

    async def drain(self) -> None:
        """Wait for background jobs."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """At shutdown: ask every queued or running job to stop at its next safe point (live
        data and the open bridge stop; a flash does not look and finishes), then wait for them.
        Waiting without asking would wait as long as the job runs: the bridge's hour, until
        systemd kills the gateway."""
        for job in self.active():
            job.cancel.set()
        await self.drain()
