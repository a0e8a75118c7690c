"""One simulated ECU's UDS server (ISO 14229-1), as pure logic.

``EcuModel.handle(request, now)`` takes the request bytes and the time and returns a
:class:`Reply`: the response bytes (or none), how many "response pending" (NRC 0x78) frames go
first and after how long the final answer is due. The DoIP and CAN faces of the simulator do the
I/O and the waiting; nothing here sleeps or reads a clock, so tests pass ``now`` explicitly.

Every request first walks ISO 14229-1's general server response behaviour
(:mod:`firmware_py.sim.response_behaviour`) over the services declared in
:mod:`firmware_py.sim.services`; the handlers here only do each service's own checks and work.
Behaviour follows the shapes documented in docs/simulator.md (sessions with P2/P2*, S3 timeout,
security access with attempt counter and delay, fault memory with snapshot and extended data,
routines, download with block sequence counter, tester present with suppressPosRspMsgIndicationBit).
"""

from __future__ import annotations

import itertools
import math
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from firmware_py.sim.faults import EcuFaults
from firmware_py.sim.maps import DID_MAP_STATE, MapArea
from firmware_py.sim.obd import ObdEngine
from firmware_py.sim.programming import Programming, Region, Transfer
from firmware_py.sim.response_behaviour import (
    DEFAULT,
    EXTENDED,
    PROGRAMMING,
    Nack,
    Nrc,
    Service,
    check_request,
    final_response,
    negative,
)
from firmware_py.sim.service_history import DID_APPEND, DID_HISTORY, DID_ODOMETER, ServiceHistory
from firmware_py.sim.services import LEVEL_CODING, ROUTINES, services_for
from firmware_py.sim.vehicle import BatterySpec, CbsItemSpec, EcuSpec, VehicleSpec

P2, P2_STAR, S3 = 0.050, 5.0, 5.0
PENDING_INTERVAL = 0.3  # seconds between "response pending" frames of a slow service
PENDING_FOREVER = -1  # Reply.pending: "response pending" until the tester goes away
FLOOD_DTC_BASE = 0x500000  # codes of the made-up DTCs of the dtc-flood fault
SECURITY_ATTEMPTS = 3

# DIDs (docs/simulator.md)
DID_VIN, DID_PART, DID_HW_NUMBER, DID_SW_VERSION, DID_SERIAL, DID_HW_VERSION, DID_SVK = (
    0xF190,
    0xF187,
    0xF191,
    0xF189,
    0xF18C,
    0xF150,
    0xF101,
)
DID_ENGINE_SPEED, DID_COOLANT, DID_BATTERY, DID_SUPPLY, DID_CODING = (
    0x4001,
    0x4002,
    0x4003,
    0xDAD0,
    0x3000,
)
# service functions (docs/simulator.md): Condition Based Service data, registered battery
DID_CBS, DID_BATTERY_INFO = 0x2500, 0x2510
NO_DISTANCE = 0x7FFFFFFF  # remaining_km of a time-only CBS item
BATTERY_AH = range(40, 131)  # the capacities the energy management accepts


def sim_key(seed: int, ecu_address: int, level: int) -> int:
    """The simulator's seed/key algorithm ``vci-sim-lcg32`` (TEST MATERIAL, not a real one)."""
    mask = 0x5A5A0000 | (ecu_address << 8) | level
    return (((seed ^ mask) * 0x41C64E6D) + 0x3039) & 0xFFFFFFFF


@dataclass
class Reply:
    response: bytes | None
    """Final response; ``None``: the ECU does not answer."""
    pending: int = 0
    """"response pending" (7F SID 78) frames sent before it, PENDING_INTERVAL apart;
    PENDING_FOREVER: they never end (the final response is never sent)."""
    delay: float = 0.0
    """extra seconds before the final response (after the pending frames)."""
    reset: bool = False
    """the ECU resets after answering (the faces drop their transfer state)."""

    def within(self, max_length: int, sid: int) -> Reply:
        """This reply through a face that carries at most ``max_length`` bytes of UDS: a longer
        answer becomes NRC 0x14 responseTooLong, as an ECU behind that transport answers."""
        if self.response is not None and len(self.response) > max_length:
            return replace(self, response=bytes([0x7F, sid, Nrc.RESPONSE_TOO_LONG]))
        return self

    def pending_frames(self) -> Iterator[int]:
        """One item per "response pending" frame the faces send (PENDING_INTERVAL apart); for
        PENDING_FOREVER they never end, and a face stops when its tester goes away."""
        return itertools.count() if self.pending == PENDING_FOREVER else iter(range(self.pending))


@dataclass
class Dtc:
    code: int
    status: int
    text: str
    mileage: int
    voltage_mv: int
    occurrences: int
    aging: int


def cbs_availability(item: CbsItemSpec) -> int:
    """Percent of a CBS item's interval left (0 when due or overdue), by distance and by time."""
    ratios = [item.remaining_months / item.interval_months]
    if item.interval_km:
        ratios.append(item.remaining_km / item.interval_km)
    return max(0, min(100, math.floor(min(ratios) * 100)))


def _cbs_record(item: CbsItemSpec) -> bytes:
    km = item.remaining_km if item.interval_km else NO_DISTANCE
    return struct.pack(">BBib", item.id, cbs_availability(item), km, item.remaining_months)


@dataclass
class Battery:
    """The vehicle's supply voltage, shared by all ECUs (fault injection changes it)."""

    volts: float


@dataclass
class EcuModel(Programming):
    """One ECU's UDS server; its bootloader part is :class:`Programming`."""

    spec: EcuSpec
    vehicle: VehicleSpec
    battery: Battery
    faults: EcuFaults = field(default_factory=EcuFaults)
    security_delay: float = 10.0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.services: dict[int, Service] = services_for(self.spec.flash is not None)
        self.obd = ObdEngine(self.spec.obd) if self.spec.obd is not None else None
        self.reset_state()

    # -- state ------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Back to the vehicle file's initial state (the control API's reset)."""
        s = self.spec
        self.session = DEFAULT
        self.last_request = 0.0
        self.unlocked: int | None = None
        self.seed: tuple[int, int] | None = None  # (level, seed)
        self.failed_attempts = 0
        self.locked_until = 0.0
        self.sw_version = s.sw_version
        self.svk: list[list[Any]] = [list(e) for e in s.svk]
        self.coding = bytearray(s.coding) if s.coding else None
        self.dtcs = [
            Dtc(
                d.code, d.status, d.text, d.mileage, round(d.voltage * 1000), d.occurrences, d.aging
            )
            for d in s.dtcs
        ]
        self.routines: dict[int, bytes] = {}
        self.cbs: list[CbsItemSpec] = list(s.cbs)  # a reset replaces an item
        self.battery_info: BatterySpec | None = s.battery  # a registration replaces it
        self.history = (
            None if s.service_history is None else ServiceHistory.from_spec(8, s.service_history)
        )
        self.transfer: Transfer | None = None
        self.comm_disabled = False
        self.requests = 0
        self.region = Region.new(s.flash, s.sw_version) if s.flash else None
        self.maps = MapArea.new(s.maps) if s.maps else None
        if self.obd is not None:
            self.obd.reset()

    def _expire_session(self, now: float) -> None:
        if self.session != DEFAULT and now - self.last_request > S3:
            self._enter_default()

    def _enter_default(self) -> None:
        self.session = DEFAULT
        self.unlocked = None
        self.seed = None
        self.transfer = None
        self.comm_disabled = False

    def ecu_reset(self) -> None:
        """What a reset does: default session (or programming, if the application is invalid)."""
        self._enter_default()
        if self.region is not None and not self.region.valid:
            self.session = PROGRAMMING  # the bootloader stays: there is no valid application

    # -- entry point ------------------------------------------------------------------
    def handle(self, request: bytes, now: float, functional: bool = False) -> Reply:
        """Answer one request; ``functional``: it came to a functional address."""
        with self.lock:
            f = self.faults
            if f.no_answer or not request:
                return Reply(None)
            self.requests += 1
            self._expire_session(now)
            self.last_request = now
            sid = request[0]
            if sid in f.nrc:
                return Reply(bytes([0x7F, sid, f.nrc[sid]]), delay=f.delay)
            if sid in f.pending_forever:
                return Reply(None, pending=PENDING_FOREVER)
            if self.obd is not None and sid <= 0x0A:  # SAE J1979 modes: the OBD face
                return Reply(
                    self.obd.handle(
                        request,
                        vin=self.vehicle.vin,
                        live=self.spec.live,
                        volts=self.battery.volts,
                        functional=functional,
                    ),
                    delay=f.delay,
                )
            try:
                service = check_request(self.services, request, self)
                response = getattr(self, service.handler)(request, now)
            except Nack as nack:
                return Reply(negative(sid, nack.nrc, functional=functional), delay=f.delay)
            pending = self.spec.slow_services.get(sid, 0)
            if sid == 0x31 and service.sub_function(request) == 0x01:
                routine = ROUTINES[(request[2] << 8) | request[3]]
                pending = routine.pending + f.extra_pending
            response = final_response(service, request, response, pending=pending)
            if response is not None and f.truncate_response and len(response) > 1:
                response = response[:-1]
            return Reply(response, pending=pending, delay=f.delay, reset=sid == 0x11)

    # -- services ---------------------------------------------------------------------
    def _session_control(self, req: bytes, now: float) -> bytes:
        if len(req) != 2:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        target = req[1] & 0x7F
        if target == PROGRAMMING and self.session == DEFAULT:
            raise Nack(Nrc.CONDITIONS_NOT_CORRECT)  # programming only from the extended session
        if target == DEFAULT:
            self._enter_default()
        else:  # entering a non-default session, even the active one, locks security again
            self.unlocked, self.seed, self.transfer = None, None, None
            self.session = target
        return bytes([0x50, target]) + struct.pack(">HH", int(P2 * 1000), int(P2_STAR * 100))

    def _ecu_reset(self, req: bytes, now: float) -> bytes:
        if len(req) != 2:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        self.ecu_reset()
        return bytes([0x51, req[1] & 0x7F])

    def _clear_dtc(self, req: bytes, now: float) -> bytes:
        if len(req) != 4:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        group = int.from_bytes(req[1:4], "big")
        if group == 0xFFFFFF:
            self.dtcs.clear()
            if self.obd is not None:
                self.obd.clear()  # the emissions-related DTCs and readiness too
        else:
            before = len(self.dtcs)
            self.dtcs = [d for d in self.dtcs if d.code != group]
            if len(self.dtcs) == before:
                raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        return b"\x54"

    def _find_dtc(self, code: int) -> Dtc:
        for d in self.dtcs:
            if d.code == code:
                return d
        raise Nack(Nrc.REQUEST_OUT_OF_RANGE)

    def _read_dtc(self, req: bytes, now: float) -> bytes:
        if len(req) < 2:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        sub = req[1]
        expected = {0x01: 3, 0x02: 3, 0x04: 6, 0x06: 6, 0x0A: 2}
        if sub not in expected:
            raise Nack(Nrc.SUB_FUNCTION_NOT_SUPPORTED)
        if len(req) != expected[sub]:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        flood = self.faults.dtc_flood  # made-up stored DTCs (status 0x08 confirmed)
        if sub == 0x01:
            count = sum(1 for d in self.dtcs if d.status & req[2])
            count += flood if req[2] & 0x08 else 0
            return bytes([0x59, 0x01, 0xFF, 0x01]) + struct.pack(">H", min(count, 0xFFFF))
        if sub in (0x02, 0x0A):
            mask = req[2] if sub == 0x02 else 0xFF
            out = bytearray([0x59, sub, 0xFF])
            for d in self.dtcs:
                if sub == 0x0A or d.status & mask:
                    out += d.code.to_bytes(3, "big") + bytes([d.status])
            if mask & 0x08:
                out += b"".join(
                    (FLOOD_DTC_BASE + i).to_bytes(3, "big") + b"\x08" for i in range(flood)
                )
            return bytes(out)
        s = self.spec
        nrc = s.dtc_snapshot_nrc if sub == 0x04 else s.dtc_extended_data_nrc
        if nrc:
            raise Nack(Nrc(nrc))  # this ECU keeps no such records (vehicle file)
        d = self._find_dtc(int.from_bytes(req[2:5], "big"))
        record = req[5]
        out = bytearray([0x59, sub]) + d.code.to_bytes(3, "big") + bytes([d.status])
        if sub == 0x04:
            if record not in (0x01, 0xFF):
                raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
            out += bytes([0x01, 2 + len(s.snapshot_dids)]) + struct.pack(
                ">HIHH", 0x1700, d.mileage, 0x1701, d.voltage_mv
            )
            for did, data in s.snapshot_dids.items():
                out += did.to_bytes(2, "big") + data
        else:
            known = {0x01: bytes([d.occurrences]), 0x02: bytes([d.aging]), **s.extended_records}
            if record != 0xFF and record not in known:
                raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
            for number, data in known.items():
                if record in (number, 0xFF):
                    out += bytes([number]) + data
        return bytes(out)

    def _did_value(self, did: int) -> bytes | None:
        s = self.spec
        if did == DID_VIN:
            return self.vehicle.vin.encode()
        if did == DID_PART:
            return s.part_number.encode()
        if did == DID_HW_NUMBER:
            return s.hw_number.encode()
        if did == DID_SW_VERSION:
            return self.sw_version.encode().ljust(16, b" ")
        if did == DID_SERIAL:
            return s.serial.encode()
        if did == DID_HW_VERSION:
            return bytes(s.hw_version)
        if did == DID_SVK:
            return bytes([len(self.svk)]) + b"".join(
                bytes([pc]) + sgbm.to_bytes(4, "big") + bytes(ver) for pc, sgbm, ver in self.svk
            )
        if did == DID_SUPPLY:
            return struct.pack(">H", round(self.battery.volts * 1000))
        if did == DID_CODING and self.coding is not None:
            return bytes(self.coding)
        if did == DID_CBS and self.cbs:
            return bytes([len(self.cbs)]) + b"".join(_cbs_record(item) for item in self.cbs)
        if did in (DID_HISTORY, DID_ODOMETER) and self.history is not None:
            mileage = struct.pack(">I", self.vehicle.mileage_km)
            return self.history.read() if did == DID_HISTORY else mileage
        if did == DID_MAP_STATE and self.maps is not None:
            return self.maps.state_record()
        if did == DID_BATTERY_INFO and self.battery_info is not None:
            b = self.battery_info
            return struct.pack(">BBI", b.capacity_ah, b.technology, b.registered_km)
        if s.live:
            if did == DID_ENGINE_SPEED:  # idle speed wanders a little, as an engine's does
                rpm = s.live.get("engine_speed", 0) + 25 * math.sin(self.last_request * 1.3)
                return struct.pack(">H", max(0, int(rpm)))
            if did == DID_COOLANT:
                return bytes([int(s.live.get("coolant_temperature", 0)) + 40])
            if did == DID_BATTERY:
                return struct.pack(">H", round(self.battery.volts * 1000))
        return None

    def _read_did(self, req: bytes, now: float) -> bytes:
        if len(req) < 3 or len(req) % 2 == 0:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        out = bytearray([0x62])
        for i in range(1, len(req), 2):
            did = (req[i] << 8) | req[i + 1]
            value = None if did in self.spec.lacks_dids else self._did_value(did)
            if value is not None:
                out += req[i : i + 2] + value
        if len(out) == 1:
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        return bytes(out)

    def _write_did(self, req: bytes, now: float) -> bytes:
        did = (req[1] << 8) | req[2]
        if did == DID_APPEND and self.history is not None:
            if self.session != EXTENDED:  # the booklet is written in the extended session
                raise Nack(Nrc.CONDITIONS_NOT_CORRECT)
            if not self.history.append(req[3:]):
                raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
            return bytes([0x6E]) + req[1:3]
        if did != DID_CODING or self.coding is None:
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        if self.unlocked != LEVEL_CODING:
            raise Nack(Nrc.SECURITY_ACCESS_DENIED)
        if len(req) != 3 + len(self.coding):
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        self.coding[:] = req[3:]
        return bytes([0x6E]) + req[1:3]

    def _security_access(self, req: bytes, now: float) -> bytes:
        sub = req[1]
        if sub % 2:  # requestSeed; a securityAccessDataRecord after it is accepted
            if now < self.locked_until:
                raise Nack(Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED)
            if self.unlocked == sub:
                return bytes([0x67, sub, 0, 0, 0, 0])
            seed = int.from_bytes(os.urandom(4), "big") or 1
            self.seed = (sub, seed)
            return bytes([0x67, sub]) + seed.to_bytes(4, "big")
        level = sub - 1
        if len(req) != 6:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        if now < self.locked_until:
            raise Nack(Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED)
        assert self.seed is not None  # the pipeline checked the sequence
        _, seed = self.seed
        self.seed = None
        if int.from_bytes(req[2:6], "big") != sim_key(seed, self.spec.address, level):
            self.failed_attempts += 1
            if self.failed_attempts >= SECURITY_ATTEMPTS:
                self.failed_attempts = 0
                self.locked_until = now + self.security_delay
                raise Nack(Nrc.EXCEEDED_NUMBER_OF_ATTEMPTS)
            raise Nack(Nrc.INVALID_KEY)
        self.failed_attempts = 0
        self.unlocked = level
        return bytes([0x67, sub])

    def _communication_control(self, req: bytes, now: float) -> bytes:
        if len(req) != 3:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        sub = req[1] & 0x7F
        self.comm_disabled = sub == 0x03
        return bytes([0x68, sub])

    def _control_dtc_setting(self, req: bytes, now: float) -> bytes:
        # a DTCSettingControlOptionRecord after the sub-function is accepted (and not used)
        return bytes([0xC5, req[1] & 0x7F])

    def _tester_present(self, req: bytes, now: float) -> bytes:
        if len(req) != 2:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        return b"\x7e\x00"

    def _routine_control(self, req: bytes, now: float) -> bytes:
        sub = req[1] & 0x7F
        rid = (req[2] << 8) | req[3]
        routine = ROUTINES.get(rid)
        have = {
            "": True,
            "flash": self.region is not None,
            "cbs": bool(self.cbs),
            "battery": self.battery_info is not None,
            "maps": self.maps is not None,
        }
        # a routine this ECU lacks, or one not allowed in the active session, is out of range
        if routine is None or not have[routine.needs] or self.session not in routine.sessions:
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        if routine.security is not None and self.unlocked != routine.security:
            raise Nack(Nrc.SECURITY_ACCESS_DENIED)
        head = bytes([0x71, sub]) + req[2:4]
        if sub in (0x02, 0x03) and rid not in self.routines:
            raise Nack(Nrc.REQUEST_SEQUENCE_ERROR)
        if sub == 0x03:
            return head + self.routines[rid]
        if sub == 0x02:
            return head
        result: bytes = getattr(self, routine.handler)(req[4:])
        self.routines[rid] = result
        return head + result

    def _self_test(self, option: bytes) -> bytes:
        return b"\x00"

    def _reset_cbs_item(self, option: bytes) -> bytes:
        if len(option) != 1:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        at = next((i for i, c in enumerate(self.cbs) if c.id == option[0]), None)
        if at is None:
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        item = self.cbs[at]
        self.cbs[at] = replace(
            item, remaining_km=item.interval_km, remaining_months=item.interval_months
        )
        return b"\x00"

    def _activate_map(self, option: bytes) -> bytes:
        assert self.maps is not None  # the routine exists only with a map region
        return self.maps.activate(option, self.vehicle.vin)

    def _register_battery(self, option: bytes) -> bytes:
        if len(option) != 2:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        capacity, technology = option
        if capacity not in BATTERY_AH or technology > 2:
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        self.battery_info = BatterySpec(capacity, technology, self.vehicle.mileage_km)
        return b"\x00"

    # -- for the control API ----------------------------------------------------------
    def state(self) -> dict[str, object]:
        with self.lock:
            r = self.region
            return {
                "name": self.spec.name,
                "address": self.spec.address,
                "session": self.session,
                "unlocked": self.unlocked,
                "sw_version": self.sw_version,
                "dtcs": [{"code": f"{d.code:06X}", "status": d.status} for d in self.dtcs],
                "coding": self.coding.hex() if self.coding is not None else None,
                "cbs": [
                    {
                        "id": c.id,
                        "remaining_km": c.remaining_km,
                        "remaining_months": c.remaining_months,
                        "availability": cbs_availability(c),
                    }
                    for c in self.cbs
                ],
                "battery": asdict(self.battery_info) if self.battery_info else None,
                "service_history": None if self.history is None else len(self.history.records),
                "obd": self.obd.state() if self.obd is not None else None,
                "maps": self.maps.to_dict() if self.maps is not None else None,
                "requests": self.requests,
                "region": None
                if r is None
                else {
                    "address": r.address,
                    "size": r.size,
                    "sha256": r.sha256(),
                    "valid": r.valid,
                    "erased": r.erased,
                },
            }
