"""The gateway assembled: store, trusted clock, entitlements, event bus, vehicle worker, job
runner. One object per box; the web page (``firmware_py.web``), the portal link
(``firmware_py.cloud``) and the CLI all submit jobs to its one runner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from firmware_py.config import PrivacyConfig, StorageConfig
from firmware_py.errors import PackageError, StorageError, UpdateError, VciError
from firmware_py.gateway import job_log
from firmware_py.gateway.battery import SOURCE_TEXT, BatteryCare, Care
from firmware_py.gateway.events import EventBus
from firmware_py.gateway.info_cache import FILE as INFO_CACHE_FILE
from firmware_py.gateway.info_cache import InfoCache, InfoPieces
from firmware_py.gateway.jobs import Handler, JobRunner, VehicleWorker
from firmware_py.gateway.outbox import Outbox
from firmware_py.gateway.store import Store
from firmware_py.gateway.supervise import supervised
from firmware_py.gateway.tariffs import JobKind
from firmware_py.i18n import N_

log = logging.getLogger(__name__)
TRACE_CHUNK = 32 * 1024
"""bytes of a trace per ``trace.chunk`` message (base64 in a message of at most 64 KiB)"""


class Gateway:
    def __init__(
        self,
        store: Store,
        *,
        open_vehicle: Callable[[], Any],
        handlers: Mapping[str, Handler],
        entitlements: Any = None,
        clock: Any = None,
        link_description: str = "",
        services: Mapping[str, Any] | None = None,
        read_vin: Callable[[Any], str | None] | None = None,
        min_free_bytes: int = StorageConfig.min_free_bytes,
        traces_max_bytes: int = StorageConfig.traces_max_bytes,
        max_package_bytes: int = StorageConfig.max_package_bytes,
        info_cache_bytes: int = StorageConfig.info_cache_bytes,
        hardware: Any = None,
        battery_care: BatteryCare | None = None,
        shutdown_command: str = "systemctl poweroff",
        privacy: PrivacyConfig | None = None,
    ) -> None:
        """``hardware``: the box's own (:class:`firmware_py.hw.box.BoxHardware`: LEDs, ENET
        activation line, battery ADC), None on a PC. ``battery_care`` and ``shutdown_command``:
        shut the box down when its own measurement stays low with no job (hardware/README.md).
        ``privacy``: the retention periods (firmware_py/gateway/retention.py); None: defaults."""
        self.store = store
        self.privacy = privacy or PrivacyConfig()
        self.min_free_bytes = min_free_bytes
        self.traces_max_bytes = traces_max_bytes
        self.max_package_bytes = max_package_bytes
        self.info_cache = InfoCache(store.state_dir / INFO_CACHE_FILE, info_cache_bytes)
        self._info_pieces = InfoPieces(self.info_cache)
        """identified cars' repair information, for the tablet without the portal"""
        self.bus = EventBus()
        self.clock = clock
        self.entitlements = entitlements
        # the VIN of the car connected now: read after every (re)connection, forgotten when the
        # link is lost (``read_vin``: firmware_py.gateway.job_handlers.vehicle_vin)
        self.worker = VehicleWorker(open_vehicle, read_vin=read_vin)
        self.vehicle: dict[str, Any] = {"vin": None, "link": link_description, "connected": False}
        self.runner = JobRunner(
            bus=self.bus,
            worker=self.worker,
            handlers=handlers,
            entitlements=entitlements,
            services={
                "store": store,
                "packages_dir": store.state_dir / "packages",
                "max_package_bytes": max_package_bytes,
                **(services or {}),
            },
            precondition=self._record_can_be_kept,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.hardware = hardware
        self.updater: Any = None
        """the portal's update offers (firmware_py/gateway/updates.py); None: none taken"""
        self._hardware_events: Any = None
        self.voltmeter = getattr(hardware, "voltmeter", None)
        if self.voltmeter is not None:
            self.runner.services["voltmeter"] = self.voltmeter  # the battery floor's reading
        self.battery_care = battery_care
        self.shutdown_command = shutdown_command
        self.outbox = Outbox(store)
        self.runner.services.setdefault("outbox", self.outbox)
        self.runner.services.setdefault("session_log", self.session_log)
        if entitlements is not None:
            self.runner.services.setdefault(
                "entitled",
                lambda kind, params=None: entitlements.check(
                    kind, vin=self.worker.vin, params=params
                ),
            )

    # -- the portal's acknowledgements and the help desk (docs/helpdesk.md) ----------------------
    def outbox_acknowledged(self, ids: list[str]) -> int:
        """The portal stored these records: forget them; a help-desk request's ticket is consumed
        with its acknowledgement, in one transaction."""
        from firmware_py.gateway import helpdesk

        requests: list[str] = []

        def on_delivered(db: Any, record_id: str) -> None:
            if helpdesk.delivered(db, record_id, self.entitlements):
                requests.append(record_id)

        done = self.outbox.acknowledged(ids, on_delivered)
        for rid in requests:
            self.bus.publish("helpdesk.changed", {"request": rid, "state": helpdesk.DELIVERED})
        if requests:
            self.bus.publish("tickets.changed", {})
        return done

    def helpdesk_answer(self, body: dict[str, Any], who: str) -> None:
        """The help desk answered a request (a ``helpdesk.answer`` from portal user ``who``)."""
        from firmware_py.gateway import helpdesk

        request = helpdesk.answered(self.store, {**body, "who": who}, self.now())
        if request is not None:
            self.bus.publish(
                "helpdesk.changed", {"request": request["id"], "state": request["state"]}
            )

    def helpdesk_requests(self) -> list[dict[str, Any]]:
        from firmware_py.gateway import helpdesk

        return helpdesk.requests(self.store)

    def session_log(self) -> list[dict[str, Any]]:
        """The jobs of this session (since the gateway started), oldest first: what a help-desk
        request carries as the session log."""
        keep = ("id", "kind", "ecu", "origin", "who", "state", "error", "created", "finished")
        return [{k: j.to_dict()[k] for k in keep} for j in self.runner.jobs.values()]

    # -- the ENET bridge (docs/enet.md) ------------------------------------------------------
    def open_bridge(self, client: Any, timeout: Any, caller: Any) -> dict[str, Any]:
        """Open the ENET bridge for the tester at ``client`` (a job: ticket checked, vehicle held).
        The values are the caller's as they came: the job's parameter check refuses bad ones
        (:class:`~firmware_py.strict_json.StrictJsonError`)."""
        from firmware_py.gateway.jobs import JobRequest

        params: dict[str, Any] = {"client": client}
        if timeout is not None:
            params["timeout"] = timeout
        return self.runner.submit(JobRequest("enet_bridge", params), caller).to_dict()

    def close_bridge(self) -> dict[str, Any] | None:
        """Close the open bridge (its job ends at once); None if none is open."""
        holder = self.runner.vehicle_holder
        if holder is None:
            return None
        self.runner.cancel(holder.id)
        return holder.to_dict()

    def bridge_state(self) -> dict[str, Any]:
        holder = self.runner.vehicle_holder
        if holder is None:
            return {"open": False}
        return {"open": True, "job": holder.to_dict()}

    # -- flash packages kept on the box, and the programming journal --------------------------
    @property
    def packages_dir(self) -> Any:
        path = self.store.state_dir / "packages"
        path.mkdir(exist_ok=True)
        return path

    def _package_info(self, path: Any) -> dict[str, Any]:
        from firmware_py.uds.flash.package import load_package_file

        try:
            pkg = load_package_file(
                path, self.runner.services.get("publisher_keys", {}), self.max_package_bytes
            )
        except PackageError as err:
            return {"file": path.name, "valid": False, "error": err.to_dict()}
        return {
            "file": path.name,
            "valid": True,
            "ecu": pkg.ecu_name,
            "version": pkg.version,
            "publisher": pkg.publisher,
            "bytes": pkg.size,
            "expects_hw": pkg.hw_number,
            "expects_sw": list(pkg.sw_versions),
        }

    def packages(self) -> list[dict[str, Any]]:
        return [self._package_info(p) for p in sorted(self.packages_dir.glob("*.vcipkg"))]

    def package_upload(self) -> tuple[Path, BinaryIO]:
        """A new temporary file in the package store for an upload (streamed to disk, then
        :meth:`keep_package`); the caller removes it if the upload fails."""
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=self.packages_dir)
        return Path(name), os.fdopen(fd, "wb")

    def keep_package(self, name: str, upload: Path) -> dict[str, Any]:
        """Keep an uploaded package (the temporary file ``upload``) if it verifies, as ``name``
        in the store; a package that does not verify is deleted, not kept."""
        from firmware_py.uds.flash.package import read_package

        safe = "".join(c for c in name if c.isalnum() or c in "-_.").lstrip(".-_")[:72]
        safe = safe.removesuffix(".vcipkg") or "package"
        path = self.packages_dir / f"{safe}.vcipkg"
        try:
            if upload.stat().st_size > self.max_package_bytes:
                raise PackageError(N_("the package is too large"))
            with open(upload, "rb") as f:  # the zip is read as needed, not whole into memory
                read_package(f, self.runner.services.get("publisher_keys", {}))
            upload.replace(path)
        finally:
            upload.unlink(missing_ok=True)
        return self._package_info(path)

    def coding_descriptions(self) -> dict[str, Any]:
        from firmware_py.uds.coding import load_coding_descriptions

        return {
            name: {
                "did": d.did,
                "params": [
                    {
                        "name": p.name,
                        "labels": p.labels,
                        "values": list(p.values),
                        "value_labels": p.value_labels,
                        "max": (1 << p.width) - 1,
                    }
                    for p in d.params
                ],
            }
            for name, d in load_coding_descriptions().items()
        }

    def flash_journal(self) -> list[dict[str, Any]]:
        from firmware_py.gateway.flash_journal import FlashJournal

        return [r.to_dict() for r in FlashJournal(self.store).recent(10)]

    @property
    def trace_dir(self) -> Any:
        return self.store.state_dir / "traces"

    def prune_traces(self) -> int:
        """Delete the oldest traces until all of them together are within ``traces_max_bytes``
        (the newest one is kept whatever its size: it may be being written). Returns how many
        were deleted."""
        if not self.trace_dir.is_dir():
            return 0
        traces = sorted(self.trace_dir.glob("*.pcap"), key=lambda p: p.stat().st_mtime)
        total, deleted = sum(p.stat().st_size for p in traces), 0
        for old in traces[:-1]:
            if total <= self.traces_max_bytes:
                break
            total -= old.stat().st_size
            old.unlink(missing_ok=True)
            deleted += 1
        return deleted

    def apply_retention(self) -> dict[str, int]:
        """Delete what is past its retention period (firmware_py/gateway/retention.py). Off the
        loop."""
        from firmware_py.gateway.retention import apply_in_gateway

        return apply_in_gateway(self)

    async def erase_vin(self, vin: str, who: str) -> dict[str, Any]:
        """A customer's erasure request (firmware_py/gateway/privacy.py)."""
        from firmware_py.gateway.privacy import erase_in_gateway

        return await erase_in_gateway(self, vin, who)

    def _record_can_be_kept(self, request: Any) -> None:
        """A job whose record the portal must keep (it changes the car, or it is remote) starts
        only if the record can be written: free space above ``min_free_bytes`` on the state disk
        and a write to the outbox's database that commits."""
        from firmware_py.gateway.outbox import OUTBOX_KINDS

        if request.kind not in OUTBOX_KINDS:
            return
        free = shutil.disk_usage(self.store.state_dir).free
        hint = N_(
            "Free space on the box's state disk (old traces, packages), then start the job again"
        )
        if free < self.min_free_bytes:
            raise StorageError(
                N_(
                    "the box's state disk has {value} KiB free; the record of this job could not be kept, so it was not started"
                ),
                values={"value": free // 1024},
                hint=hint,
            )
        try:
            self.outbox.probe()
        except StorageError as err:
            raise StorageError(
                N_("the record of this job could not be kept ({value}), so it was not started"),
                values={"value": err.args[0]},
                hint=hint,
            ) from err

    def latest_trace(self) -> Any:
        """The newest pcap trace of the vehicle link, or None."""
        traces = (
            sorted(self.trace_dir.glob("*.pcap"), key=lambda p: p.stat().st_mtime)
            if self.trace_dir.is_dir()
            else []
        )
        return traces[-1] if traces else None

    def trace_chunk(self, name: str, offset: int) -> dict[str, Any]:
        """A piece of a pcap trace of the vehicle link for the portal (``trace.read``): of the
        trace ``name``, or of the newest with none; at most :data:`TRACE_CHUNK` bytes from
        ``offset``, base64, with the trace's size now (it grows while the link is open)."""
        import base64
        import re

        if name:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.pcap", name):
                raise StorageError(
                    N_("{value} is not a trace of this box"), values={"value": repr(name[:40])}
                )
            path = self.trace_dir / name
            if not path.is_file():
                raise StorageError(N_("this box keeps no trace {name}"), values={'name': name}, hint=N_("It was deleted: download the newest trace"))  # fmt: skip
        else:
            path = self.latest_trace()
            if path is None:
                raise StorageError(N_("no trace recorded yet"), hint=N_("Run a job first"))
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, min(offset, size)))
            data = f.read(TRACE_CHUNK)
        return {"name": path.name, "size": size, "offset": offset,
                "data": base64.b64encode(data).decode()}  # fmt: skip

    def now(self) -> float:
        """Trusted time (never goes backwards; see ``trusted_time``)."""
        return float(self.clock.now()) if self.clock is not None else time.time()

    def info_piece(self, body: dict[str, Any]) -> dict[str, Any]:
        """A piece of a car's repair information from the portal (``info.piece``): kept in the
        cache when the box holds a valid ticket with repair information for that car."""
        from firmware_py.gateway import info_cache

        vin = str(body.get("vin", ""))[:17]
        if self.entitlements is None:
            raise info_cache.InfoCacheError(N_("this gateway was started without ticket checks"))
        # the jobs' own check: a ticket with repair information for this VIN (an unactivated
        # one counts and stays unactivated: keeping what the portal sent is not a use)
        decision = self.entitlements.check(JobKind.REPAIR_INFORMATION, vin=vin)
        if not decision.allowed:
            raise info_cache.InfoCacheError(
                N_("the box holds no valid ticket with repair information for {vin}: {reason}"),
                values={"vin": vin, "reason": decision.reason},
                hint=N_("Add a ticket whose tariff includes repair information"),
            )
        return self._info_pieces.take(body)

    def vehicle_state(self) -> dict[str, Any]:
        return {**self.vehicle, "vin": self.worker.vin}

    def tickets(self) -> list[dict[str, Any]]:
        if self.entitlements is None:
            return []
        return [t.to_dict() for t in self.entitlements.tickets()]

    def add_ticket(self, token: str) -> dict[str, Any]:
        if self.entitlements is None:
            raise RuntimeError("this gateway was started without ticket checks")
        info = self.entitlements.add_ticket(token)
        self.bus.publish("tickets.changed", {"ticket": info.to_dict()})
        return dict(info.to_dict())

    def apply_revocations(self, signed_list: str) -> int:
        """A revocation list signed by the portal (``vci ticket revocations``, or delivered over
        the portal link); the tablet's ticket list follows."""
        if self.entitlements is None:
            raise RuntimeError("this gateway was started without ticket checks")
        revoked = self.entitlements.apply_revocations(signed_list)
        self.bus.publish("tickets.changed", {})
        return revoked

    def update_offered(self, token: str) -> dict[str, Any]:
        """An ``update.offer`` from the portal (firmware_py/gateway/updates.py)."""
        if self.updater is None:
            raise UpdateError(
                N_("this box takes no updates from the portal"), hint=N_("See docs/update.md")
            )
        return dict(self.updater.offered(token))

    def emission_limits_published(self, token: str) -> dict[str, Any]:
        """An ``emission_limits.publish`` from the portal (firmware_py/gateway/limits_update.py):
        kept in the state directory for the next emissions report; refusals raise."""
        from firmware_py.gateway.limits_update import LimitsRefused, accept_limits, summary

        if self.entitlements is None:
            raise LimitsRefused(N_("this gateway was started without the portal's keys"))
        table = accept_limits(
            token, self.entitlements.keys, device=self.entitlements.device_id,
            state_dir=self.store.state_dir,
        )  # fmt: skip
        return summary(table)

    def map_offered(self, manifest: str, activation: str) -> dict[str, Any]:
        """A ``map.offer`` from the portal, kept for the tablet (firmware_py/gateway/map_offers.py);
        refusals raise."""
        from firmware_py.gateway import map_offers
        from firmware_py.gateway.map_package import MapError

        if self.entitlements is None:
            raise MapError(N_("this gateway was started without the portal's keys"))
        kept = map_offers.keep(self.store.state_dir, self.entitlements.keys, manifest, activation)
        self.bus.publish("maps.offered", kept)
        return kept

    async def package_offered(self, token: str) -> dict[str, Any]:
        """A ``package.offer`` from the portal's package store (firmware_py/gateway/
        package_offer.py): downloaded resumably into the package store and kept only when its
        size, SHA-256 and publisher signature check; what the box kept. Refusals raise."""
        import aiohttp

        from firmware_py.gateway import package_offer

        if self.entitlements is None:
            raise PackageError(
                N_(
                    "this gateway was started without the portal's keys: it takes no package offers"
                ),
                hint=N_("Upload the package on the tablet instead"),
            )
        offer = package_offer.parse_offer(
            token, self.entitlements.keys, device=self.entitlements.device_id,
            max_bytes=self.max_package_bytes,
        )  # fmt: skip
        async with aiohttp.ClientSession() as session:
            path = await package_offer.download(
                offer, self.packages_dir, self.runner.services.get("publisher_keys", {}),
                session=session,
            )  # fmt: skip
        self.bus.publish("packages.changed", {})
        info = self._package_info(path)
        return {"package": path.name, "sha256": offer.sha256, "ecu": info.get("ecu"),
                "version": info.get("version"), "size": offer.size}  # fmt: skip

    def observe_time_beacon(self, beacon: str) -> None:
        """The portal's signed time (a ``time.beacon`` message); without ticket checks, ignored."""
        if self.entitlements is not None:
            self.entitlements.observe_time_beacon(beacon)

    async def start(self) -> None:
        self.bus.bind(asyncio.get_running_loop())
        await self.worker.start()  # its heartbeat is watched from now (the service watchdog)
        self.runner.services["loop"] = asyncio.get_running_loop()  # the bridge's sockets live here
        self._tasks.append(supervised(self._follow_jobs, "following jobs"))
        if self.clock is not None:
            self._tasks.append(supervised(self._tick_clock, "trusted clock"))
        self._tasks.append(supervised(self._watch_battery, "battery voltage"))
        if self.hardware is not None:
            hardware, sub = self.hardware, self.bus.subscribe()  # before any job can start
            self._hardware_events = sub
            self._tasks.append(supervised(lambda: hardware.follow(sub), "box hardware"))
        self._tasks.append(supervised(self._housekeeping, "housekeeping"))

    async def stop(self) -> None:
        await self.runner.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._hardware_events is not None:
            self._hardware_events.close()
        await asyncio.get_running_loop().run_in_executor(None, self.worker.close)
        if self.clock is not None:
            self.clock.persist()

    async def _housekeeping(self, interval: float = 60.0) -> None:
        """Keep the traces within their bound; apply the retention periods at start-up and every
        ``retention_interval``."""
        loop, retained = asyncio.get_running_loop(), None
        while True:
            await loop.run_in_executor(None, self.prune_traces)
            if retained is None or time.monotonic() - retained >= self.privacy.retention_interval:
                await loop.run_in_executor(None, self.apply_retention)
                retained = time.monotonic()
            await asyncio.sleep(min(interval, self.privacy.retention_interval))

    async def _tick_clock(self) -> None:
        while True:
            await asyncio.sleep(30)
            self.clock.tick()

    async def _watch_battery(self, interval: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.check_battery(time.monotonic())

    async def check_battery(self, now: float) -> None:
        """One reading of the battery for the page: the box's own measurement when it has the
        ADC, else the vehicle's reported voltage (read on the vehicle worker between jobs);
        ``battery_source`` says which. The box's own reading also feeds battery care."""
        loop = asyncio.get_running_loop()
        if self.voltmeter is not None:
            source = "box"
            try:
                volts = await loop.run_in_executor(None, self.voltmeter.read)
            except VciError as err:
                log.warning("battery voltage not measured: %s", err)
                return
        else:
            source = "vehicle"
            if not self.vehicle.get("connected"):
                return
            try:
                volts = await self.worker.run(lambda vehicle: vehicle.supply_voltage())
            except Exception as err:  # noqa: BLE001 - a missed reading is not an error of anyone's
                log.debug("battery voltage not read: %s", err)
                return
        shown = round(float(volts), 1)
        if (shown, source) != (
            self.vehicle.get("battery_voltage"),
            self.vehicle.get("battery_source"),
        ):
            self.vehicle.update(battery_voltage=shown, battery_source=source)
            from firmware_py.gateway import battery_log

            try:
                battery_log.record(self.store, self.now(), shown, source)
            except StorageError as err:  # a missed history line is no reason to stop the watch
                log.warning("battery history not kept: %s", err)
            self.bus.publish("vehicle.state", {"vehicle": self.vehicle_state()})
        if source == "box" and self.battery_care is not None:
            await self._care_for_battery(float(volts), now)

    async def _care_for_battery(self, volts: float, now: float) -> None:
        care = self.battery_care
        assert care is not None
        running = any(job.state == "running" for job in self.runner.jobs.values())
        decision = care.observe(volts, now, running)
        if decision is Care.LOW:
            log.warning(
                "battery care: battery at %.2f V (%s), below %.1f V: the box shuts down in "
                "%.0f s unless a job runs or the voltage recovers",
                volts,
                SOURCE_TEXT["box"],
                care.volts,
                care.after,
            )
            self.bus.publish(
                "battery.low",
                {"volts": round(volts, 2), "threshold": care.volts, "shutdown_in": care.after},
            )
        elif decision is Care.OK:
            log.info("battery care: battery at %.2f V again, the box stays on", volts)
            self.bus.publish("battery.ok", {"volts": round(volts, 2)})
        elif decision is Care.SHUT_DOWN:
            log.warning(
                "battery care: battery below %.1f V for %.0f s with no job (now %.2f V): "
                "shutting down with %r so as not to drain the car's battery; unplug and plug "
                "the box back in to start it again",
                care.volts,
                care.after,
                volts,
                self.shutdown_command,
            )
            self.bus.publish(
                "power.shutdown",
                {"reason": "battery_care", "volts": round(volts, 2), "threshold": care.volts},
            )
            await self._shut_down()

    async def _shut_down(self) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(*shlex.split(self.shutdown_command))
            code = await proc.wait()
        except OSError as err:
            log.error(
                "battery care: the shutdown command %r failed: %s", self.shutdown_command, err
            )
            return
        if code != 0:
            log.error(
                "battery care: the shutdown command %r exited with %d", self.shutdown_command, code
            )

    async def _follow_jobs(self) -> None:
        """Keep the vehicle summary (VIN, ECUs, link state) current from job results."""
        sub = self.bus.subscribe()
        try:
            while True:
                event = await sub.get()
                job = event.data.get("job") or {}
                if event.kind in ("job.done", "job.failed"):
                    # the portal's copy of what was done to the car (service history) and of
                    # every job of a remote session (the remote session log)
                    try:
                        self.outbox.keep_job(job, self.worker.vin)
                        job_log.record(self.store, job, self.worker.vin)  # for `vci helpdesk ask`
                    except StorageError as err:
                        log.error("the record of job %s could not be kept: %s", job.get("id"), err)
                        self.bus.publish(
                            "storage.error", {"job": job.get("id"), "error": err.to_dict()}
                        )
                vin_changed = self.vehicle.get("vin") != self.worker.vin  # read again, or lost
                self.vehicle.update(vin=self.worker.vin)
                if event.kind == "job.done" and job.get("kind") == "identify":
                    result = job.get("result") or {}
                    self.vehicle.update(
                        vin=self.worker.vin, ecus=result.get("ecus", []), connected=True
                    )
                elif event.kind == "job.failed" and (job.get("error") or {}).get("error") in (
                    "connection_lost",
                    "vehicle_not_found",
                ):
                    self.vehicle.update(connected=False)
                elif not vin_changed:
                    continue
                self.bus.publish("vehicle.state", {"vehicle": self.vehicle_state()})
        finally:
            sub.close()
