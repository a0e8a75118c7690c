"""The report jobs: ``emissions_data`` (the OBD emissions check, an ``inspection_data`` ticket)
and ``vehicle_test_report`` (every ECU's fault memory, battery, service items; a diagnosis
ticket). Each reads the car on the vehicle worker thread and returns the report itself
(:mod:`firmware_py.reports.model`) as its result; the tablet and the CLI render it, and the PDF
is made from it on demand. A test report is also kept in the state directory (``reports/``) and,
as the job's result, sent to the portal through the outbox (``OUTBOX_KINDS``)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError, StorageError, VciError
from firmware_py.gateway.jobs import JobContext
from firmware_py.i18n import N_
from firmware_py.reports.emissions import build_emissions_report, load_limits
from firmware_py.reports.test_report import build_test_report
from firmware_py.uds.fault_memory import read_fault_memory
from firmware_py.uds.identification import model_from_vin
from firmware_py.uds.obd import read_emissions_data
from firmware_py.uds.service_functions import load_service_description, read_battery, read_cbs
from firmware_py.uds.vehicle import VehicleSession

log = logging.getLogger(__name__)
REPORTS_DIR = "reports"


def state_dir(ctx: JobContext) -> Path | None:
    store = ctx.services.get("store")
    if store is not None:
        return Path(store.state_dir)
    given = ctx.services.get("state_dir")
    return Path(given) if given is not None else None


def _vin(vehicle: VehicleSession) -> str | None:
    from firmware_py.gateway.job_handlers import vehicle_vin

    try:
        return vehicle_vin(vehicle)
    except VciError:
        return None


def emissions(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    link = vehicle.link
    if not hasattr(link, "functional_request"):
        raise ConfigError(
            N_(
                "the emissions check reads OBD-II by functional addressing, which {kind} does not carry here"
            ),
            values={"kind": link.kind},
            hint=N_("Connect over DoIP (--doip) or CAN (--can)"),
        )
    catalog = vehicle.catalog.ecus
    if link.kind == "can":  # answers come by CAN response identifier, on DoIP by ECU address
        names = {e.can_ids[1]: e.name for e in catalog if e.can_ids}
    else:
        names = {e.address: e.name for e in catalog}
    ecus = read_emissions_data(link, names=names, step=ctx.step)  # type: ignore[arg-type]
    vin = next((e["vin"] for e in ecus if e.get("vin")), None) or _vin(vehicle)
    return build_emissions_report(
        ecus,
        vin=vin,
        model=model_from_vin(vin),
        limits=load_limits(state_dir(ctx)),
        transport=link.description,
    )


def vehicle_test_report(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    ctx.step("read fault memory of every ECU")
    faults = [r.to_dict() for r in read_fault_memory(vehicle, None, details=True)]
    ctx.step("battery voltage")
    volts: float | None
    try:
        voltmeter = ctx.services.get("voltmeter")  # the box's own ADC first (gateway/battery.py)
        volts = float(voltmeter()) if voltmeter is not None else vehicle.supply_voltage()
    except (VciError, OSError) as err:
        log.info("battery voltage not read: %s", err)
        volts = None
    ctx.step("service items")
    service: dict[str, Any] | None
    try:
        desc = load_service_description()
        service = {
            "cbs": read_cbs(vehicle.ecu(desc.cbs_ecu), desc),
            "battery": read_battery(vehicle.ecu(desc.battery_ecu), desc),
        }
    except VciError as err:
        log.info("service items not read: %s", err)
        service = None
    vin = _vin(vehicle)
    report = build_test_report(
        faults,
        vin=vin,
        model=model_from_vin(vin),
        battery_volts=volts,
        service=service,
        transport=vehicle.link.description,
    )
    report["id"] = ctx.job.id
    where = state_dir(ctx)
    if where is not None:
        try:
            report["stored_as"] = save_report(where, report).name
        except StorageError as err:  # the report is shown and sent all the same
            log.warning("%s", err)
    return report


def save_report(where: Path, report: dict[str, Any]) -> Path:
    """Keep a report as JSON under ``<state dir>/reports/`` (written whole, then renamed)."""
    folder = where / REPORTS_DIR
    stamp = str(report.get("created", "")).replace(":", "").replace("-", "")
    path = folder / f"{stamp}-{report.get('kind')}-{report.get('id', 'x')}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise StorageError(
            N_("the report cannot be kept in {folder}: {err}"),
            values={"folder": folder, "err": err},
            hint=N_("Free space in the state directory; the report is still shown"),
        ) from err
    return path
