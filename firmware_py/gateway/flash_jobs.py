"""The programming job: one package or several in order (a whole-vehicle plan), journaled, and
resumable after an interruption. Runs on the vehicle worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError, FlashError, PackageError
from firmware_py.gateway.flash_journal import FlashJournal
from firmware_py.gateway.jobs import JobContext
from firmware_py.uds.flash.package import MAX_PACKAGE, FlashPackage, load_package_file
from firmware_py.uds.flash.sequencer import FlashOptions, Sequencer
from firmware_py.uds.vehicle import VehicleSession


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
        raise PackageError("this gateway keeps no packages", hint="Upload the package first")
    return str(Path(store) / name)


def programming(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    journal = FlashJournal(ctx.services["store"])
    options: FlashOptions = ctx.services.get("flash_options", FlashOptions())
    resume = ctx.params.get("resume")
    if resume:
        unfinished = journal.unfinished()
        record = next((r for r in unfinished if resume is True or r.job_id == resume), None)
        if record is None:
            raise ConfigError(
                "there is no interrupted programming job to resume",
                hint="vci flash --status shows the journal",
            )
        job_id, entries, current, first_incomplete = (
            record.job_id,
            record.packages,
            record.current,
            record.step_index,
        )
    else:
        names = ctx.params.get("packages") or [ctx.params.get("package")]
        if not all(isinstance(p, str) and p for p in names):
            raise ConfigError("name the flash package(s)")
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
                f"the package is for {packages[0].ecu_name}, not {ctx.ecu}. Nothing was erased"
            )
        job_id = ctx.job.id
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
                f"the package {entry['path']} changed since the job started",
                hint="Put the original package back to resume",
            )
        if index != current:
            journal.next_package(job_id, index)
            first_incomplete = 0
        ctx.step(
            f"{package.ecu_name}: programming {package.version}",
            package=index + 1,
            packages=len(entries),
        )
        sequencer = Sequencer(
            vehicle.ecu(package.ecu_address),
            package,
            journal=journal,
            job_id=job_id,
            voltage=vehicle.supply_voltage,
            progress=lambda e: _relay(ctx, e),
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
            record = journal.get(job_id)
            where = f"Journal: {record.where()}" if record else None
            hint = f"{err.hint}. {where}" if err.hint and where else err.hint or where
            raise FlashError(message, hint=hint) from err
    journal.done(job_id)
    return {"job": job_id, "packages": results, "verified": True}


def _relay(ctx: JobContext, event: dict[str, Any]) -> None:
    if "percent" in event:
        ctx.progress(**event)
    else:
        ctx.step(event.pop("step"), **event)
