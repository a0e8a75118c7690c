"""The jobs the gateway runs, declared as a table: job kind -> handler ``(vehicle, ctx) -> dict``.

Handlers run on the vehicle worker thread with a :class:`firmware_py.uds.vehicle.VehicleSession`
and return JSON-ready results. They hold no state of their own.
"""

from __future__ import annotations

from typing import Any

from firmware_py.errors import ConfigError, NegativeResponseError, VciError
from firmware_py.gateway.job_params import LIVE_DURATION, LIVE_INTERVAL
from firmware_py.gateway.jobs import Handler, JobContext
from firmware_py.i18n import N_
from firmware_py.uds.catalog import EcuInfo
from firmware_py.uds.dids import DIDS, did_name, did_not_answered, parse_did
from firmware_py.uds.fault_memory import (
    DEFAULT_STATUS_MASK,
    clear_fault_memory,
    read_fault_memory,
)
from firmware_py.uds.identification import identify_vehicle
from firmware_py.uds.vehicle import PROBE_TIMING, VehicleSession


def _ecus(vehicle: VehicleSession, ctx: JobContext) -> list[EcuInfo] | None:
    return [vehicle.catalog.find(ctx.ecu)] if ctx.ecu else None


def _one_ecu(vehicle: VehicleSession, ctx: JobContext) -> EcuInfo:
    if not ctx.ecu:
        raise ConfigError(
            N_("the job {kind} needs an ECU"),
            values={"kind": ctx.job.request.kind},
            hint=N_("Name one, e.g. --ecu DME"),
        )
    return vehicle.catalog.find(ctx.ecu)


def identify(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    ctx.step("identify vehicle")
    return identify_vehicle(vehicle, only=_ecus(vehicle, ctx)).to_dict()


def _vin_from(vehicle: VehicleSession, ecus: list[EcuInfo] | None) -> dict[str, Any]:
    errors = []
    for info in ecus or vehicle.catalog.ecus:
        try:
            return {
                "vin": vehicle.ecu(info, timing=PROBE_TIMING).read_dids(0xF190)[0xF190],
                "ecu": info.name,
            }
        except VciError as err:
            errors.append(err)
            if ecus:
                raise
    raise errors[-1] if errors else ConfigError(N_("the ECU catalogue is empty"))


def read_vin(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    """The VIN from the named ECU, or from the first catalogued ECU that answers."""
    return _vin_from(vehicle, _ecus(vehicle, ctx))


def vehicle_vin(vehicle: VehicleSession) -> str | None:
    """The VIN of the car connected now (0xF190 of the first ECU that answers), for the vehicle
    worker after every (re)connection."""
    vin = _vin_from(vehicle, None)["vin"]
    return vin if isinstance(vin, str) and vin else None


def read_faults(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    ctx.step("read fault memory")
    mask = int(ctx.params.get("status_mask", DEFAULT_STATUS_MASK))  # range: job_params
    details = bool(ctx.params.get("details", True))
    results = read_fault_memory(vehicle, _ecus(vehicle, ctx), status_mask=mask, details=details)
    return {"ecus": [r.to_dict() for r in results]}


def clear_faults(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    ctx.step("clear fault memory")
    return {"ecus": clear_fault_memory(vehicle, _ecus(vehicle, ctx))}


def read_did(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    info = _one_ecu(vehicle, ctx)
    dids = [parse_did(str(d)) for d in ctx.params.get("dids", [])]
    if not dids:
        raise ConfigError(N_("name at least one DID"), hint=N_("e.g. F190 or vin"))
    session = vehicle.ecu(info)
    values: dict[str, Any] = {}
    known = [d for d in dids if d in DIDS]
    if known:
        answer = session.read_dids(*known)
        for did in known:
            values[f"{did:04X}"] = {"name": did_name(did), "value": answer.get(did)}
            if did in answer.missing:
                values[f"{did:04X}"]["error"] = did_not_answered(info.name, did)
    for did in dids:
        if did not in DIDS:
            entry: dict[str, Any] = {"name": did_name(did), "value": None}
            try:
                entry["raw"] = session.read_did_raw(did).hex(" ")
            except NegativeResponseError as err:
                entry["error"] = err.to_dict()
            values[f"{did:04X}"] = entry
    return {"ecu": info.name, "address": info.address, "dids": values}


def raw_uds(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.raw_jobs import raw_uds

    return raw_uds(vehicle, ctx, _one_ecu(vehicle, ctx))


def _programming(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.flash_jobs import programming

    return programming(vehicle, ctx)


def _coding(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.coding_jobs import coding

    return coding(vehicle, ctx)


def _service(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.service_jobs import service

    return service(vehicle, ctx)


def _service_history(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.booklet_jobs import service_history

    return service_history(vehicle, ctx)


def _help_desk(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.helpdesk import help_desk_request

    return help_desk_request(vehicle, ctx)


def _enet_bridge(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.bridge_jobs import enet_bridge

    return enet_bridge(vehicle, ctx)


def _map_update(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.map_jobs import map_update

    return map_update(vehicle, ctx)


def _emissions(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.report_jobs import emissions

    return emissions(vehicle, ctx)


def _vehicle_test_report(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    from firmware_py.gateway.report_jobs import vehicle_test_report

    return vehicle_test_report(vehicle, ctx)


LIVE_DEFAULT = ("DME:4001", "DME:4002", "DME:4003")


def read_live_data(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    """Read chosen values ("ECU:DID") every ``interval`` seconds until cancelled or ``duration``
    has passed; each round is a progress event ``{"values": {...}, "t": seconds}``."""
    import time

    interval = float(ctx.params.get("interval", LIVE_INTERVAL))  # ranges: job_params
    duration = float(ctx.params.get("duration", LIVE_DURATION))
    wanted: dict[str, list[int]] = {}
    for item in ctx.params.get("values") or LIVE_DEFAULT:
        ecu_name, _, did_text = str(item).partition(":")
        wanted.setdefault(vehicle.catalog.find(ecu_name).name, []).append(parse_did(did_text))
    started, rounds = time.monotonic(), 0
    ctx.step("live data", reading=[f"{e}:{d:04X}" for e, dids in wanted.items() for d in dids])
    while not ctx.cancelled and time.monotonic() - started < duration:
        values = {}
        for ecu, dids in wanted.items():
            answer = vehicle.ecu(ecu).read_dids(*dids)
            for number in dids:  # one the ECU left out of its answer is None
                values[f"{ecu}:{number:04X}"] = {
                    "name": did_name(number),
                    "value": answer.get(number),
                }
        rounds += 1
        ctx.progress(min_interval=0.0, t=round(time.monotonic() - started, 2), values=values)
        ctx.job.cancel.wait(interval)
    return {"rounds": rounds, "seconds": round(time.monotonic() - started, 1)}


HANDLERS: dict[str, Handler] = {
    "read_live_data": read_live_data,
    "programming": _programming,
    "coding": _coding,
    "service_reset": _service,
    "service_history": _service_history,
    "help_desk_request": _help_desk,
    "read_vin": read_vin,
    "identify": identify,
    "read_fault_memory": read_faults,
    "clear_fault_memory": clear_faults,
    "read_did": read_did,
    "raw_uds": raw_uds,
    "enet_bridge": _enet_bridge,
    "map_update": _map_update,
    "emissions_data": _emissions,
    "vehicle_test_report": _vehicle_test_report,
}
