"""Vehicle identification: the VIN and every ECU that answers, with its part number, hardware
and software versions and software list (SVK). The query is declared as data (which DIDs, in
which requests) and run by one engine for every ECU."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from firmware_py.errors import EcuError, TransportError, UnknownTargetError, VciError
from firmware_py.uds.catalog import EcuInfo
from firmware_py.uds.dids import did_name
from firmware_py.uds.vehicle import PROBE_TIMING, VehicleSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentQuery:
    """DIDs read from every ECU, in requests of at most ``per_request`` DIDs (small ECUs refuse
    long multi-DID requests)."""

    dids: tuple[int, ...]
    per_request: int = 4

    def __post_init__(self) -> None:
        if not self.dids or not all(0 <= d <= 0xFFFF for d in self.dids) or self.per_request < 1:
            raise ValueError("an identification query needs DIDs and a positive batch size")

    def batches(self) -> list[tuple[int, ...]]:
        return [
            self.dids[i : i + self.per_request] for i in range(0, len(self.dids), self.per_request)
        ]


IDENT_QUERY = IdentQuery((0xF187, 0xF191, 0xF150, 0xF189, 0xF18C, 0xF101))


@dataclass
class EcuIdentity:
    name: str
    address: int
    description: str
    present: bool
    values: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    descriptions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "description": self.description,
            "descriptions": self.descriptions or {"en": self.description},
            "present": self.present,
            **self.values,
            "error": self.error,
        }


WMI = {"WBA": "BMW", "WBS": "BMW M", "WBY": "BMW i", "WMW": "MINI", "WBX": "BMW SUV (Spartanburg)"}


def model_from_vin(vin: str | None) -> str | None:
    """The model by the VIN's type code (positions 4-7) from the box's own table."""
    if not vin or len(vin) != 17:
        return None
    raw = tomllib.loads(
        (resources.files("firmware_py.uds") / "vehicle_models_bmw.toml").read_text()
    )
    model = raw.get("type", {}).get(vin[3:7])
    make = WMI.get(vin[:3])
    if model:
        return f"{make or vin[:3]} {model}"
    return make


@dataclass
class VehicleIdentity:
    vin: str | None
    link: str
    ecus: list[EcuIdentity]

    def to_dict(self) -> dict[str, Any]:
        return {
            "vin": self.vin,
            "model": model_from_vin(self.vin),
            "link": self.link,
            "ecus": [e.to_dict() for e in self.ecus],
        }


def identify_ecu(
    vehicle: VehicleSession, info: EcuInfo, query: IdentQuery = IDENT_QUERY
) -> EcuIdentity:
    result = EcuIdentity(
        info.name, info.address, info.description, present=False,
        descriptions=dict(info.descriptions),
    )  # fmt: skip
    try:
        session = vehicle.ecu(info, timing=PROBE_TIMING)
        first = True
        for batch in query.batches():
            try:
                values = session.read_dids(*batch)
            except EcuError:
                if first:
                    raise
                continue
            first = False
            # a DID the ECU left out of its answer (it does not have it) shows as None
            result.values.update({did_name(did): values.get(did) for did in batch})
        result.present = True
    except UnknownTargetError:
        pass  # the DoIP gateway knows no such ECU: not fitted
    except (EcuError, TransportError) as err:
        # no answer at all: not fitted (or silent); anything else: present but in trouble
        result.present = err.code != "ecu_not_responding" or bool(result.values)
        if result.present:
            result.error = err.to_dict()
    return result


def identify_vehicle(
    vehicle: VehicleSession, *, only: list[EcuInfo] | None = None, query: IdentQuery = IDENT_QUERY
) -> VehicleIdentity:
    """VIN from the gateway (or the first ECU that gives one) and every catalogued ECU."""
    ecus = only or list(vehicle.catalog.ecus)
    vin: str | None = None
    identities = []
    for info in ecus:
        identity = identify_ecu(vehicle, info, query)
        identities.append(identity)
        if vin is None and identity.present:
            try:
                vin = str(vehicle.ecu(info, timing=PROBE_TIMING).read_dids(0xF190)[0xF190])
            except VciError as err:
                log.info("no VIN from %s: %s", info.name, err)
    return VehicleIdentity(vin, vehicle.link.description, identities)
