"""Running one job from the command line through the gateway's job runner (the same entitlement
checks and events as the tablet and the portal get), on a vehicle opened from configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from firmware_py.config import Config
from firmware_py.errors import ConfigError, PreconditionError, StorageError, VciError
from firmware_py.gateway.events import Event, EventBus
from firmware_py.gateway.job_handlers import HANDLERS, vehicle_vin
from firmware_py.gateway.jobs import Caller, Job, JobRequest, JobRunner, VehicleWorker
from firmware_py.gateway.outbox import Outbox, wanted
from firmware_py.gateway.store import Store
from firmware_py.gateway.tariffs import JOB_SCOPE, JobKind
from firmware_py.i18n import N_
from firmware_py.uds.vehicle import VehicleSession

log = logging.getLogger(__name__)


def run_cli_job(
    cfg: Config,
    transport: str,
    request: JobRequest,
    *,
    entitlements: Any = None,
    on_event: Callable[[Event], None] | None = None,
    services: dict[str, Any] | None = None,
) -> Job:
    """Run ``request`` to its end; returns the job (state done, failed) or raises when denied."""
    holder = bridge_open_in_gateway(cfg)
    if holder is not None:  # the car has one tester at a time, whichever process asks
        raise PreconditionError(
            N_("the ENET bridge is open for {holder}; close it first"),
            values={"holder": holder},
            hint=N_("vci bridge close, or close it on the tablet's page"),
        )

    async def main() -> Job:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        worker = VehicleWorker(
            lambda: VehicleSession.open(cfg.transport, transport, timing=cfg.uds),
            read_vin=vehicle_vin,
        )
        runner = JobRunner(
            bus=bus, worker=worker, handlers=HANDLERS, entitlements=entitlements, services=services
        )
        sub = bus.subscribe()
        follow = asyncio.create_task(_follow(sub, on_event)) if on_event else None
        try:
            kind = JobKind._value2member_map_.get(request.kind)
            if entitlements is not None and kind is not None and JOB_SCOPE[kind] is not None:  # type: ignore[index]
                # A ticket may be bound to one vehicle: connect first (the worker reads the VIN
                # when it opens the link); a link that fails here fails the job below, with why
                with contextlib.suppress(VciError):
                    await worker.run(lambda vehicle: None)
            job = await runner.run(request, Caller("cli", "local"))
            _keep_for_portal(cfg, job, worker.vin)
            return job
        finally:
            if entitlements is not None:
                entitlements.clock.persist()  # trusted time survives every command
            await asyncio.get_running_loop().run_in_executor(None, worker.close)
            if follow is not None:
                await asyncio.sleep(0)
                follow.cancel()
            sub.close()

    return asyncio.run(main())


def bridge_open_in_gateway(cfg: Config) -> str | None:
    """The client address of an ENET bridge the running gateway (same state directory) has open,
    asked over its admin socket; None when none is open or no gateway runs."""
    from firmware_py.gateway.admin import admin_request

    try:
        _, state = admin_request(cfg.storage.state_dir, "GET", "/bridge", timeout=2.0)
    except ConfigError:
        return None  # no gateway behind a stale socket, or not ours to read
    if not isinstance(state, dict) or not state.get("open"):
        return None
    params = (state.get("job") or {}).get("params") or {}
    return str(params.get("client", "a tester"))


async def _follow(sub: Any, on_event: Callable[[Event], None]) -> None:
    while True:
        on_event(await sub.get())


def _keep_for_portal(cfg: Config, job: Job, vin: str | None) -> None:
    """What a command did to the car reaches the portal like a tablet's job: it goes to the box's
    outbox, which the gateway delivers when it runs. The car was changed whatever happens here,
    so a state directory that cannot be written is a warning, not a failed command."""
    from firmware_py.gateway import job_log

    data = job.to_dict()
    try:
        store = Store(cfg.storage.state_dir)
        job_log.record(store, data, vin)  # the session log of a later help-desk request
        if wanted(data):
            Outbox(store).keep_job(data, vin)
    except StorageError as err:
        log.warning("the result of job %s is not kept for the portal: %s", job.id, err)
