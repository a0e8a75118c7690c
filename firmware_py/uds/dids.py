"""Data identifiers the box knows, with udsoncan codecs (udsoncan does the 0x22/0x2E framing).

Names follow the workshop's words; values decode to plain Python types for display and JSON.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from udsoncan import DidCodec

from firmware_py.errors import ConfigError, UnexpectedResponseError
from firmware_py.i18n import N_

PROCESS_CLASSES = {
    0x01: "HWEL",
    0x02: "HWAP",
    0x05: "BTLD",
    0x06: "SWFL",
    0x08: "CAFD",
    0x0D: "FLSL",
}


class AsciiField(DidCodec):
    def __init__(self, length: int, strip: bool = True) -> None:
        self.length, self.strip = length, strip

    def encode(self, value: Any) -> bytes:
        data = str(value).encode("ascii")
        if len(data) > self.length:
            raise ValueError(f"text longer than {self.length} characters")
        return data.ljust(self.length, b" ")

    def decode(self, data: bytes) -> str:
        text = bytes(data).decode("ascii", "replace")
        return text.strip() if self.strip else text

    def __len__(self) -> int:
        return self.length


class VersionField(DidCodec):
    def encode(self, value: Any) -> bytes:
        return bytes(int(p) for p in str(value).split("."))

    def decode(self, data: bytes) -> str:
        return ".".join(str(b) for b in data)

    def __len__(self) -> int:
        return 3


class Unsigned(DidCodec):
    """Big-endian unsigned integer with a scale and an offset: value = raw * scale + offset."""

    def __init__(self, size: int, scale: float = 1.0, offset: float = 0.0, unit: str = "") -> None:
        self.size, self.scale, self.offset, self.unit = size, scale, offset, unit

    def encode(self, value: Any) -> bytes:
        return int(round((float(value) - self.offset) / self.scale)).to_bytes(self.size, "big")

    def decode(self, data: bytes) -> float | int:
        raw = int.from_bytes(data, "big")
        value = raw * self.scale + self.offset
        return (
            int(value) if self.scale == 1 and self.offset == int(self.offset) else round(value, 3)
        )

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True)
class SvkEntry:
    process_class: str
    sgbm_id: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return {
            "process_class": self.process_class,
            "sgbm_id": self.sgbm_id,
            "version": self.version,
        }


def decode_svk(data: bytes) -> list[SvkEntry]:
    """BMW software list (SVK, DID F101): count, then 8-byte entries (process class, SGBM id,
    version major.minor.patch)."""
    if not data:
        raise UnexpectedResponseError(N_("empty SVK (F101)"))
    count = data[0]
    if len(data) != 1 + 8 * count:
        raise UnexpectedResponseError(
            N_("SVK (F101) announces {count} entries but has {value} bytes"),
            values={"count": count, "value": len(data) - 1},
        )
    out = []
    for i in range(count):
        pc, sgbm, a, b, c = struct.unpack_from(">BIBBB", data, 1 + 8 * i)
        out.append(
            SvkEntry(
                PROCESS_CLASSES.get(pc, f"0x{pc:02X}"), f"{sgbm:08X}", f"{a:03d}.{b:03d}.{c:03d}"
            )
        )
    return out


class SvkField(DidCodec):
    def encode(self, value: Any) -> bytes:
        raise NotImplementedError("the SVK is read-only")

    def decode(self, data: bytes) -> list[dict[str, str]]:
        return [e.to_dict() for e in decode_svk(bytes(data))]

    def __len__(self) -> int:
        raise DidCodec.ReadAllRemainingData


@dataclass(frozen=True)
class Did:
    did: int
    name: str
    codec: DidCodec


DIDS: dict[int, Did] = {
    d.did: d
    for d in (
        Did(0xF190, "vin", AsciiField(17)),
        Did(0xF187, "part_number", AsciiField(7)),
        Did(0xF191, "hw_number", AsciiField(7)),
        Did(0xF189, "sw_version", AsciiField(16)),
        Did(0xF18C, "serial", AsciiField(10)),
        Did(0xF150, "hw_version", VersionField()),
        Did(0xF101, "svk", SvkField()),
        Did(0x4001, "engine_speed_rpm", Unsigned(2, unit="rpm")),
        Did(0x4002, "coolant_temperature_c", Unsigned(1, offset=-40, unit="°C")),
        Did(0x4003, "battery_voltage_v", Unsigned(2, scale=0.001, unit="V")),
        Did(0xDAD0, "supply_voltage_v", Unsigned(2, scale=0.001, unit="V")),
        Did(0x1700, "mileage_km", Unsigned(4, unit="km")),
        Did(0x1701, "voltage_v", Unsigned(2, scale=0.001, unit="V")),
    )
}


class DidValues(dict[int, Any]):
    """Decoded values of a ReadDataByIdentifier, by DID, and the requested DIDs the ECU left out
    of its answer (ISO 14229-1 lets an ECU answer a multi-DID request with those it has)."""

    def __init__(self, values: dict[int, Any], missing: tuple[int, ...] = ()) -> None:
        super().__init__(values)
        self.missing = missing


def did_not_answered(ecu: str, did: int) -> dict[str, object]:
    """The error entry (as :meth:`VciError.to_dict` shapes it) of a DID an ECU left out of its
    answer to a multi-DID request."""
    return {
        "error": "did_not_answered",
        "message": f"ECU {ecu} left DID {did:04X} out of its answer: it does not have it here",
        "hint": "Read that DID alone to see the ECU's reason (e.g. another session is needed)",
    }


def did_codecs() -> dict[int, DidCodec]:
    return {d.did: d.codec for d in DIDS.values()}


def did_name(did: int) -> str:
    d = DIDS.get(did)
    return d.name if d else f"did_{did:04X}"


def parse_did(text: str) -> int:
    """``F190``, ``0xF190`` or a known name (``vin``) -> 0xF190; else :class:`ConfigError` (a
    tablet's or a portal user's job names the DIDs: the refusal is a template)."""
    for d in DIDS.values():
        if d.name == text.lower():
            return d.did
    try:
        value = int(text, 16) if not text.lower().startswith("0x") else int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= 0xFFFF:
        raise ConfigError(
            N_("{did} is not a DID (four hex digits such as F190, or a name such as vin)"),
            values={"did": repr(text)},
        )
    return value
