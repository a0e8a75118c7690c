"""The raw UDS job: one request to one ECU, from the tablet, the portal or ``vci uds``, with the
box's own tester present and timeouts. Runs on the vehicle worker thread.

The job runner has already checked the entitlement for what this request does
(:func:`firmware_py.gateway.tariffs.required_scope`). Here, before the request is sent:
programming and unknown requests (erase, download, the programming session ...) need the battery
floor of programming (``FlashOptions.min_voltage``), and every request that is not a read is
written to the session log (the outbox, committed first) with its class and bytes, so that what
was sent to a car is on record even if the box loses power during it. The job's result (kept by
the outbox like every raw request's) carries the class as well.
"""

from __future__ import annotations

import time
from typing import Any

from firmware_py.errors import NegativeResponseError, PreconditionError, VciError
from firmware_py.gateway.battery import SOURCE_TEXT, floor_voltage
from firmware_py.gateway.jobs import JobContext
from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.tariffs import RAW_BATTERY_FLOOR, raw_request
from firmware_py.i18n import N_
from firmware_py.uds.catalog import EcuInfo
from firmware_py.uds.flash.sequencer import FlashOptions
from firmware_py.uds.raw_requests import RawRequest
from firmware_py.uds.vehicle import VehicleSession


def raw_uds(vehicle: VehicleSession, ctx: JobContext, info: EcuInfo) -> dict[str, Any]:
    raw = raw_request(
        ctx.params
    )  # whole hex bytes, not empty: checked with the params (job_params)
    if raw.raw_class in RAW_BATTERY_FLOOR:
        _battery_floor(vehicle, ctx, raw)
    if raw.changes_car:
        _session_log(ctx, info, raw)
    out: dict[str, Any] = {"ecu": info.name, **raw.to_dict()}
    try:
        response = vehicle.ecu(info).raw(raw.request)
    except NegativeResponseError as err:
        # on a raw channel the ECU's refusal is the answer the technician asked for
        response = bytes([0x7F, err.service, err.nrc])
        out.update(nrc=err.nrc, nrc_name=err.nrc_name)
    out["response"] = response.hex(" ")
    return out


def _battery_floor(vehicle: VehicleSession, ctx: JobContext, raw: RawRequest) -> None:
    floor = ctx.services.get("flash_options", FlashOptions()).min_voltage
    read, source = floor_voltage(ctx.services, vehicle)
    try:
        volts = read()
    except VciError as err:
        raise PreconditionError(
            N_(
                "{what} needs the battery voltage, which could not be read: {err}. Nothing was sent"
            ),
            values={"what": raw.what, "err": err},
            hint=N_("Check the vehicle connection and connect a charger"),
        ) from err
    if volts < floor:
        raise PreconditionError(
            N_(
                "battery voltage {volts} V is below {floor} V, the floor for {what} ({value}). Nothing was sent"
            ),
            values={
                "volts": format(volts, ".1f"),
                "floor": format(floor, ".1f"),
                "what": raw.what,
                "value": SOURCE_TEXT[source],
            },
            hint=N_("Connect a battery charger and repeat the request"),
        )


def _session_log(ctx: JobContext, info: EcuInfo, raw: RawRequest) -> None:
    """A record for the portal before the request goes to the car (the box's ``vci uds`` has no
    store open here; its job result reaches the outbox afterwards)."""
    store = ctx.services.get("store")
    if store is None:
        return
    job = ctx.job
    Outbox(store).put(
        "session_log",
        {
            "job": job.id,
            "origin": job.caller.origin,
            "who": job.caller.who,
            "ecu": info.name,
            "time": time.time(),
            **raw.to_dict(),
        },
        record_id=f"raw-{job.id}",
    )
