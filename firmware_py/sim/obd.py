"""The simulated engine ECU's OBD-II server (SAE J1979 / ISO 15031-5, ISO 15765-4 message forms),
as pure logic: modes 01 (current data), 03/07/0A (stored, pending, permanent DTCs), 04 (clear)
and 09 (vehicle information), with readiness that a clear resets and a simulated drive cycle
completes, and a fault that turns the MIL on, on demand (control API ``POST /obd``).

What the engine is (spark or compression ignition, which monitors it has, its CALID/CVN and the
OBD DTCs it starts with) comes from the vehicle file's ``[ecu.obd]`` table (:class:`ObdSpec`).
The OBD DTCs are their own list, as an engine ECU keeps the emissions-related view apart from
the manufacturer's fault memory (UDS 0x19); a UDS ClearDiagnosticInformation clears both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

CONTINUOUS = ("misfire", "fuel_system", "components")
NON_CONTINUOUS = {
    "spark": ("catalyst", "heated_catalyst", "evaporative_system", "secondary_air",
              "ac_refrigerant", "oxygen_sensor", "oxygen_sensor_heater", "egr_vvt"),
    "compression": ("nmhc_catalyst", "nox_scr", "", "boost_pressure",
                    "", "exhaust_gas_sensor", "pm_filter", "egr_vvt"),
}  # fmt: skip
"""J1979's bit order of PID 01 bytes C/D (the same table as firmware_py/uds/obd_pids.toml; the
simulator keeps its own copy: it is the car, not our client)"""
INFO_SIZES = {0x02: 17, 0x04: 16, 0x06: 4, 0x0A: 20}
DRIVE_CYCLE_KM = 23  # distance of one simulated drive cycle


class ObdSpecError(ValueError):
    pass


def dtc_bytes(code: str) -> bytes:
    if len(code) != 5 or code[0] not in "PCBU" or code[1] not in "0123":
        raise ObdSpecError(f"{code!r} is not an OBD DTC such as P0300")
    return bytes([("PCBU".index(code[0]) << 6) | (int(code[1]) << 4) | int(code[2], 16)]) + bytes(
        [int(code[3:], 16)]
    )


@dataclass(frozen=True)
class ObdSpec:
    """An engine ECU's OBD face, from the vehicle file's ``[ecu.obd]``."""

    ignition: str
    """``spark`` (petrol) or ``compression`` (diesel)"""
    monitors: tuple[str, ...]
    """the non-continuous monitors this engine has (names as in NON_CONTINUOUS)"""
    obd_standard: int = 6
    """PID 1C: 6 = EOBD"""
    calids: tuple[str, ...] = ()
    cvns: tuple[str, ...] = ()
    """hex, 4 bytes each, one per CALID"""
    ecu_name: str = "ECM-EngineControl"
    stored: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    permanent: tuple[str, ...] = ()
    mil: bool = False
    """the MIL at the start (a confirmed fault the driver has been shown)"""

    def __post_init__(self) -> None:
        if self.ignition not in NON_CONTINUOUS:
            raise ObdSpecError("obd.ignition must be 'spark' or 'compression'")
        unknown = set(self.monitors) - set(NON_CONTINUOUS[self.ignition]) - {""}
        if unknown:
            raise ObdSpecError(f"obd.monitors: {sorted(unknown)} are not {self.ignition} monitors")
        if len(self.cvns) != len(self.calids) or any(len(bytes.fromhex(c)) != 4 for c in self.cvns):
            raise ObdSpecError("obd: one CVN (4 bytes hex) per CALID")
        if any(len(c) > 16 or not c.isascii() for c in self.calids):
            raise ObdSpecError("obd.calids: at most 16 ASCII characters each")
        for code in (*self.stored, *self.pending, *self.permanent):
            dtc_bytes(code)

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> ObdSpec:
        tuples = ("monitors", "calids", "cvns", "stored", "pending", "permanent")
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in raw.items()}
        return cls(**fields)


@dataclass
class ObdEngine:
    """The OBD state of one engine ECU; :meth:`handle` answers one request (bytes in, bytes out)."""

    spec: ObdSpec
    stored: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    permanent: list[str] = field(default_factory=list)
    complete: set[str] = field(default_factory=set)
    fault: str | None = None
    """an active fault (MIL on) set through the control API"""
    mil: bool = False
    mil_km: int = 0
    since_clear_km: int = 0
    warm_ups: int = 0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """The vehicle file's state: a car that has been driven (every monitor complete)."""
        s = self.spec
        self.stored, self.pending, self.permanent = (
            list(s.stored),
            list(s.pending),
            list(s.permanent),
        )
        self.complete = set(CONTINUOUS) | set(s.monitors)
        self.fault, self.mil = None, s.mil
        self.mil_km, self.since_clear_km, self.warm_ups = 0, 1840, 40

    # -- what the control API does ----------------------------------------------------------------
    def clear(self) -> None:
        """Mode 04 or UDS 0x14: DTCs and readiness cleared (the non-continuous monitors are
        incomplete until a drive cycle); permanent DTCs stay until a drive cycle passes."""
        self.stored.clear()
        self.pending.clear()
        self.complete = set(CONTINUOUS)
        self.mil = False  # on again when the fault is confirmed (next drive cycle)
        self.mil_km = self.since_clear_km = self.warm_ups = 0
        if self.fault is not None:  # still there: found again at once
            self.pending.append(self.fault)

    def drive_cycle(self) -> None:
        """A drive cycle with every monitor run: all complete; an active fault is confirmed
        (stored, permanent, MIL on); without one, permanent DTCs are erased."""
        self.complete = set(CONTINUOUS) | set(self.spec.monitors)
        self.warm_ups = min(self.warm_ups + 1, 255)
        self.since_clear_km = min(self.since_clear_km + DRIVE_CYCLE_KM, 0xFFFF)
        self.mil = self.fault is not None  # J1979 waits 3 fault-free cycles; one here
        if self.fault is not None:
            self.mil_km = min(self.mil_km + DRIVE_CYCLE_KM, 0xFFFF)
            for codes in (self.stored, self.pending, self.permanent):
                if self.fault not in codes:
                    codes.append(self.fault)
        else:
            self.permanent.clear()

    def set_fault(self, code: str | None) -> None:
        """A fault that turns the MIL on now (``None``: the fault is repaired; the DTCs stay
        until cleared, permanent until a drive cycle)."""
        if code is not None:
            dtc_bytes(code)
            for codes in (self.stored, self.pending, self.permanent):
                if code not in codes:
                    codes.append(code)
            self.mil = True
        self.fault = code

    def state(self) -> dict[str, Any]:
        return {
            "ignition": self.spec.ignition,
            "mil": self.mil,
            "stored": list(self.stored),
            "pending": list(self.pending),
            "permanent": list(self.permanent),
            "supported": [*CONTINUOUS, *self.spec.monitors],
            "complete": sorted(self.complete),
            "calids": list(self.spec.calids),
            "cvns": [c.upper() for c in self.spec.cvns],
            "fault": self.fault,
        }

    # -- the server -------------------------------------------------------------------------------
    def _pid_data(self, pid: int, live: dict[str, float], volts: float) -> bytes | None:
        if pid in (0x00, 0x20, 0x40):
            have = [p for p in self._pids() if pid < p <= pid + 0x20]
            bits = sum(1 << (32 - (p - pid)) for p in have)
            return struct.pack(">I", bits)
        values: dict[int, Any] = {
            0x01: self._monitor_status,
            0x05: lambda: bytes([max(0, min(255, int(live.get("coolant_temperature", 0)) + 40))]),
            0x0C: lambda: struct.pack(">H", int(live.get("engine_speed", 0) * 4)),
            0x0D: lambda: b"\x00",
            0x1C: lambda: bytes([self.spec.obd_standard]),
            0x21: lambda: struct.pack(">H", self.mil_km),
            0x30: lambda: bytes([self.warm_ups]),
            0x31: lambda: struct.pack(">H", self.since_clear_km),
            0x42: lambda: struct.pack(">H", round(volts * 1000)),
        }
        make = values.get(pid)
        return make() if make else None

    @staticmethod
    def _pids() -> list[int]:
        return [0x01, 0x05, 0x0C, 0x0D, 0x1C, 0x20, 0x21, 0x30, 0x31, 0x40, 0x42]

    def _monitor_status(self) -> bytes:
        a = (0x80 if self.mil else 0) | min(len(self.stored), 0x7F)
        b = 0x08 if self.spec.ignition == "compression" else 0
        for i, name in enumerate(CONTINUOUS):
            b |= 1 << i
            if name not in self.complete:
                b |= 0x10 << i
        c = d = 0
        for i, name in enumerate(NON_CONTINUOUS[self.spec.ignition]):
            if name and name in self.spec.monitors:
                c |= 1 << i
                if name not in self.complete:
                    d |= 1 << i
        return bytes([a, b, c, d])

    def _info(self, pid: int) -> bytes | None:
        s = self.spec
        items: list[bytes]
        if pid == 0x00:
            return struct.pack(">I", sum(1 << (32 - p) for p in INFO_SIZES))
        if pid == 0x02:
            return None  # the VIN: filled in by handle() (it is the vehicle's)
        if pid == 0x04:
            items = [c.encode().ljust(16, b"\0") for c in s.calids]
        elif pid == 0x06:
            items = [bytes.fromhex(c) for c in s.cvns]
        elif pid == 0x0A:
            items = [s.ecu_name.encode()[:20].ljust(20, b"\0")]
        else:
            return None
        return bytes([len(items)]) + b"".join(items)

    def handle(
        self, request: bytes, *, vin: str, live: dict[str, float], volts: float, functional: bool
    ) -> bytes | None:
        """The answer to one OBD request (None: no answer, as J1979 has an ECU stay silent to a
        functional request it supports nothing of)."""
        mode = request[0]

        def refuse(nrc: int) -> bytes | None:
            return None if functional else bytes([0x7F, mode, nrc])

        if mode == 0x01:
            pids = request[1:]
            if not 1 <= len(pids) <= 6:
                return refuse(0x13)
            out = bytearray([0x41])
            for pid in pids:
                data = self._pid_data(pid, live, volts)
                if data is not None:
                    out += bytes([pid]) + data
            return bytes(out) if len(out) > 1 else refuse(0x12)
        if mode in (0x03, 0x07, 0x0A):
            if len(request) != 1:
                return refuse(0x13)
            codes = {0x03: self.stored, 0x07: self.pending, 0x0A: self.permanent}[mode]
            return bytes([mode + 0x40, len(codes)]) + b"".join(dtc_bytes(c) for c in codes)
        if mode == 0x04:
            if len(request) != 1:
                return refuse(0x13)
            self.clear()
            return b"\x44"
        if mode == 0x09:
            if len(request) != 2:
                return refuse(0x13)
            pid = request[1]
            data = b"\x01" + vin.encode() if pid == 0x02 else self._info(pid)
            return bytes([0x49, pid]) + data if data is not None else refuse(0x12)
        return refuse(0x11)
