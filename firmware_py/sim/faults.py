"""Fault injection for the simulated vehicle, set per run (vehicle file ``[faults]``,
``vci sim --fault``) or at run time (control API, :meth:`SimulatedVehicle.inject`).

Spec strings (``--fault``), comma-free, one fault each::

    delay:DME=0.8                response delay of an ECU, seconds
    silent:DSC                   the ECU does not answer at all
    nrc:DME:0x22=0x22            the ECU answers service 0x22 with NRC 0x22
    pending:DME=5                extra "response pending" frames for slow routines
    pending-forever:DME:0x36     the ECU answers service 0x36 with "response pending" for ever
    dtc-flood:DSC=200000         the ECU stores that many more (made-up) DTCs: a huge 0x19 answer
    truncate:EGS                 positive responses lose their last byte (wrong length)
    reset-after-blocks:DME=100   the ECU resets itself after 100 TransferData blocks
    doip-reset-after=50          the gateway (DoIP and HSFZ) resets the TCP connection after 50
                                 diagnostic messages
    doip-reset-on-transfer       ... or on the next TransferData
    drop-can-frame:0x6F1=3       the CAN face drops the 3rd frame seen on that identifier
    drop-can-rate=0.01           ... or each frame with this probability (seeded: drop-can-seed=7)
    battery=11.8                 supply voltage in volts
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class FaultSpecError(ValueError):
    pass


@dataclass
class EcuFaults:
    delay: float = 0.0
    no_answer: bool = False
    nrc: dict[int, int] = field(default_factory=dict)
    extra_pending: int = 0
    truncate_response: bool = False
    reset_after_blocks: int = 0
    pending_forever: set[int] = field(default_factory=set)
    """SIDs answered with "response pending" for ever"""
    dtc_flood: int = 0
    """made-up confirmed DTCs added to the fault memory's answers"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "delay": self.delay,
            "silent": self.no_answer,
            "nrc": {f"0x{k:02X}": v for k, v in self.nrc.items()},
            "pending": self.extra_pending,
            "truncate": self.truncate_response,
            "reset_after_blocks": self.reset_after_blocks,
            "pending_forever": [f"0x{sid:02X}" for sid in sorted(self.pending_forever)],
            "dtc_flood": self.dtc_flood,
        }


@dataclass
class BusFaults:
    doip_reset_after: int = 0
    doip_reset_on_transfer: bool = False
    drop_can_frame: dict[int, int] = field(default_factory=dict)
    drop_can_rate: float = 0.0
    drop_can_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "doip_reset_after": self.doip_reset_after,
            "doip_reset_on_transfer": self.doip_reset_on_transfer,
            "drop_can_frame": {f"0x{k:03X}": v for k, v in self.drop_can_frame.items()},
            "drop_can_rate": self.drop_can_rate,
            "drop_can_seed": self.drop_can_seed,
        }


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError as err:
        raise FaultSpecError(f"{text!r} is not a number") from err


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError as err:
        raise FaultSpecError(f"{text!r} is not a number") from err


def parse_fault(spec: str) -> dict[str, Any]:
    """One ``--fault`` string -> a dict for :meth:`SimulatedVehicle.inject`."""
    key, _, value = spec.partition("=")
    parts = key.split(":")
    kind = parts[0]
    if kind == "delay" and len(parts) == 2:
        return {"ecu": parts[1], "delay": _float(value)}
    if kind == "silent" and len(parts) == 2:
        return {"ecu": parts[1], "silent": value.lower() not in ("0", "false", "no")}
    if kind == "nrc" and len(parts) == 3:
        return {"ecu": parts[1], "nrc": {parts[2]: _int(value)}}
    if kind == "pending" and len(parts) == 2:
        return {"ecu": parts[1], "pending": _int(value)}
    if kind == "pending-forever" and len(parts) == 3:
        return {"ecu": parts[1], "pending_forever": [parts[2]]}
    if kind == "dtc-flood" and len(parts) == 2:
        return {"ecu": parts[1], "dtc_flood": _int(value)}
    if kind == "truncate" and len(parts) == 2:
        return {"ecu": parts[1], "truncate": True}
    if kind == "reset-after-blocks" and len(parts) == 2:
        return {"ecu": parts[1], "reset_after_blocks": _int(value)}
    if kind == "doip-reset-after":
        return {"doip_reset_after": _int(value)}
    if kind == "doip-reset-on-transfer":
        return {"doip_reset_on_transfer": True}
    if kind == "drop-can-frame" and len(parts) == 2:
        return {"drop_can_frame": {parts[1]: _int(value)}}
    if kind == "drop-can-rate":
        return {"drop_can_rate": _float(value)}
    if kind == "drop-can-seed":
        return {"drop_can_seed": _int(value)}
    if kind == "battery":
        return {"battery": _float(value)}
    raise FaultSpecError(f"unknown fault {spec!r} (see vci sim --help)")
