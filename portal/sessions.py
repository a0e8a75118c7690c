"""Remote sessions in the portal: a workshop's technician runs jobs on a box the workshop owns,
under a ticket of the workshop chosen automatically, and every session and job is recorded.

In order, :meth:`SessionService.start`:

1. checks the box is the actor's workshop's and not revoked (:func:`portal.boxes.require`) and
   the session is the actor's workshop's, on that box;
2. checks the job's parameters with the box's own check (firmware_py/gateway/job_params.py: the
   same declaration the forms are built from), so a bad form never reaches a box;
3. chooses the workshop's ticket for the box (:func:`choose_ticket`): a purchase for this box,
   valid now, not revoked nor refused by the box, bound to no VIN or the session's car, whose
   tariff includes the scope the job needs (firmware_py/gateway/tariffs.py: free jobs need none);
   refused with :class:`~firmware_py.errors.TicketNeeded` when there is none;
4. records the job, then sends it through the portal process's one broker connection
   (:class:`portal.remote.RemoteSession`, ``job.request`` with the ticket, which the box adds as
   it adds a delivered one) on a worker thread, and stores every answer (accepted, progress, live
   values, the result) in the database as it arrives.

Progress lives in the database, not in this process: a second portal process on the same
database shows the same job's progress and log (its pages poll the job's JSON), and the portal
stays stateless behind a load balancer. Only the process that sent a job hears the box's
answers for it (the response topic is its broker user's); when that process stops, the job
shows ``lost`` after its time-out.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.cloud.schema import Message
from firmware_py.errors import NotPermitted, TicketNeeded, error_text
from firmware_py.gateway.job_params import JOB_KINDS, check_params
from firmware_py.gateway.tariffs import TARIFFS, JobKind, required_scope
from firmware_py.i18n import N_, Language, Text, language
from portal import boxes
from portal.accounts import Actor
from portal.db.engine import write_transaction
from portal.db.models import (
    Delivery,
    DeliveryKind,
    DeliveryState,
    Purchase,
    RemoteJob,
    RemoteJobEvent,
    RemoteJobState,
    RemoteSessionRecord,
    Role,
    WorkshopBox,
)

log = logging.getLogger(__name__)

PORTAL_KINDS = (
    "identify", "read_fault_memory", "clear_fault_memory", "read_live_data", "read_did",
    "coding", "service_reset", "service_history", "programming", "emissions_data",
    "vehicle_test_report", "raw_uds",
)  # fmt: skip
"""the jobs a technician starts from the portal (the ENET bridge lends the car to a tester on
the box's Wi-Fi, the help desk has its own pages)"""
MAX_EVENTS = 4000
"""events kept per job (live data at its fastest for its longest makes 3000)"""
MAX_RESULT = 512 * 1024
"""characters of a job's result kept as JSON (a larger one is kept as its summary only)"""
MAX_RUNNING = 4
"""jobs on one box sent and not yet ended, over all its sessions; a fifth waits (the box runs
one car's jobs in turn, so more would only queue there)"""
LOST_AFTER = 60
"""seconds past a job's time-out after which a job no process follows any more counts lost"""
PACKAGE_TIMEOUT = 3600.0
"""seconds a box has to download an offered package (its download resumes within them)"""
_UNENDED = (RemoteJobState.SENT.value, RemoteJobState.RUNNING.value)
ECU_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
FINAL_STATES = (RemoteJobState.DONE, RemoteJobState.FAILED, RemoteJobState.DENIED,
                RemoteJobState.LOST)  # fmt: skip


def timeout_of(kind: str, params: Mapping[str, Any]) -> float:
    """Seconds the portal waits for a job's end before it counts it lost."""
    if kind == "read_live_data":
        return float(params.get("duration", 60)) + 60
    if kind == "programming":
        # a job from the portal's store first waits for the box's download (PACKAGE_TIMEOUT), and
        # the job row does not say whether it was offered: every programming job gets both phases
        return 1800.0 + PACKAGE_TIMEOUT
    if kind == "vehicle_test_report":
        return 1800.0
    return 180.0


def _workshop_user(actor: Actor) -> int:
    if actor.role not in (Role.OWNER, Role.TECHNICIAN) or actor.workshop_id is None:
        raise NotPermitted(
            N_("remote sessions are run by a workshop's users"),
            hint=N_("Log in as the workshop's user"),
        )
    return actor.workshop_id


def open_session(
    db: Session, actor: Actor, device: str, *, now: float | None = None
) -> RemoteSessionRecord:
    """A new remote session of ``actor`` on ``device`` (a box of the actor's workshop); the
    actor's last session on the box when no job ran in it yet (starting twice makes one)."""
    workshop_id = _workshop_user(actor)
    boxes.require(db, actor, device)
    t = int(now if now is not None else time.time())
    last = db.scalar(
        select(RemoteSessionRecord)
        .where(RemoteSessionRecord.device == device, RemoteSessionRecord.user_id == actor.user_id)
        .order_by(RemoteSessionRecord.id.desc())
        .limit(1)
    )
    if last is not None and not jobs_of(db, last.id):
        last.last_active_at = t
        return last
    record = RemoteSessionRecord(
        workshop_id=workshop_id, user_id=actor.user_id, device=device, started_at=t,
        last_active_at=t,
    )  # fmt: skip
    db.add(record)
    db.flush()
    return record


def get_session(db: Session, actor: Actor, device: str, session_id: int) -> RemoteSessionRecord:
    """The session if it is on ``device`` and of the actor's workshop (the same refusal for
    another workshop's session as for none: ids reveal nothing)."""
    found = db.get(RemoteSessionRecord, session_id)
    if found is None or found.device != device or found.workshop_id != actor.workshop_id:
        raise NotPermitted(N_("there is no session {id} of yours"), values={"id": session_id},
                           hint=N_("Start a session"))  # fmt: skip
    return found


def get_job(
    db: Session, actor: Actor, device: str, job_id: int, *, now: float | None = None
) -> RemoteJob:
    """The job if it is on ``device`` and of the actor's workshop; one whose portal process no
    longer follows it (stopped, restarted) is settled as ``lost`` once it is overdue."""
    found = db.get(RemoteJob, job_id)
    if found is None or found.device != device or found.workshop_id != actor.workshop_id:
        raise NotPermitted(N_("there is no job {id} of yours"), values={"id": job_id},
                           hint=N_("Check the number"))  # fmt: skip
    settle_overdue(db, [found], now if now is not None else time.time())
    return found


def settle_overdue(db: Session, jobs: list[RemoteJob], now: float) -> int:
    """Mark ``lost`` the jobs among ``jobs`` still ``sent`` or ``running`` long after their
    time-out (the process that sent them would have ended them); returns how many."""
    settled = 0
    for job in jobs:
        if job.state not in (RemoteJobState.SENT.value, RemoteJobState.RUNNING.value):
            continue
        due = job.created_at + timeout_of(job.kind, json.loads(job.params)) + LOST_AFTER
        if now > due:
            job.state, job.ended_at = RemoteJobState.LOST.value, int(now)
            job.summary = LOST_SUMMARY
            settled += 1
    return settled


def sessions_of(db: Session, actor: Actor, limit: int = 200) -> list[RemoteSessionRecord]:
    """The workshop's recorded sessions, newest first."""
    workshop_id = _workshop_user(actor)
    return list(
        db.scalars(
            select(RemoteSessionRecord)
            .where(RemoteSessionRecord.workshop_id == workshop_id)
            .order_by(RemoteSessionRecord.id.desc())
            .limit(limit)
        )
    )


def jobs_of(db: Session, session_id: int) -> list[RemoteJob]:
    return list(
        db.scalars(
            select(RemoteJob).where(RemoteJob.session_id == session_id).order_by(RemoteJob.id)
        )
    )


def events_of(db: Session, job_id: int, after: int = 0, limit: int = 500) -> list[RemoteJobEvent]:
    """The job's events with an id above ``after``, oldest first (the page polls with the last
    id it has)."""
    return list(
        db.scalars(
            select(RemoteJobEvent)
            .where(RemoteJobEvent.job_id == job_id, RemoteJobEvent.id > after)
            .order_by(RemoteJobEvent.id)
            .limit(limit)
        )
    )


def _usable(db: Session, purchase: Purchase) -> bool:
    """Not revoked, and not refused by its box."""
    for delivery in db.scalars(select(Delivery).where(Delivery.purchase_id == purchase.id)):
        if delivery.kind == DeliveryKind.REVOCATION.value:
            return False
        if delivery.state == DeliveryState.REFUSED.value:
            return False
    return True


def choose_ticket(
    db: Session, workshop_id: int, device: str, kind: str, params: Mapping[str, Any],
    vin: str | None, now: float,
) -> Purchase | None:  # fmt: skip
    """The workshop's purchase whose ticket the job runs under; None for a job that needs no
    ticket. Of several, the one whose window ends first (one-use tickets last: each use counts).
    A ticket bound to a VIN is taken when the session's car is that one, or not yet known (the
    box then checks the car it is connected to)."""
    scope = required_scope(JobKind(kind), params)
    if scope is None:
        return None
    candidates = db.scalars(
        select(Purchase).where(Purchase.workshop_id == workshop_id, Purchase.device == device)
    )
    fitting = [
        p for p in candidates
        if scope in TARIFFS[p.tariff].scopes
        and (p.starts_at is None or (p.starts_at <= now and p.ends_at is not None and now < p.ends_at))
        and (p.vin is None or vin is None or p.vin == vin)
        and _usable(db, p)
    ]  # fmt: skip
    if not fitting:
        # the job's name is the job declaration's label, translated with the message (a
        # lower-cased label would be a text no catalogue has)
        raise TicketNeeded(
            N_("the workshop has no valid ticket for box {device} that includes {scope} "
               "(needed by: {job})"),
            values={"device": device, "scope": scope.value, "job": Text(JOB_KINDS[kind].label)},
        )  # fmt: skip
    return min(fitting, key=lambda p: (p.ends_at is None, p.ends_at or 0, p.id))


LOST_SUMMARY = N_("no answer reached the portal (the box or the portal was away)")
STATES = {
    RemoteJobState.SENT.value: N_("sent"), RemoteJobState.RUNNING.value: N_("running"),
    RemoteJobState.DONE.value: N_("done"), RemoteJobState.FAILED.value: N_("failed"),
    RemoteJobState.DENIED.value: N_("denied"), RemoteJobState.LOST.value: N_("lost"),
}  # fmt: skip
"""a job's state in the reader's words"""


def summary_of(kind: str, job: Mapping[str, Any], reader: Language | None = None) -> str:
    """One line for the session list: what the job found or why it failed (in English, as it is
    stored; in ``reader``'s language for a page, :func:`shown_summary`)."""
    lang = reader or language(None)
    _ = lang.gettext
    if job.get("state") != "done":
        why = error_text(job.get("error"), lang, with_hint=False) or str(job.get("state"))
        return _("failed: {why}", why=why)[:500]
    result = job.get("result")
    if not isinstance(result, dict):
        return _("done")
    if kind == "identify":
        ecus = result.get("ecus") or []
        return lang.ngettext("VIN {vin}, {n} ECU", "VIN {vin}, {n} ECUs", len(ecus),
                             vin=result.get("vin") or "-")[:500]  # fmt: skip
    if kind == "read_fault_memory":
        ecus = result.get("ecus") or []
        faults = sum(len(e.get("dtcs") or []) for e in ecus if isinstance(e, dict))
        return lang.ngettext("{n} fault in {ecus} ECUs", "{n} faults in {ecus} ECUs", faults,
                             ecus=len(ecus))  # fmt: skip
    if kind == "read_live_data":
        return _("{rounds} rounds in {seconds} s", rounds=result.get("rounds", 0),
                 seconds=lang.number(result.get("seconds", 0)))  # fmt: skip
    return _("done")


def shown_summary(job: RemoteJob, reader: Language) -> str:
    """A recorded job's summary in ``reader``'s language: made again from the box's answer the
    portal kept, else (a lost job, an answer too large to keep) as it was stored."""
    if job.state == RemoteJobState.LOST.value:
        return reader.gettext(LOST_SUMMARY)
    kept = json.loads(job.result) if job.result else None
    if isinstance(kept, dict) and "state" in kept:
        return summary_of(job.kind, kept, reader)
    return job.summary


class SessionService:
    """Starts jobs on boxes and records them (module docstring). ``remote``: the process's
    broker connection; None when the portal runs without a broker (jobs are refused then)."""

    def __init__(
        self, factory: sessionmaker[Session], remote: Any | None,
        clock: Callable[[], float] = time.time, packages: Any | None = None,
        package_url: str | None = None,
    ) -> None:  # fmt: skip
        """``packages``: the portal's package store (portal/packages.py) and ``package_url`` the
        address boxes reach ``vci-portal serve`` at; without them no package is offered."""
        self.factory, self.remote, self.clock = factory, remote, clock
        self.packages, self.package_url = packages, package_url
        self.threads: dict[int, threading.Thread] = {}

    def program_from_store(self, actor: Actor, device: str, session_id: int, sha256: str) -> int:
        """Programming with a package of the portal's store: the box is offered the package
        (``package.offer``), downloads it into its package store, then the programming job runs
        with it under the workshop's ticket chosen as for every job; the recorded job's id."""
        from firmware_py.gateway.package_offer import PackageOffer

        if self.packages is None or not self.package_url:
            raise NotPermitted(
                N_("this portal keeps no package store for remote programming"),
                hint=N_(
                    "The operator starts vci-portal serve with --publisher-keys DIR and --public-url URL"
                ),
            )
        info = self.packages.get(sha256)
        if info is None:
            raise NotPermitted(N_("the store has no such package"),
                               hint=N_("Choose a package of the list"))  # fmt: skip
        offer = self.packages.offer(device, sha256, self.package_url, now=self.clock())
        on_box = PackageOffer(info.name, "", info.size, sha256, 0).file_name
        return self.start(
            actor, device, session_id, "programming", info.ecu, {"package": on_box}, offer=offer
        )

    def start(
        self, actor: Actor, device: str, session_id: int, kind: str, ecu: str | None,
        params: dict[str, Any], offer: str | None = None,
    ) -> int:  # fmt: skip
        """Record and send one job; returns the recorded job's id (its progress follows in the
        database). Refusals: :class:`NotPermitted`, :class:`TicketNeeded`,
        :class:`~firmware_py.strict_json.StrictJsonError` (the parameters)."""
        workshop_id = _workshop_user(actor)
        if kind not in PORTAL_KINDS:
            raise NotPermitted(
                N_("{value} is not a remote job"),
                values={"value": repr(kind[:40])},
                hint=N_("Choose a job of the list"),
            )
        check_params(kind, params)
        if ecu is not None and not ECU_NAME.fullmatch(ecu):
            raise NotPermitted(N_("{text} is not an ECU name"), values={"text": repr(ecu[:40])},
                               hint=N_("e.g. DME, EGS, BDC"))  # fmt: skip
        if JOB_KINDS[kind].needs_ecu and not ecu:
            raise NotPermitted(N_("{job} works on one ECU"), hint=N_("Name the ECU"),
                               values={"job": Text(JOB_KINDS[kind].label)})  # fmt: skip
        now = self.clock()
        with write_transaction(self.factory) as db:  # kept even when the job is refused
            boxes.require(db, actor, device)
            get_session(db, actor, device, session_id)
            settle_overdue(db, list(db.scalars(select(RemoteJob).where(
                RemoteJob.device == device, RemoteJob.state.in_(_UNENDED)))), now)  # fmt: skip
        with write_transaction(self.factory) as db:
            boxes.require(db, actor, device)
            # one start per box at a time (PostgreSQL: the box's row locked; SQLite: one writer)
            db.execute(select(WorkshopBox.id).where(WorkshopBox.device == device).with_for_update())
            session = get_session(db, actor, device, session_id)
            running = db.scalar(
                select(func.count()).select_from(RemoteJob).where(
                    RemoteJob.device == device,
                    RemoteJob.state.in_(_UNENDED),
                )
            )  # fmt: skip
            if (running or 0) >= MAX_RUNNING:
                raise NotPermitted(
                    N_("{max_running} jobs on box {device} are still running"),
                    values={"max_running": MAX_RUNNING, "device": device},
                    hint=N_("Wait for one to end (the box runs one car's jobs in turn)"),
                )
            purchase = choose_ticket(db, workshop_id, device, kind, params, session.vin, now)
            if self.remote is None:
                raise NotPermitted(
                    N_("this portal has no broker link to the boxes"),
                    hint=N_(
                        "The operator starts vci-portal serve with --broker, --pki and --broker-user"
                    ),
                )
            job = RemoteJob(
                session_id=session.id, workshop_id=workshop_id, user_id=actor.user_id,
                device=device, kind=kind, ecu=ecu, params=json.dumps(params),
                purchase_id=purchase.id if purchase else None, state=RemoteJobState.SENT.value,
                summary="", created_at=int(now),
            )  # fmt: skip
            db.add(job)
            session.last_active_at = int(now)
            db.flush()
            job_id, ticket = job.id, purchase.ticket if purchase else None
        worker = threading.Thread(
            target=self._run, args=(job_id, device, kind, ecu, params, ticket, offer), daemon=True,
            name=f"remote-job-{job_id}",
        )  # fmt: skip
        self.threads[job_id] = worker
        worker.start()
        return job_id

    def cancel(self, actor: Actor, device: str, session_id: int, job_id: int) -> None:
        """Ask the box to stop a running job of this session (live data stops at once;
        programming and coding run to their end, as on the tablet). Its result follows as usual."""
        _workshop_user(actor)
        with self.factory() as db:
            get_session(db, actor, device, session_id)
            job = get_job(db, actor, device, job_id)
            if job.session_id != session_id:
                raise NotPermitted(N_("there is no job {id} of yours"), values={"id": job_id},
                                   hint=N_("Check the number"))  # fmt: skip
            box_job = job.box_job
            if job.state != RemoteJobState.RUNNING.value or not box_job:
                raise NotPermitted(
                    N_("the job is not running"), hint=N_("Only a running job stops")
                )
        if self.remote is None:
            raise NotPermitted(
                N_("this portal has no broker link to the boxes"),
                hint=N_(
                    "The operator starts vci-portal serve with --broker, --pki and --broker-user"
                ),
            )
        self.remote.cancel(device, box_job)

    # -- the job's worker thread -----------------------------------------------------------------
    def _run(
        self, job_id: int, device: str, kind: str, ecu: str | None, params: dict[str, Any],
        ticket: str | None, offer: str | None = None,
    ) -> None:  # fmt: skip
        assert self.remote is not None  # start() refuses jobs without it
        try:
            if offer is not None:  # the package first (program_from_store)
                stored = self.remote.exchange(
                    device, Message("package.offer", {"offer": offer}), PACKAGE_TIMEOUT
                )
                self._event(job_id, stored)
                if stored.type != "package.stored":
                    self._final(job_id, kind, stored)
                    return
            final = self.remote.run(
                device, kind, ecu=ecu, params=params, ticket=ticket,
                timeout=timeout_of(kind, params), on_event=lambda m: self._event(job_id, m),
            )  # fmt: skip
            self._final(job_id, kind, final)
        except Exception as err:  # the broker away, no answer in time, a bug: the job is lost
            log.warning("remote job %d on %s: %s", job_id, device, err)
            self._end(job_id, RemoteJobState.LOST, f"no answer from the box: {err}"[:500], None)
        finally:
            self.threads.pop(job_id, None)

    def _event(self, job_id: int, message: Message) -> None:
        body = message.body
        with write_transaction(self.factory) as db:
            count = db.scalar(
                select(RemoteJobEvent.id).where(RemoteJobEvent.job_id == job_id)
                .order_by(RemoteJobEvent.id.desc()).offset(MAX_EVENTS - 1).limit(1)
            )  # fmt: skip
            if count is None:
                db.add(RemoteJobEvent(job_id=job_id, at=self.clock(), type=message.type,
                                      body=json.dumps(body)))  # fmt: skip
            values: dict[str, Any] = {"state": RemoteJobState.RUNNING.value}
            if message.type == "job.accepted":
                values["box_job"] = str((body.get("job") or {}).get("id", ""))[:64] or None
            percent = body.get("percent")
            if isinstance(percent, int | float) and not isinstance(percent, bool):
                values["progress"] = max(0, min(100, int(percent)))
            if message.type not in ("job.result", "job.denied", "error"):
                db.execute(
                    update(RemoteJob)
                    .where(RemoteJob.id == job_id, RemoteJob.state.in_(("sent", "running")))
                    .values(**values)
                )

    def _final(self, job_id: int, kind: str, message: Message) -> None:
        body = message.body
        if message.type == "job.result":
            found = body.get("job")
            job: dict[str, Any] = found if isinstance(found, dict) else {}
            state = RemoteJobState.DONE if job.get("state") == "done" else RemoteJobState.FAILED
            self._end(job_id, state, summary_of(kind, job), job)
            result = job.get("result")
            done = state is RemoteJobState.DONE and isinstance(result, dict)
            vin = result.get("vin") if done and isinstance(result, dict) else None
            if isinstance(vin, str) and len(vin) == 17:
                with write_transaction(self.factory) as db:
                    found = db.get(RemoteJob, job_id)
                    assert found is not None
                    db.execute(
                        update(RemoteSessionRecord)
                        .where(RemoteSessionRecord.id == found.session_id)
                        .values(vin=vin)
                    )
            return
        text = str(body.get("message") or message.type)
        if body.get("hint"):
            text += f". {body['hint']}"
        self._end(job_id, RemoteJobState.DENIED, f"refused by the box: {text}"[:500], body)

    def _end(self, job_id: int, state: RemoteJobState, summary: str, result: Any | None) -> None:
        kept = json.dumps(result) if result is not None else None
        if kept is not None and len(kept) > MAX_RESULT:
            kept = json.dumps({"note": "the result was too large to keep; see its summary"})
        with write_transaction(self.factory) as db:
            db.execute(
                update(RemoteJob)
                .where(RemoteJob.id == job_id)
                .values(state=state.value, summary=summary, result=kept,
                        ended_at=int(self.clock()),
                        progress=100 if state is RemoteJobState.DONE else RemoteJob.progress)
            )  # fmt: skip

    def wait(self, job_id: int, timeout: float) -> None:
        """Until the job's worker thread ended (tests, shutdown)."""
        worker = self.threads.get(job_id)
        if worker is not None:
            worker.join(timeout)


MAX_BOX_TRACE = 256 * 2**20
"""bytes of a box's trace the session page downloads at most (the box keeps 256 MiB of them)"""


def box_trace(
    service: SessionService, factory: sessionmaker[Session], actor: Actor, device: str,
    session_id: int,
) -> Iterator[tuple[str, bytes]]:  # fmt: skip
    """The box's newest vehicle-link trace (pcap) in pieces, fetched from the box with
    ``trace.read`` as the download goes: (the trace's name, bytes). The size is the one the box
    said first (a trace still growing is cut there); :class:`NotPermitted` when the box refuses."""
    from firmware_py.cloud.schema import Message

    _workshop_user(actor)
    with factory() as db:
        get_session(db, actor, device, session_id)
    if service.remote is None:
        raise NotPermitted(
            N_("this portal has no broker link to the boxes"),
            hint=N_("The operator starts vci-portal serve with --broker, --pki and --broker-user"),
        )
    name, offset, size = "", 0, None
    while size is None or offset < size:
        answer = service.remote.exchange(
            device, Message("trace.read", {"name": name, "offset": offset}), 30.0
        )
        if answer.type != "trace.chunk":
            why = str(answer.body.get("message") or "")
            raise NotPermitted(N_("the box sends no trace: {why}"), values={"why": why},
                               hint=str(answer.body.get("hint") or N_("Run a job first")))  # fmt: skip
        data = base64.b64decode(str(answer.body.get("data", "")), validate=True)
        if size is None:
            name, size = (
                str(answer.body.get("name")),
                min(int(answer.body.get("size", 0)), MAX_BOX_TRACE),
            )
        data = data[: size - offset]
        if not data:  # the file shrank (pruned): what came is what there is
            return
        yield name, data
        offset += len(data)


def trace_of(db: Session, actor: Actor, device: str, session_id: int) -> dict[str, Any]:
    """The session's log as JSON for download: the session, each job with its parameters,
    result and every event the box sent."""
    session = get_session(db, actor, device, session_id)
    jobs = []
    for job in jobs_of(db, session.id):
        jobs.append({
            "id": job.id, "kind": job.kind, "ecu": job.ecu, "params": json.loads(job.params),
            "state": job.state, "summary": job.summary, "created_at": job.created_at,
            "ended_at": job.ended_at, "ticket_purchase": job.purchase_id,
            "result": json.loads(job.result) if job.result else None,
            "events": [{"at": e.at, "type": e.type, "body": json.loads(e.body)}
                       for e in events_of(db, job.id, limit=MAX_EVENTS)],
        })  # fmt: skip
    return {
        "session": session.id, "box": session.device, "vin": session.vin,
        "user": session.user_id, "started_at": session.started_at, "jobs": jobs,
    }  # fmt: skip
