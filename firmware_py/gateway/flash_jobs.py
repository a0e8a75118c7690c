"""The programming job: one package or several in order (a whole-vehicle plan), journaled, and
resumable after an interruption. Runs on the vehicle worker thread.

With ``parallel`` (``vci flash --parallel``), the plan's stages (:func:`..uds.flash.plan.stages`)
run one after another and the packages of a stage at the same time: one sequencer per ECU on a
small pool of threads over the one link, each with its own journal row (``<job>#<n>``), so that
each ECU resumes on its own. A failure of one ECU does not stop the others of its stage.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError, FlashError, PackageError
from firmware_py.gateway.battery import floor_voltage, reported_once
from firmware_py.gateway.flash_journal import FlashJournal, FlashRecord
from firmware_py.gateway.jobs import JobContext
from firmware_py.i18n import N_
from firmware_py.uds.flash.package import MAX_PACKAGE, FlashPackage, load_package_file
from firmware_py.uds.flash.plan import ParallelRules, stages
from firmware_py.uds.flash.sequencer import FlashOptions, Sequencer
from firmware_py.uds.vehicle import VehicleSession


def with_journal(err: FlashError, record: FlashRecord | None) -> FlashError:
    """``err`` again, its hint followed by where the journal says the job stands (both kept as
    templates, so the reader sees them in their language)."""
    hint: str | None = None
    hint_values: dict[str, object] = {}
    if record is not None:
        hint, hint_values = N_("Journal: {where}"), {"where": record.where_text()}
        if err.hint_text is not None:
            hint = N_("{hint}. Journal: {where}")
            hint_values["hint"] = err.hint_text
    elif err.hint_text is not None:
        hint, hint_values = err.hint_text.template, dict(err.hint_text.values)
    return FlashError(err.text.template, values=err.text.values, hint=hint, hint_values=hint_values)


def _load(path: str, ctx: JobContext) -> FlashPackage:
    """A package file, at most ``max_package_bytes``, a regular file (checked before reading)."""
    return load_package_file(
        Path(path),
        ctx.services.get("publisher_keys", {}),
        ctx.services.get("max_package_bytes", MAX_PACKAGE),
    )


def _where(name: str, ctx: JobContext) -> str:
    """The file of a package named in a job: the box's own CLI may name any file; the page and
    the portal name a package by its id in the package store (checked by ``job_params``)."""
    if ctx.job.caller.origin == "cli":
        return name
    store = ctx.services.get("packages_dir")
    if store is None:
        raise PackageError(
            N_("this gateway keeps no packages"), hint=N_("Upload the package first")
        )
    return str(Path(store) / name)


def programming(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    journal = FlashJournal(ctx.services["store"])
    options: FlashOptions = ctx.services.get("flash_options", FlashOptions())
    resume = ctx.params.get("resume")
    if resume:
        unfinished = journal.unfinished()
        record = next(
            (
                r
                for r in unfinished
                if resume is True or r.job_id == resume or _group(r.job_id) == resume
            ),
            None,
        )
        if record is None:
            raise ConfigError(
                N_("there is no interrupted programming job to resume"),
                hint=N_("vci flash --status shows the journal"),
            )
        if _group(record.job_id) != record.job_id:  # a parallel job: every unfinished ECU of it
            parts = [r for r in unfinished if _group(r.job_id) == _group(record.job_id)]
            return _parallel(vehicle, ctx, journal, options, _group(record.job_id), parts)
        job_id, entries, current, first_incomplete = (
            record.job_id,
            record.packages,
            record.current,
            record.step_index,
        )
    else:
        names = ctx.params.get("packages") or [ctx.params["package"]]  # checked: job_params
        paths = [_where(name, ctx) for name in names]
        packages = [
            _load(p, ctx) for p in paths
        ]  # every signature is checked before anything starts
        if (
            ctx.ecu
            and len(packages) == 1
            and vehicle.catalog.find(ctx.ecu).address != packages[0].ecu_address
        ):
            raise FlashError(
                N_("the package is for {ecu_name}, not {ecu}. Nothing was erased"),
                values={"ecu_name": packages[0].ecu_name, "ecu": ctx.ecu},
            )
        job_id = ctx.job.id
        if ctx.params.get("parallel") and len(packages) > 1:
            rows = {
                f"{job_id}#{n}": [
                    {
                        "path": str(Path(p).resolve()),
                        "sha256": pkg.sha256,
                        "ecu": pkg.ecu_name,
                        "version": pkg.version,
                    }
                ]
                for n, (p, pkg) in enumerate(zip(paths, packages, strict=True), start=1)
            }
            journal.begin_many(rows)
            parts = [r for r in (journal.get(part_id) for part_id in rows) if r is not None]
            return _parallel(vehicle, ctx, journal, options, job_id, parts)
        entries = [
            {
                "path": str(Path(p).resolve()),
                "sha256": pkg.sha256,
                "ecu": pkg.ecu_name,
                "version": pkg.version,
            }
            for p, pkg in zip(paths, packages, strict=True)
        ]
        journal.begin(job_id, entries)
        current, first_incomplete = 0, 0
    results = []
    for index in range(current, len(entries)):
        entry = entries[index]
        package = _load(entry["path"], ctx)
        if package.sha256 != entry["sha256"]:
            raise PackageError(
                N_("the package {path} changed since the job started"),
                values={"path": entry["path"]},
                hint=N_("Put the original package back to resume"),
            )
        if index != current:
            journal.next_package(job_id, index)
            first_incomplete = 0
        ctx.step(
            "{ecu}: programming {version}",
            ecu=package.ecu_name,
            version=package.version,
            package=index + 1,
            packages=len(entries),
        )
        sequencer = Sequencer(
            vehicle.ecu(package.ecu_address),
            package,
            journal=journal,
            job_id=job_id,
            voltage=_floor_voltage(ctx, vehicle),
            progress=partial(_relay, ctx, ecu=package.ecu_name),
            options=options,
        )
        try:
            results.append(sequencer.run(first_incomplete))
        except FlashError as err:
            message = str(err.args[0])
            if not sequencer.changed_car and index == 0 and not resume:
                journal.refused(job_id, message)
                raise
            journal.stopped(job_id, message)
            raise with_journal(err, journal.get(job_id)) from err
    journal.done(job_id)
    return {"job": job_id, "packages": results, "verified": True}


def _floor_voltage(ctx: JobContext, vehicle: Any) -> Any:
    """The battery reading the floor (``FlashOptions.min_voltage``) goes by: the box's own
    measurement when it has the ADC, else the vehicle's; the job's steps say which."""
    read, source = floor_voltage(ctx.services, vehicle)
    return reported_once(read, source, ctx.step)


def _relay(ctx: JobContext, event: dict[str, Any], ecu: str) -> None:
    """A sequencer's event as the job's, with the ECU it is about (several run at once)."""
    if "percent" in event:
        ctx.progress(ecu=ecu, **event)
    else:
        ctx.step(event.pop("step"), ecu=ecu, **event)


def _group(job_id: str) -> str:
    """The parallel job a journal row belongs to (``<job>#<n>``), or the row's own job."""
    return job_id.partition("#")[0]


def _part(record: FlashRecord) -> int:
    return int(record.job_id.partition("#")[2] or 0)


def _parallel(
    vehicle: VehicleSession,
    ctx: JobContext,
    journal: FlashJournal,
    options: FlashOptions,
    job_id: str,
    parts: list[FlashRecord],
) -> dict[str, Any]:
    """Run (or resume) the journal rows ``parts`` of a parallel job, stage by stage."""
    parts = sorted(parts, key=_part)
    packages = []
    for record in parts:
        entry = record.packages[0]
        package = _load(entry["path"], ctx)
        if package.sha256 != entry["sha256"]:
            raise PackageError(
                N_("the package {path} changed since the job started"),
                values={"path": entry["path"]},
                hint=N_("Put the original package back to resume"),
            )
        packages.append(package)
    rules = ParallelRules(alone=(vehicle.catalog.ecus[0].address,))
    plan = stages(
        [p.ecu_address for p in packages], link_kind=vehicle.kind, parallel=True, rules=rules
    )
    # Sessions are opened here, on the worker thread; the pool's threads only use them.
    sessions = {p.ecu_address: vehicle.ecu(p.ecu_address) for p in packages}
    vehicle.ecu(vehicle.catalog.ecus[0])  # the supply voltage's ECU, shared (its own lock)
    outcomes: dict[int, dict[str, Any]] = {}
    lock = threading.Lock()

    def run(i: int) -> None:
        record, package = parts[i], packages[i]
        sequencer = Sequencer(
            sessions[package.ecu_address],
            package,
            journal=journal,
            job_id=record.job_id,
            voltage=_floor_voltage(ctx, vehicle),
            progress=partial(_relay, ctx, ecu=package.ecu_name),
            options=options,
        )
        ctx.step("{ecu}: programming {version}", ecu=package.ecu_name, version=package.version)
        try:
            result = {**sequencer.run(record.step_index), "ok": True}
            journal.done(record.job_id)
        except FlashError as err:
            message = str(err.args[0])
            if not sequencer.changed_car and record.step_index == 0:
                journal.refused(record.job_id, message)
            else:
                journal.stopped(record.job_id, message)
            result = {"ecu": package.ecu_name, "ok": False, "error": message, "hint": err.hint}
        except Exception as err:  # noqa: BLE001 - one ECU's bug must not hide the others' outcome
            journal.stopped(record.job_id, f"internal error: {err}")
            result = {"ecu": package.ecu_name, "ok": False, "error": f"internal error: {err}"}
        with lock:
            outcomes[i] = result

    for n, stage in enumerate(plan):
        if n and not all(outcomes[i]["ok"] for i in outcomes):
            for i in stage:  # an earlier stage failed: later ECUs may depend on it
                journal.stopped(parts[i].job_id, "not started: an ECU before it failed")
                outcomes[i] = {"ecu": packages[i].ecu_name, "ok": False, "error": "not started"}
            continue
        if len(stage) == 1:
            run(stage[0])
            continue
        with ThreadPoolExecutor(len(stage), thread_name_prefix="flash") as pool:
            list(pool.map(run, stage))
    results = [outcomes[i] for i in range(len(parts))]
    failed = [r for r in results if not r["ok"]]
    if failed:
        lines = "; ".join(f"{r['ecu']}: {'verified' if r['ok'] else r['error']}" for r in results)
        raise FlashError(
            N_("{n} of {n2} ECUs not programmed: {lines}"),
            values={"n": len(failed), "n2": len(results), "lines": lines},
            hint=N_("Fix the cause, then: vci flash --resume (finishes every unfinished ECU)"),
        )
    return {"job": job_id, "packages": results, "verified": True, "parallel": True}
