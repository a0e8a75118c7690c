"""The service booklet job (kind ``service_history``): read the electronic service booklet the
cluster keeps, or record a service in it.

Recording checks that the service items done were reset (Condition Based Service at 100 %) and
resets them first when asked (``reset``), then appends the entry, reads it back, and returns the
whole booklet and the service status read after the reset (``cbs``, as a ``service_reset`` read
gives it: the Service page's status table shows it). Every entry a job saw goes to the outbox once, with its stable id
(:func:`queue_entries`, called where the job's result is kept): the portal's booklet for that VIN
gets it exactly once, and an entry written to the car just before a power cut is queued by the
next read. Runs on the vehicle worker thread.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from firmware_py.errors import PreconditionError
from firmware_py.gateway.jobs import JobContext
from firmware_py.i18n import N_
from firmware_py.uds.service_functions import load_service_description, read_cbs, reset_cbs
from firmware_py.uds.service_history import (
    append_entry,
    encode_entry,
    load_history_description,
    read_history,
    read_odometer,
)
from firmware_py.uds.vehicle import VehicleSession

SCHEMA = ("CREATE TABLE IF NOT EXISTS booklet_queued (id TEXT PRIMARY KEY, queued REAL NOT NULL)",)


def _today(ctx: JobContext) -> tuple[int, int, int]:
    """The date by the box's trusted clock (the box has no real-time clock; tickets and the
    portal's time beacons move it), or the system's where no ticket checks run."""
    clock = getattr(ctx.entitlements, "clock", None)
    now = float(clock.now()) if clock is not None else time.time()
    t = time.gmtime(now)
    return t.tm_year, t.tm_mon, t.tm_mday


def service_history(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    service, desc = load_service_description(), load_history_description()
    cluster = vehicle.ecu(desc.ecu)
    vin = str(cluster.read_dids(0xF190)[0xF190])
    action = ctx.params.get("action", "read")
    ctx.step("read service history")
    history = read_history(cluster, desc, service, vin)
    if action == "read":
        return {"action": action, "vin": vin, "history": history}
    items = [str(i) for i in ctx.params.get("items") or []]
    if not items:
        raise PreconditionError(
            N_("name the service items done"), hint=N_("e.g. engine_oil,brake_fluid")
        )
    for name in items:
        service.item(name)  # unknown names are refused before anything is written
    workshop = str(ctx.params.get("workshop") or "")
    config = ctx.services.get("config")
    if not workshop and config is not None:  # the workshop's box: its device id
        from firmware_py.config import device_id

        workshop = device_id(config)[:16]
    note = str(ctx.params.get("note") or "")
    date = _today(ctx)
    newest = history[-1] if history else None
    if newest is not None and (
        sorted(newest["items"]),
        newest["workshop"],
        newest["note"],
        newest["date"],
    ) == (sorted(items), workshop, note, "{:04d}-{:02d}-{:02d}".format(*date)):
        # the same service recorded again (the answer was lost, a power cut): one entry
        return {
            "action": action, "vin": vin, "entry": newest, "history": history, "new": False,
            "cbs": read_cbs(cluster, service),
        }  # fmt: skip
    cbs = {i["name"]: i for i in read_cbs(cluster, service)}
    not_reset = [n for n in items if (cbs.get(n) or {}).get("availability") != 100]
    reset_done = []
    if not_reset and not ctx.params.get("reset"):
        raise PreconditionError(
            N_("these service items were not reset: {items}"),
            values={"items": ", ".join(not_reset)},
            hint=N_("Reset them first (vci service record --reset, or the Service page does it)"),
        )
    for name in not_reset:
        ctx.step("reset {item}", item=service.item(name).texts)
        reset_cbs(cluster, service, name)
        reset_done.append(name)
    mileage = read_odometer(cluster, desc)
    record = encode_entry(
        desc,
        service,
        index=(newest["index"] if newest else 0) + 1,
        date=date,
        mileage_km=mileage,
        items=items,
        workshop=workshop,
        note=note,
    )
    ctx.step("record service")
    entry = append_entry(cluster, desc, service, vin, record)
    return {
        "action": action,
        "vin": vin,
        "entry": entry,
        "reset": reset_done,
        "history": read_history(cluster, desc, service, vin),
        "new": True,
        "cbs": read_cbs(cluster, service),  # the status after the reset, for the Service page
    }


def queue_entries(db: sqlite3.Connection, job: dict[str, Any]) -> int:
    """Put every booklet entry a finished ``service_history`` job saw into the outbox, once each
    (inside the caller's transaction: with the job's record, or neither). Returns how many."""
    from firmware_py.gateway.outbox import Outbox

    if job.get("kind") != "service_history" or job.get("state") != "done":
        return 0
    for statement in SCHEMA:
        db.execute(statement)
    queued = 0
    for entry in (job.get("result") or {}).get("history") or []:
        if db.execute("SELECT 1 FROM booklet_queued WHERE id = ?", (entry["id"],)).fetchone():
            continue
        db.execute("INSERT INTO booklet_queued VALUES (?, ?)", (entry["id"], time.time()))
        Outbox.insert(db, "booklet.entry", {"vin": entry["vin"], "entry": entry}, entry["id"])
        queued += 1
    return queued
