"""The one engine that runs programming plans (:mod:`.plan`) against an ECU.

Synchronous, for the gateway's vehicle worker. Time, voltage, journal and progress come in as
arguments, so the logic is tested with fakes and run for real with the clock, the vehicle's supply
voltage and the SQLite journal. The journal is written before the sequencer moves on: each body
step when it begins and when it is done, and the transfer position every ``journal_every`` blocks.
Whatever happens, the journal and the error message say where the ECU stands.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from firmware_py.errors import (
    EcuNotRespondingError,
    FlashError,
    NegativeResponseError,
    ResponseDeadlineError,
    TransportError,
    VciError,
)
from firmware_py.i18n import N_
from firmware_py.uds.ecu import EcuSession
from firmware_py.uds.flash.package import FlashPackage
from firmware_py.uds.flash.plan import Plan, Step, build_plan

log = logging.getLogger(__name__)


class Journal(Protocol):
    def step(self, job_id: str, index: int, name: str, done: bool) -> None: ...
    def position(self, job_id: str, segment: int, bytes_done: int, blocks: int) -> None: ...


@dataclass(frozen=True)
class FlashOptions:
    min_voltage: float = 13.0
    """refuse to start below this (volts): connect a charger"""
    voltage_floor: float = 12.0
    """stop at the next safe point below this during the transfer"""
    voltage_interval: float = 1.0
    """seconds between voltage readings during the transfer"""
    journal_every: int = 32
    """blocks between journal writes of the transfer position"""
    block_retries: int = 2
    """times a block is sent again after a timeout or a broken connection"""


Progress = Callable[[dict[str, Any]], None]


class Sequencer:
    def __init__(
        self,
        session: EcuSession,
        package: FlashPackage,
        *,
        journal: Journal,
        job_id: str,
        voltage: Callable[[], float],
        progress: Progress = lambda event: None,
        clock: Callable[[], float] = time.monotonic,
        options: FlashOptions = FlashOptions(),
        plan: Plan | None = None,
    ) -> None:
        self.session = session
        self.package = package
        self.journal = journal
        self.job_id = job_id
        self.voltage = voltage
        self.progress = progress
        self.clock = clock
        self.options = options
        self.plan = plan or build_plan(package)
        self.total = package.size
        self.written_before = 0  # bytes of segments that are done (for percent)
        self._started = clock()
        self._sent = 0
        self._transfer_time = 0.0  # seconds spent in TransferData loops (for the rate)
        self.precheck_info: dict[str, Any] = {}
        self.changed_car = False
        """True once a step that changes the ECU (an erase, or any body step) has begun"""
        self._resuming = False

    # -- running -----------------------------------------------------------------------------
    def run(self, first_incomplete: int = 0) -> dict[str, Any]:
        """Run the plan; ``first_incomplete`` > 0 resumes after an interruption."""
        start = self.plan.resume_index(first_incomplete)
        self._resuming = first_incomplete > 0
        done_segments = {s.segment for s in self.plan.body[:start] if s.action == "check_memory"}
        self.written_before = sum(
            self.package.segments[i].length for i in done_segments if i is not None
        )
        for step in self.plan.setup:
            self._do(step)
        index = start
        for index in range(start, len(self.plan.body)):
            step = self.plan.body[index]
            self.journal.step(self.job_id, index, step.name, False)
            self.changed_car = True
            self._do(step)
            self.journal.step(self.job_id, index + 1, step.name, True)
        return {
            "ecu": self.package.ecu_name,
            "version": self.package.version,
            "bytes": self.total,
            "resumed_from": start if self._resuming else None,
            "seconds": round(self.clock() - self._started, 3),
            "transfer_rate": round(self._sent / self._transfer_time)
            if self._transfer_time
            else None,
            **self.precheck_info,
        }

    def _event(self, **data: Any) -> None:
        self.progress(data)

    def _do(self, step: Step) -> None:
        self._event(step=step.template, **step.values)
        try:
            getattr(self, f"_{step.action}")(step)
        except VciError as err:
            if isinstance(err, FlashError):
                raise
            raise FlashError(
                N_("{ecu_name}: {name} failed: {err}. {value}"),
                values={
                    "ecu_name": self.package.ecu_name,
                    "name": step.name,
                    "err": err,
                    "value": self._where(step),
                },
                hint=N_("Fix the cause, then: vci flash --resume"),
            ) from err

    def _where(self, step: Step) -> str:
        if (
            step.action
            in ("precheck", "extended_session", "programming_session", "security_access")
            and not self._resuming
        ):
            return "Nothing was erased; the ECU is unchanged"
        return "The ECU's software is incomplete (it stays in its boot loader) until the flash is resumed and verified"

    # -- steps --------------------------------------------------------------------------------------
    def _precheck(self, step: Step) -> None:
        p = self.package
        if self.session.address != p.ecu_address:
            raise FlashError(
                N_(
                    "the package is for ECU 0x{ecu_address} ({ecu_name}), not {name} (0x{address}). Nothing was erased"
                ),
                values={
                    "ecu_address": format(p.ecu_address, "02X"),
                    "ecu_name": p.ecu_name,
                    "name": self.session.name,
                    "address": format(self.session.address, "02X"),
                },
            )
        ident = self.session.read_dids(0xF191, 0xF189)
        hw, sw = str(ident.get(0xF191, "")).strip(), str(ident.get(0xF189, "")).strip()
        if p.hw_number and hw != p.hw_number:
            raise FlashError(
                N_(
                    "{ecu_name} has hardware {hw}, the package needs {hw_number}. Nothing was erased"
                ),
                values={"ecu_name": p.ecu_name, "hw": hw, "hw_number": p.hw_number},
                hint=N_("Use the package for this hardware"),
            )
        if p.sw_versions and sw not in p.sw_versions and not (self._resuming and sw == p.version):
            raise FlashError(
                N_(
                    "{ecu_name} has software {sw}, the package updates only {value}. Nothing was erased"
                ),
                values={"ecu_name": p.ecu_name, "sw": sw, "value": ", ".join(p.sw_versions)},
                hint=N_(
                    "Check the ECU's software version (vci identify) and choose the matching package"
                ),
            )
        volts = self.voltage()
        if volts < self.options.min_voltage:
            raise FlashError(
                N_("battery voltage {volts} V is below {min_voltage} V. Nothing was erased"),
                values={
                    "volts": format(volts, ".1f"),
                    "min_voltage": format(self.options.min_voltage, ".1f"),
                },
                hint=N_("Connect a battery charger (13.5-14.5 V) and start again"),
            )
        self.precheck_info = {"hw_number": hw, "sw_version_before": sw, "battery_voltage": volts}

    def _extended_session(self, step: Step) -> None:
        self.session.change_session("extended")

    def _programming_session(self, step: Step) -> None:
        self.session.change_session("programming")

    def _security_access(self, step: Step) -> None:
        self.session.security_access(self.package.sequence.security_level)

    def _optional(self, request: bytes) -> None:
        try:
            self.session.raw(request)
        except NegativeResponseError as err:  # not every ECU offers it in the programming session
            log.info("%s: optional request %s refused: %s", self.session.name, request.hex(), err)

    def _dtc_setting_off(self, step: Step) -> None:
        self._optional(b"\x85\x02")

    def _communication_off(self, step: Step) -> None:
        self._optional(b"\x28\x03\x01")

    def _segment(self, step: Step) -> Any:
        assert step.segment is not None
        return self.package.segments[step.segment]

    def _erase(self, step: Step) -> None:
        seg = self._segment(step)
        result = self.session.routine(
            "start",
            self.package.sequence.erase_routine,
            struct.pack(">II", seg.address, seg.length),
        )
        if result[:1] not in (b"", b"\x00"):
            raise FlashError(
                N_("{ecu_name}: erase reported failure 0x{value}"),
                values={"ecu_name": self.package.ecu_name, "value": format(result[0], "02X")},
            )

    def _download(self, step: Step) -> None:
        seg = self._segment(step)
        max_len = self.session.request_download(seg.address, seg.length)
        if self.package.sequence.max_block_length:
            max_len = min(max_len, self.package.sequence.max_block_length)
        if self.session.max_payload:  # maxNumberOfBlockLength may exceed what the transport carries
            max_len = min(max_len, self.session.max_payload)
        size = max_len - 2
        if size <= 0:
            raise FlashError(
                N_("{ecu_name} offers blocks of {max_len} bytes; cannot transfer"),
                values={"ecu_name": self.package.ecu_name, "max_len": max_len},
            )
        blocks = (seg.length + size - 1) // size
        counter, last_check = 1, self.clock()
        began, sent_before = last_check, self._sent
        assert step.segment is not None
        for block in range(blocks):
            data = seg.data[block * size : (block + 1) * size]
            try:
                self._send_block(counter, data, step, block, blocks)
            except VciError:
                self.journal.position(
                    self.job_id, step.segment, block * size, block
                )  # where it stands
                raise
            counter = (counter + 1) & 0xFF
            done = min(seg.length, (block + 1) * size)
            self._sent += len(data)
            if (block + 1) % self.options.journal_every == 0 or block + 1 == blocks:
                self.journal.position(self.job_id, step.segment, done, block + 1)
            now = self.clock()
            if now - last_check >= self.options.voltage_interval:
                last_check = now
                volts = self.voltage()
                if volts < self.options.voltage_floor:
                    self.journal.position(self.job_id, step.segment, done, block + 1)
                    raise FlashError(
                        N_(
                            "battery voltage fell to {volts} V during programming; stopped safely after block {block} of {blocks} of segment {segment}. {ecu} is erased and not valid until the flash is resumed"
                        ),
                        values={"volts": format(volts, ".1f"), **self._at(step, block, blocks)},
                        hint=N_("Connect a battery charger, then: vci flash --resume"),
                    )
            self._report(step, done, seg.length, began, sent_before)
        self._transfer_time += self.clock() - began
        self.session.request_transfer_exit()

    def _at(self, step: Step, block: int, blocks: int) -> dict[str, object]:
        """Where a transfer stopped, as its messages name it (counted from 1)."""
        return {"ecu": self.package.ecu_name, "block": block + 1, "blocks": blocks,
                "segment": (step.segment or 0) + 1}  # fmt: skip

    def _send_block(self, counter: int, data: bytes, step: Step, block: int, blocks: int) -> None:
        for attempt in range(self.options.block_retries + 1):
            try:
                self.session.transfer_data(counter, data)
                return
            except ResponseDeadlineError as err:  # it took the block and is stuck: no repeat
                raise FlashError(
                    N_(
                        "{ecu} did not finish block {block} of {blocks} of segment {segment}: {err}. The ECU is erased and not valid"
                    ),
                    values={**self._at(step, block, blocks), "err": err},
                    hint=N_("Switch the ignition off and on, then: vci flash --resume"),
                ) from err
            except (EcuNotRespondingError, TransportError) as err:
                if attempt == self.options.block_retries:
                    raise FlashError(
                        N_(
                            "{ecu} did not take block {block} of {blocks} of segment {segment} after {tries} tries ({err}). The ECU is erased and not valid"
                        ),
                        values={**self._at(step, block, blocks), "tries": attempt + 1, "err": err},
                        hint=N_("Check the connection and the ignition, then: vci flash --resume"),
                    ) from err
                log.warning(
                    "block %d: %s; sending it again with counter 0x%02X", block + 1, err, counter
                )
            except NegativeResponseError as err:
                if err.nrc == 0x24 and attempt > 0:
                    raise FlashError(
                        N_(
                            "{ecu} lost the transfer (it answered RequestSequenceError to a repeated block: it reset itself) at block {block} of {blocks} of segment {segment}. The ECU is erased and not valid"
                        ),
                        values=self._at(step, block, blocks),
                        hint=N_(
                            "Resume: vci flash --resume (the segment is erased and written again)"
                        ),
                    ) from err
                raise

    def _report(self, step: Step, done: int, length: int, began: float, sent_before: int) -> None:
        elapsed = self._transfer_time + max(self.clock() - began, 1e-6)
        rate = self._sent / elapsed
        total_done = self.written_before + done
        left = (self.total - total_done) / rate if rate > 0 else None
        self._event(
            step=step.template,
            **step.values,
            bytes=total_done,
            total=self.total,
            percent=round(100 * total_done / self.total, 1),
            rate=round(rate),
            time_left=None if left is None else round(left, 1),
        )

    def _check_memory(self, step: Step) -> None:
        seg = self._segment(step)
        option = struct.pack(">II", seg.address, seg.length) + bytes.fromhex(seg.sha256)
        result = self.session.routine("start", self.package.sequence.check_routine, option)
        if result[:1] != b"\x00":
            raise FlashError(
                N_(
                    "{ecu_name}: check memory of segment {value} failed: the ECU computed another checksum. The ECU is not valid"
                ),
                values={"ecu_name": self.package.ecu_name, "value": (step.segment or 0) + 1},
                hint=N_("Resume (vci flash --resume) writes the segment again"),
            )
        assert step.segment is not None
        self.written_before += seg.length

    def _check_dependencies(self, step: Step) -> None:
        result = self.session.routine("start", self.package.sequence.dependency_routine)
        if result[:1] != b"\x00":
            raise FlashError(
                N_("{ecu_name}: programming dependencies not met (result {value})"),
                values={"ecu_name": self.package.ecu_name, "value": result.hex()},
                hint=N_("Flash the other packages of this update first"),
            )

    def _reset(self, step: Step) -> None:
        try:
            self.session.ecu_reset(0x01)
        except EcuNotRespondingError:
            log.info(
                "%s: no answer to the reset (it may reset before answering)", self.session.name
            )

    def _verify_version(self, step: Step) -> None:
        version = str(self.session.read_dids(0xF189)[0xF189]).strip()
        if version != self.package.version:
            raise FlashError(
                N_("{ecu_name} reports software {version} after programming, expected {version2}"),
                values={
                    "ecu_name": self.package.ecu_name,
                    "version": version,
                    "version2": self.package.version,
                },
            )
        self._event(
            step=step.template,
            **step.values,
            bytes=self.total,
            total=self.total,
            percent=100.0,
            verified=True,
        )


__all__ = ["FlashError", "FlashOptions", "Journal", "Sequencer"]
