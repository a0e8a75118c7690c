"""The coding job: read, change named parameters (keeping the previous coding in the store
first), restore. Runs on the vehicle worker thread."""

from __future__ import annotations

import time
from typing import Any

from firmware_py.errors import ConfigError
from firmware_py.gateway.jobs import JobContext
from firmware_py.gateway.store import Store
from firmware_py.i18n import N_
from firmware_py.uds.coding import CodingError, load_coding_descriptions, read_coding, write_coding
from firmware_py.uds.vehicle import VehicleSession

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS coding_backups (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ecu TEXT NOT NULL, vin TEXT, data TEXT NOT NULL,
        taken_at REAL NOT NULL, job_id TEXT NOT NULL)""",
)


def coding(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    if not ctx.ecu:
        raise ConfigError(N_("coding needs an ECU"), hint=N_("e.g. --ecu BDC"))
    info = vehicle.catalog.find(ctx.ecu)
    descriptions = load_coding_descriptions()
    desc = descriptions.get(info.name)
    if desc is None:
        raise CodingError(
            N_("no coding description for {name}"),
            values={"name": info.name},
            hint=N_("Coding is described for {value}"),
            hint_values={"value": ", ".join(descriptions)},
        )
    store: Store = ctx.services["store"]
    store.ensure_schema("coding", SCHEMA)
    session = vehicle.ecu(info)
    action = ctx.params.get("action", "read")
    current = read_coding(session, desc)
    result: dict[str, Any] = {
        "ecu": info.name,
        "before": desc.decode(current),
        "raw_before": current.hex(),
    }
    if action == "read":
        return result
    vin = ctx.services.get("vin")
    if action == "set":
        changes = dict(ctx.params.get("changes") or {})
        if not changes:
            raise ConfigError(N_("name the parameters to change, e.g. daytime_running_lights=off"))
        new = desc.encode(current, changes)
        with store.transaction() as db:  # the previous coding is kept before anything is written
            db.execute(
                "INSERT INTO coding_backups(ecu, vin, data, taken_at, job_id) VALUES (?,?,?,?,?)",
                (info.name, vin, current.hex(), time.time(), ctx.job.id),
            )
    elif action == "restore":
        row = (
            store.connection()
            .execute(
                "SELECT * FROM coding_backups WHERE ecu = ? ORDER BY id DESC LIMIT 1", (info.name,)
            )
            .fetchone()
        )
        if row is None:
            raise CodingError(
                N_("no previous coding of {name} is kept on this box"), values={"name": info.name}
            )
        new = bytes.fromhex(row["data"])
    else:
        raise ConfigError(
            N_("coding action must be read, set or restore, not {action}"),
            values={"action": repr(action)},
        )
    ctx.step("write coding of {ecu}", ecu=info.name)
    write_coding(session, desc, new)
    if action == "restore":
        with store.transaction() as db:
            db.execute("DELETE FROM coding_backups WHERE id = ?", (row["id"],))
    result.update(after=desc.decode(new), raw_after=new.hex(), verified=True)
    return result
