"""The service job (kind ``service_reset``): read the service status, reset a Condition Based
Service item after the service was done, register a new battery. Runs on the vehicle worker
thread; the ECUs and records come from :mod:`firmware_py.uds.service_functions`."""

from __future__ import annotations

from typing import Any

from firmware_py.errors import ConfigError
from firmware_py.gateway.jobs import JobContext
from firmware_py.i18n import N_
from firmware_py.uds.service_functions import (
    load_service_description,
    read_battery,
    read_cbs,
    register_battery,
    reset_cbs,
)
from firmware_py.uds.vehicle import VehicleSession

ACTIONS = ("read", "reset", "register_battery")


def service(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    desc = load_service_description()
    action = ctx.params.get("action", "read")
    if action == "read":
        ctx.step("read service status")
        return {
            "action": action,
            "cbs": read_cbs(vehicle.ecu(desc.cbs_ecu), desc),
            "battery": read_battery(vehicle.ecu(desc.battery_ecu), desc),
        }
    if action == "reset":
        name = str(ctx.params.get("item") or "")
        if not name:
            raise ConfigError(
                N_("name the service item to reset"),
                hint=N_("One of: {items}"),
                hint_values={"items": ", ".join(i.name for i in desc.items)},
            )
        item = desc.item(name)
        cluster = vehicle.ecu(desc.cbs_ecu)
        before = next((i for i in read_cbs(cluster, desc) if i["id"] == item.id), None)
        ctx.step("reset {item}", item=item.texts)
        items = reset_cbs(cluster, desc, name)
        after = next(i for i in items if i["id"] == item.id)
        return {
            "action": action,
            "item": name,
            "before": before,
            "after": after,
            "cbs": items,
            "verified": True,
        }
    if action == "register_battery":
        try:
            capacity = int(ctx.params.get("capacity_ah", 0))
        except (TypeError, ValueError):
            raise ConfigError(N_("capacity_ah must be a whole number of ampere hours")) from None
        technology = str(ctx.params.get("technology", ""))
        engine = vehicle.ecu(desc.battery_ecu)
        before = read_battery(engine, desc)
        ctx.step("register battery")
        after = register_battery(engine, desc, capacity, technology)
        return {"action": action, "before": before, "battery": after, "verified": True}
    raise ConfigError(
        N_("service action must be one of {value}, not {action}"),
        values={"value": ", ".join(ACTIONS), "action": repr(action)},
    )
