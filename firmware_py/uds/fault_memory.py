"""Fault memory: read (with decoded status bits, snapshot and extended data) and clear, for
one ECU or all. An ECU that fails does not stop the others: its error is in its result."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import udsoncan

from firmware_py.config import UdsConfig
from firmware_py.errors import EcuError, TransportError, UnknownTargetError, VciError
from firmware_py.uds.catalog import EcuInfo
from firmware_py.uds.dids import did_name
from firmware_py.uds.vehicle import PROBE_TIMING, VehicleSession

#: ISO 14229-1 D.2 status bits, in bit order, with udsoncan's attribute names
STATUS_BITS = (
    ("test_failed", "test failed"),
    ("test_failed_this_operation_cycle", "failed this operation cycle"),
    ("pending", "pending"),
    ("confirmed", "confirmed"),
    ("test_not_completed_since_last_clear", "not completed since clear"),
    ("test_failed_since_last_clear", "failed since clear"),
    ("test_not_completed_this_operation_cycle", "not completed this cycle"),
    ("warning_indicator_requested", "warning lamp"),
)
DEFAULT_STATUS_MASK = (
    0xFF  # every stored DTC; FS_LESEN-style readers use 0x0C (pending | confirmed)
)
EXTENDED_NAMES = {0x01: "occurrence_counter", 0x02: "aging_counter"}


@functools.cache
def _texts() -> dict[int, str]:
    raw = tomllib.loads((resources.files("firmware_py.uds") / "dtc_texts_bmw.toml").read_text())
    return {int(k, 0): str(v) for k, v in raw.items()}


def dtc_text(dtc: int) -> str:
    return _texts().get(dtc, "no text known")


def dtc_code(dtc: int) -> str:
    """SAE J2012 display form of the 2 high bytes (P/C/B/U + 4 digits) and the failure type."""
    high = dtc >> 8
    letter = "PCBU"[(high >> 14) & 0x3]
    return f"{letter}{(high >> 12) & 0x3}{(high >> 8) & 0xF:X}{(high >> 4) & 0xF:X}{high & 0xF:X}-{dtc & 0xFF:02X}"


@dataclass
class FaultEntry:
    dtc: int
    status: int
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    extended: dict[str, int] = field(default_factory=dict)

    @property
    def status_names(self) -> list[str]:
        return [text for i, (_, text) in enumerate(STATUS_BITS) if self.status & (1 << i)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": f"{self.dtc:06X}",
            "text": dtc_text(self.dtc),
            "code": dtc_code(self.dtc),
            "status": self.status,
            "status_names": self.status_names,
            "snapshots": self.snapshots,
            "extended": self.extended,
        }


@dataclass
class EcuFaults:
    name: str
    address: int
    dtcs: list[FaultEntry] = field(default_factory=list)
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "dtcs": [d.to_dict() for d in self.dtcs],
            "error": self.error,
        }


def read_ecu_faults(
    vehicle: VehicleSession,
    info: EcuInfo,
    *,
    status_mask: int = DEFAULT_STATUS_MASK,
    details: bool = True,
    timing: UdsConfig | None = None,
) -> EcuFaults:
    result = EcuFaults(info.name, info.address)
    session = vehicle.ecu(info, timing=timing)
    for dtc in session.dtcs_by_status_mask(status_mask):
        entry = FaultEntry(dtc.id, dtc.status.get_byte_as_int())
        if details:
            snap = session.dtc_snapshots(dtc.id)
            records: dict[int, dict[str, Any]] = {}
            for record in snap.snapshots if snap else []:
                if not isinstance(record, udsoncan.Dtc.Snapshot):
                    continue
                number, did = int(record.record_number or 0), int(record.did or 0)
                records.setdefault(number, {"record": number})[did_name(did)] = record.data
            entry.snapshots = list(records.values())
            ext = session.dtc_extended_data(dtc.id)
            for ext_record in ext.extended_data if ext else []:
                number = int(ext_record.record_number or 0)
                name = EXTENDED_NAMES.get(number, f"record_{number:02X}")
                entry.extended[name] = ext_record.raw_data[0] if ext_record.raw_data else 0
        result.dtcs.append(entry)
    return result


def read_fault_memory(
    vehicle: VehicleSession,
    ecus: list[EcuInfo] | None = None,
    *,
    status_mask: int = DEFAULT_STATUS_MASK,
    details: bool = True,
) -> list[EcuFaults]:
    """Fault memory of the given ECUs, or of every catalogued ECU. Reading all, an ECU the DoIP
    gateway does not know is left out; one that does not answer is reported with its error (on
    CAN that is also how an ECU that is not fitted shows), with a short P2 so that it costs little."""
    out = []
    timing = PROBE_TIMING if ecus is None else None
    for info in ecus if ecus is not None else vehicle.catalog.ecus:
        try:
            out.append(
                read_ecu_faults(
                    vehicle, info, status_mask=status_mask, details=details, timing=timing
                )
            )
        except UnknownTargetError as err:
            if ecus is not None:
                out.append(EcuFaults(info.name, info.address, error=err.to_dict()))
        except (EcuError, TransportError) as err:
            out.append(EcuFaults(info.name, info.address, error=err.to_dict()))
    return out


def clear_fault_memory(
    vehicle: VehicleSession, ecus: list[EcuInfo] | None = None, *, group: int = 0xFFFFFF
) -> list[dict[str, Any]]:
    """Clear (0x14) the fault memory of the given ECUs or every catalogued one; same rules as
    :func:`read_fault_memory` for absent ECUs."""
    results = []
    timing = PROBE_TIMING if ecus is None else None
    for info in ecus if ecus is not None else vehicle.catalog.ecus:
        try:
            vehicle.ecu(info, timing=timing).clear_dtc(group)
            results.append(
                {"name": info.name, "address": info.address, "cleared": True, "error": None}
            )
        except UnknownTargetError as err:
            if ecus is not None:
                results.append(
                    {
                        "name": info.name,
                        "address": info.address,
                        "cleared": False,
                        "error": err.to_dict(),
                    }
                )
        except VciError as err:
            results.append(
                {
                    "name": info.name,
                    "address": info.address,
                    "cleared": False,
                    "error": err.to_dict(),
                }
            )
    return results


__all__ = ["EcuFaults", "FaultEntry", "clear_fault_memory", "dtc_code", "read_fault_memory"]
