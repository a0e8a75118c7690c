"""Fault memory: read (with decoded status bits, snapshot and extended data) and clear, for
one ECU or all. An ECU that fails does not stop the others: its error is in its result.

Real ECUs differ: one that keeps no snapshot or extended data (NRC 0x12 / 0x31 to 0x19 04 / 06)
still lists its DTCs, with a note; records the box cannot decode are kept raw
(:mod:`.dtc_records`); an implausibly large answer is cut to :data:`MAX_DTCS` with a warning."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from firmware_py.config import UdsConfig
from firmware_py.errors import (
    EcuError,
    NegativeResponseError,
    TransportError,
    UnknownTargetError,
    VciError,
)
from firmware_py.i18n import LANGUAGES, N_, Language, Text, language, texts_of
from firmware_py.uds.catalog import EcuInfo
from firmware_py.uds.dtc_records import decode_extended, decode_snapshots
from firmware_py.uds.ecu import EcuSession
from firmware_py.uds.vehicle import PROBE_TIMING, VehicleSession

#: ISO 14229-1 D.2 status bits, in bit order, with udsoncan's attribute names
STATUS_BITS = (
    ("test_failed", N_("test failed")),
    ("test_failed_this_operation_cycle", N_("failed this operation cycle")),
    ("pending", N_("pending")),
    ("confirmed", N_("confirmed")),
    ("test_not_completed_since_last_clear", N_("not completed since clear")),
    ("test_failed_since_last_clear", N_("failed since clear")),
    ("test_not_completed_this_operation_cycle", N_("not completed this cycle")),
    ("warning_indicator_requested", N_("warning lamp")),
)
DEFAULT_STATUS_MASK = (
    0xFF  # every stored DTC; FS_LESEN-style readers use 0x0C (pending | confirmed)
)
#: the most DTCs kept from one ECU's answer: as many as one ISO-TP message on classic CAN carries
#: (4095 bytes); real fault memories hold tens. An answer with more (DoIP has no such limit) is
#: cut here with a warning, so that it costs its bytes and not an object per DTC, and the DTCs
#: that fit are still shown: the technician sees the ECU's faults and that it misbehaves.
MAX_DTCS = 1023
#: NRCs by which an ECU says it offers no snapshot / extended data at all (not just for one DTC)
NOT_OFFERED = {0x11, 0x12, 0x7E, 0x7F}


NO_TEXT = N_("no text known")
"""what a DTC without a text in the data file shows (in each language, from the catalogue)"""


@functools.cache
def _texts() -> dict[int, dict[str, str]]:
    """The data file's texts: ``0x12A100 = "text"`` (English) or ``{en = "...", de = "..."}``."""
    raw = tomllib.loads((resources.files("firmware_py.uds") / "dtc_texts_bmw.toml").read_text())
    return {int(k, 0): texts_of(v) for k, v in raw.items()}


@functools.cache
def _no_text() -> dict[str, str]:
    return {code: language(code).gettext(NO_TEXT) for code in LANGUAGES}


def dtc_texts(dtc: int) -> dict[str, str]:
    """The DTC's text in every language the data has (English always)."""
    return _texts().get(dtc) or _no_text()


def dtc_text(dtc: int) -> str:
    return dtc_texts(dtc).get("en") or NO_TEXT


def dtc_code(dtc: int) -> str:
    """SAE J2012 display form of the 2 high bytes (P/C/B/U + 4 digits) and the failure type."""
    high = dtc >> 8
    letter = "PCBU"[(high >> 14) & 0x3]
    return f"{letter}{(high >> 12) & 0x3}{(high >> 8) & 0xF:X}{(high >> 4) & 0xF:X}{high & 0xF:X}-{dtc & 0xFF:02X}"


HEX_DTC = re.compile(r"^(?:0X)?([0-9A-F]{6})$")
SAE_DTC = re.compile(r"^([PCBU])([0-3])([0-9A-F]{3})-?([0-9A-F]{2})$")


def normal_dtc(text: str) -> str | None:
    """The 3-byte DTC as 6 hex digits (``12A100``) for ``12A100``, ``0x12A100`` or the display
    form ``P12A1-00`` (the inverse of :func:`dtc_code`); None for anything else."""
    t = text.strip().upper()
    if m := HEX_DTC.match(t):
        return m.group(1)
    if m := SAE_DTC.match(t):
        high = ("PCBU".index(m.group(1)) << 14) | (int(m.group(2)) << 12) | int(m.group(3), 16)
        return f"{high:04X}{m.group(4)}"
    return None


@dataclass
class FaultEntry:
    dtc: int
    status: int
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    extended: dict[str, Any] = field(default_factory=dict)
    snapshots_note: Text | None = None
    """why there are no snapshots (the ECU keeps none, or refused them)"""
    extended_note: Text | None = None

    @property
    def status_names(self) -> list[str]:
        return [text for i, (_, text) in enumerate(STATUS_BITS) if self.status & (1 << i)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": f"{self.dtc:06X}",
            "text": dtc_text(self.dtc),
            "texts": dtc_texts(self.dtc),  # the tablet and the reports pick the reader's
            "code": dtc_code(self.dtc),
            "status": self.status,
            "status_names": self.status_names,
            "snapshots": self.snapshots,
            "extended": self.extended,
            # the English as before (reports, API clients); the tablet translates the _i18n form
            "snapshots_note": _str(self.snapshots_note),
            "extended_note": _str(self.extended_note),
            "snapshots_note_i18n": _json(self.snapshots_note),
            "extended_note_i18n": _json(self.extended_note),
        }


@dataclass
class EcuFaults:
    name: str
    address: int
    dtcs: list[FaultEntry] = field(default_factory=list)
    error: dict[str, Any] | None = None
    reported: int = 0
    """how many DTCs the ECU sent (more than ``len(dtcs)`` when its answer was cut)"""
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "dtcs": [d.to_dict() for d in self.dtcs],
            "reported": self.reported,
            "warning": self.warning,
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
    dtcs, result.reported = session.dtcs_by_status_mask(status_mask, MAX_DTCS)
    if result.reported > len(dtcs):
        result.warning = (
            f"{info.name} reported {result.reported} DTCs, far more than a fault memory holds; "
            f"the first {len(dtcs)} are shown, without details. Read it again after clearing it, "
            "and if it persists the ECU itself is faulty"
        )
        details = False
    offered: dict[int, Text | None] = {
        0x04: None,
        0x06: None,
    }  # sub-function -> why not, once the ECU said it has none
    for dtc in dtcs:
        entry = FaultEntry(dtc.id, dtc.status.get_byte_as_int())
        if details:
            data, entry.snapshots_note = _records(session, 0x04, dtc.id, offered)
            entry.snapshots = decode_snapshots(data)
            data, entry.extended_note = _records(session, 0x06, dtc.id, offered)
            entry.extended = decode_extended(data)
        result.dtcs.append(entry)
    return result


def note_text(dtc: dict[str, Any], key: str, lang: Language, default: str = "-") -> str:
    """Why a read DTC has no snapshot or extended data (``key``: ``snapshots_note`` or
    ``extended_note``, as :meth:`FaultEntry.to_dict` wrote them) in ``lang``: its template where
    the box sent one, else its English, else ``default``."""
    template = dtc.get(f"{key}_i18n")
    if template:
        return lang.text(Text.from_json(template))
    return str(dtc.get(key) or default)


def _str(text: Text | None) -> str | None:
    return None if text is None else str(text)


def _json(text: Text | None) -> dict[str, object] | None:
    return None if text is None else text.to_json()


def _records(
    session: EcuSession, subfunction: int, dtc: int, offered: dict[int, Text | None]
) -> tuple[bytes, Text | None]:
    """A DTC's snapshot or extended data bytes, or why there are none: an NRC leaves the DTC
    listed (an ECU need not keep either, ISO 14229-1), and one that says the ECU has no such
    records at all spares asking for the next DTCs."""
    if offered[subfunction]:
        return b"", offered[subfunction]
    try:
        return session.dtc_records(subfunction, dtc), None
    except NegativeResponseError as err:
        if err.nrc in NOT_OFFERED:
            offered[subfunction] = Text(
                N_("not supported by this ECU ({nrc_name})"), {"nrc_name": err.nrc_name}
            )
            return b"", offered[subfunction]
        return b"", Text(
            N_("not available: the ECU answered {nrc_name} (NRC {nrc})"),
            {"nrc_name": err.nrc_name, "nrc": f"0x{err.nrc:02X}"},
        )


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
