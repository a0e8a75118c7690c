"""The simulated vehicle's description: dataclasses validated on load from a TOML file.

A vehicle file declares the car (VIN, DoIP identity, battery voltage) and its ECUs (addresses,
CAN identifiers, identification DIDs, SVK, fault memory, coding, flash region, timing traits).
Nothing here is code per ECU; :mod:`firmware_py.sim.ecu` gives every ECU the same behaviour.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from firmware_py.sim.obd import ObdSpec, ObdSpecError
from firmware_py.sim.service_history import HistoryEntrySpec


class VehicleFileError(ValueError):
    """The vehicle file is invalid; the message names the bad key."""


def _check(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise VehicleFileError(f"{where}: {what}")


@dataclass(frozen=True)
class DtcSpec:
    code: int
    text: str
    status: int
    mileage: int
    voltage: float
    occurrences: int = 1
    aging: int = 0

    def __post_init__(self) -> None:
        where = f"dtc 0x{self.code:06X}"
        _check(0 <= self.code <= 0xFFFFFF, where, "code must be 3 bytes")
        _check(0 <= self.status <= 0xFF, where, "status must be one byte")
        _check(
            0 <= self.occurrences <= 0xFF and 0 <= self.aging <= 0xFF,
            where,
            "counters are one byte",
        )


@dataclass(frozen=True)
class FlashRegion:
    address: int
    size: int
    max_block_length: int = 0x1002
    """maxNumberOfBlockLength of RequestDownload's response (SID + counter + data)."""

    def __post_init__(self) -> None:
        _check(self.size > 64 and self.address >= 0, "flash", "address/size out of range")
        _check(
            3 <= self.max_block_length <= 0x100002, "flash", "max_block_length must be 3..0x100002"
        )


@dataclass(frozen=True)
class MapRegionSpec:
    """A head unit's navigation map storage (firmware_py/sim/maps.py): where map data is
    downloaded to, and the map installed when the car leaves the factory."""

    address: int
    size: int
    max_block_length: int = 0x10002
    """maxNumberOfBlockLength of RequestDownload's response into this region"""
    installed: str = ""
    """the active map, "REGION VERSION" ("" none)"""

    def __post_init__(self) -> None:
        _check(
            self.address >= 0 and self.size > 0 and self.address + self.size <= 2**32,
            "maps",
            "address and size must lie within 32-bit addresses",
        )
        _check(
            3 <= self.max_block_length <= 0x100002, "maps", "max_block_length must be 3..0x100002"
        )
        _check(len(self.installed) <= 40 and self.installed.isascii(), "maps", "installed: ASCII")


@dataclass(frozen=True)
class CbsItemSpec:
    """One Condition Based Service item the instrument cluster keeps: what is left until the
    service is due (distance and/or time) and what a reset puts back."""

    id: int
    remaining_km: int
    remaining_months: int
    interval_km: int
    """0: a time-only item (brake fluid)"""
    interval_months: int

    def __post_init__(self) -> None:
        where = f"cbs item {self.id}"
        _check(0 < self.id <= 0xFF, where, "id must be 1..255")
        _check(
            0 <= self.interval_km < 0x7FFFFFFF and 0 < self.interval_months <= 127,
            where,
            "interval_km must be >= 0 and interval_months 1..127",
        )
        _check(
            -128 <= self.remaining_months <= 127 and abs(self.remaining_km) < 0x7FFFFFFF,
            where,
            "remaining_months must fit a signed byte",
        )


@dataclass(frozen=True)
class BatterySpec:
    """The battery the energy management knows (registered after a battery change)."""

    capacity_ah: int
    technology: int
    """0 flooded, 1 EFB, 2 AGM"""
    registered_km: int

    def __post_init__(self) -> None:
        _check(
            0 < self.capacity_ah <= 0xFF and 0 <= self.technology <= 2 and self.registered_km >= 0,
            "battery",
            "capacity_ah 1..255, technology 0..2, registered_km >= 0",
        )


@dataclass(frozen=True)
class EcuSpec:
    name: str
    description: str
    address: int
    can_ids: tuple[int, int] | None
    part_number: str
    hw_number: str
    hw_version: tuple[int, int, int]
    sw_version: str
    serial: str
    svk: tuple[tuple[int, int, tuple[int, int, int]], ...]
    dtcs: tuple[DtcSpec, ...] = ()
    coding: bytes | None = None
    flash: FlashRegion | None = None
    slow_services: dict[int, int] = field(default_factory=dict)
    """SID -> number of "response pending" (0x78) answers before the real one."""
    live: dict[str, float] = field(default_factory=dict)
    cbs: tuple[CbsItemSpec, ...] = ()
    """Condition Based Service items (DID 0x2500, reset by routine 0x1010)"""
    battery: BatterySpec | None = None
    """registered battery (DID 0x2510, registration routine 0x1020)"""
    service_history: tuple[HistoryEntrySpec, ...] | None = None
    """the electronic service booklet the cluster keeps (DIDs 0x2520/0x2521, odometer 0x2530;
    firmware_py/sim/service_history.py); None: this ECU keeps none"""
    # -- how this ECU differs from the others (real ECUs do; docs/simulator.md) --
    lacks_dids: frozenset[int] = frozenset()
    """DIDs this ECU does not have: left out of a multi-DID answer (ISO 14229-1 allows it),
    NRC 0x31 when asked alone"""
    dtc_snapshot_nrc: int = 0
    """answer 0x19 04 (snapshot records) with this NRC (0x12, 0x31): the ECU keeps none; 0: answer"""
    dtc_extended_data_nrc: int = 0
    """answer 0x19 06 (extended data records) with this NRC; 0: answer"""
    snapshot_dids: dict[int, bytes] = field(default_factory=dict)
    """manufacturer-specific DIDs (and their data) added to every snapshot record after the
    standard ones (mileage 0x1700, voltage 0x1701)"""
    extended_records: dict[int, bytes] = field(default_factory=dict)
    """extended data records (number -> data) after the standard ones (0x01 occurrence
    counter, 0x02 aging counter), of sizes only the manufacturer knows"""
    obd: ObdSpec | None = None
    """the engine ECU's OBD-II face (SAE J1979): firmware_py/sim/obd.py"""
    maps: MapRegionSpec | None = None
    """a head unit's navigation map storage (firmware_py/sim/maps.py); needs a flash region
    (its download services)"""

    def __post_init__(self) -> None:
        where = f"ecu {self.name}"
        _check(self.maps is None or self.flash is not None, where, "maps needs a flash region")
        if self.maps is not None and self.flash is not None:
            f, m = self.flash, self.maps
            _check(
                f.address + f.size <= m.address or m.address + m.size <= f.address,
                where,
                "the map region must not overlap the flash region",
            )
        _check(
            self.dtc_snapshot_nrc in (0, 0x12, 0x22, 0x31)
            and self.dtc_extended_data_nrc in (0, 0x12, 0x22, 0x31),
            where,
            "dtc_snapshot_nrc / dtc_extended_data_nrc must be 0, 0x12, 0x22 or 0x31",
        )
        _check(
            all(0 <= d <= 0xFFFF for d in (*self.lacks_dids, *self.snapshot_dids)),
            where,
            "DIDs are 2 bytes",
        )
        _check(
            all(0x03 <= r <= 0xEF for r in self.extended_records),
            where,
            "extended_records numbers must be 0x03..0xEF (0x01, 0x02 are the standard counters)",
        )
        _check(
            0 < self.address <= 0xFF and self.address not in (0xF1, 0xDF),
            where,
            "address must be 0x01..0xFF (not 0xF1/0xDF)",
        )
        _check(
            len(self.part_number) == 7 and len(self.hw_number) == 7,
            where,
            "part/hw numbers have 7 characters",
        )
        _check(
            len(self.sw_version) <= 16 and self.sw_version.isascii(),
            where,
            "sw_version is at most 16 ASCII characters",
        )
        _check(len(self.serial) == 10, where, "serial has 10 characters")
        _check(self.coding is None or len(self.coding) == 16, where, "coding has 16 bytes")
        for pc, sgbm, ver in self.svk:
            _check(
                pc in (0x01, 0x05, 0x06, 0x08) and 0 <= sgbm <= 0xFFFFFFFF and len(ver) == 3,
                where,
                "bad svk entry",
            )
        if self.can_ids:
            _check(all(0 < i <= 0x7FF for i in self.can_ids), where, "can_ids must be 11-bit")


@dataclass(frozen=True)
class VehicleSpec:
    vin: str
    model: str
    eid: bytes
    gid: bytes
    gateway_address: int
    battery_voltage: float
    mileage_km: int
    ecus: tuple[EcuSpec, ...]
    enet: tuple[str, ...] = ("doip", "hsfz")
    """the ENET protocols the car's gateway answers: F-series cars speak HSFZ only"""

    def __post_init__(self) -> None:
        _check(len(self.vin) == 17 and self.vin.isalnum(), "vin", "must be 17 letters/digits")
        _check(len(self.eid) == 6 and len(self.gid) == 6, "eid/gid", "must be 6 bytes")
        addresses = [e.address for e in self.ecus]
        _check(len(set(addresses)) == len(addresses), "ecu", "addresses must be unique")
        _check(self.gateway_address in addresses, "gateway_address", "must be one of the ECUs")
        _check(set(self.enet) <= {"doip", "hsfz"}, "enet", "lists the protocols doip and/or hsfz")
        ids = [i for e in self.ecus if e.can_ids for i in e.can_ids]
        _check(len(set(ids)) == len(ids), "can_ids", "must be unique")

    def ecu(self, address: int) -> EcuSpec | None:
        return next((e for e in self.ecus if e.address == address), None)


def _version_tuple(value: Any, where: str) -> tuple[int, int, int]:
    _check(
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in value),
        where,
        "version must be [major, minor, patch]",
    )
    return (value[0], value[1], value[2])


def _hex_table(raw: dict[str, Any]) -> dict[int, bytes]:
    """``{ 0x2F0C = "1E 05" }`` -> {0x2F0C: b"\\x1e\\x05"}"""
    return {int(k, 0): bytes.fromhex(str(v)) for k, v in raw.items()}


def _ecu_from(raw: dict[str, Any]) -> EcuSpec:
    name = str(raw.get("name", "?"))
    where = f"ecu {name}"
    try:
        dtcs = tuple(
            DtcSpec(
                code=d["code"],
                text=d["text"],
                status=d["status"],
                mileage=d["snapshot"]["mileage"],
                voltage=float(d["snapshot"]["voltage"]),
                occurrences=d.get("occurrences", 1),
                aging=d.get("aging", 0),
            )
            for d in raw.get("dtc", [])
        )
        flash = FlashRegion(**raw["flash"]) if "flash" in raw else None
        coding = bytes.fromhex(raw["coding"]) if "coding" in raw else None
        can_ids = tuple(raw["can_ids"]) if "can_ids" in raw else None
        _check(can_ids is None or len(can_ids) == 2, where, "can_ids is [request, response]")
        return EcuSpec(
            name=name,
            description=raw["description"],
            address=raw["address"],
            can_ids=can_ids,  # type: ignore[arg-type]
            part_number=raw["part_number"],
            hw_number=raw["hw_number"],
            hw_version=_version_tuple(raw["hw_version"], where),
            sw_version=raw["sw_version"],
            serial=raw["serial"],
            svk=tuple((e[0], e[1], _version_tuple(e[2], where)) for e in raw.get("svk", [])),
            dtcs=dtcs,
            coding=coding,
            flash=flash,
            slow_services={int(k, 0): int(v) for k, v in raw.get("slow_services", {}).items()},
            live={k: float(v) for k, v in raw.get("live", {}).items()},
            cbs=tuple(CbsItemSpec(**c) for c in raw.get("cbs", [])),
            battery=BatterySpec(**raw["battery"]) if "battery" in raw else None,
            service_history=tuple(
                HistoryEntrySpec(**{**e, "items": tuple(e.get("items", ()))})
                for e in raw["service_history"]
            )
            if "service_history" in raw
            else None,
            lacks_dids=frozenset(int(d) for d in raw.get("lacks_dids", [])),
            dtc_snapshot_nrc=int(raw.get("dtc_snapshot_nrc", 0)),
            dtc_extended_data_nrc=int(raw.get("dtc_extended_data_nrc", 0)),
            snapshot_dids=_hex_table(raw.get("snapshot_dids", {})),
            extended_records=_hex_table(raw.get("extended_records", {})),
            obd=ObdSpec.from_toml(raw["obd"]) if "obd" in raw else None,
            maps=MapRegionSpec(**raw["maps"]) if "maps" in raw else None,
        )
    except KeyError as err:
        raise VehicleFileError(f"{where}: missing key {err}") from err
    except (TypeError, ValueError, ObdSpecError) as err:
        if isinstance(err, VehicleFileError):
            raise
        raise VehicleFileError(f"{where}: {err}") from err


def parse_vehicle(text: str) -> VehicleSpec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise VehicleFileError(f"not valid TOML: {err}") from err
    try:
        return VehicleSpec(
            vin=raw["vin"],
            model=raw.get("model", ""),
            eid=bytes.fromhex(raw["eid"]),
            gid=bytes.fromhex(raw["gid"]),
            gateway_address=raw["gateway_address"],
            battery_voltage=float(raw.get("battery_voltage", 12.6)),
            mileage_km=int(raw.get("mileage_km", 0)),
            enet=tuple(raw.get("enet", ("doip", "hsfz"))),
            ecus=tuple(_ecu_from(e) for e in raw.get("ecu", [])),
        )
    except KeyError as err:
        raise VehicleFileError(f"missing key {err}") from err
    except (TypeError, ValueError) as err:
        if isinstance(err, VehicleFileError):
            raise
        raise VehicleFileError(str(err)) from err


def load_vehicle(name_or_path: str = "g30") -> VehicleSpec:
    """A built-in vehicle by name (``g30``, ``f30``) or a vehicle file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            return parse_vehicle(path.read_text())
        except OSError as err:
            raise VehicleFileError(f"cannot read vehicle file {path}: {err}") from err
    builtin = resources.files("firmware_py.sim") / "vehicles" / f"{name_or_path}.toml"
    if not builtin.is_file():
        raise VehicleFileError(
            f"no built-in vehicle {name_or_path!r} (try g30 or f30, or a path to a .toml file)"
        )
    return parse_vehicle(builtin.read_text())
