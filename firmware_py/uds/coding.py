"""Coding: named parameters at byte/bit positions of an ECU's coding DID, declared as data
(``coding_bmw.toml``) and handled by one engine: decode, change, write in the extended session
with security access, read back and verify."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from firmware_py.errors import ConfigError, FlashError, VciError
from firmware_py.i18n import N_, texts_of
from firmware_py.uds.ecu import EcuSession


class CodingError(VciError):
    code = "coding_failed"


@dataclass(frozen=True)
class CodingParam:
    name: str
    byte: int
    bit: int
    width: int
    values: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    """the parameter's name per language ({"en": .., "de": ..}) for the tablet"""
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """each value name's text per language for the tablet (the data file's ``[value_labels]``)"""

    def __post_init__(self) -> None:
        if not (
            0 <= self.bit <= 7
            and 1 <= self.width <= 8
            and self.bit + self.width <= 8
            and self.byte >= 0
        ):
            raise ConfigError(
                N_("coding parameter {name}: bits {bit}+{width} do not fit in a byte"),
                values={"name": self.name, "bit": self.bit, "width": self.width},
            )
        if any(not 0 <= v < (1 << self.width) for v in self.values.values()):
            raise ConfigError(
                N_("coding parameter {name}: a value does not fit in {width} bit(s)"),
                values={"name": self.name, "width": self.width},
            )

    def get(self, data: bytes) -> int:
        return (data[self.byte] >> self.bit) & ((1 << self.width) - 1)

    def label(self, raw: int) -> str | int:
        for name, value in self.values.items():
            if value == raw:
                return name
        return raw

    def parse(self, text: str | int) -> int:
        if isinstance(text, int):
            raw = text
        elif text in self.values:
            raw = self.values[text]
        else:
            try:
                raw = int(text, 0)
            except ValueError:
                names = ", ".join(self.values) or f"0..{(1 << self.width) - 1}"
                raise CodingError(
                    N_("{name} cannot be {text}"),
                    values={"name": self.name, "text": repr(text)},
                    hint=N_("Use one of: {names}"),
                    hint_values={"names": names},
                ) from None
        if not 0 <= raw < (1 << self.width):
            raise CodingError(
                N_("{name} must be 0..{value}, not {raw}"),
                values={"name": self.name, "value": (1 << self.width) - 1, "raw": raw},
            )
        return raw

    def set(self, data: bytearray, raw: int) -> None:
        mask = ((1 << self.width) - 1) << self.bit
        data[self.byte] = (data[self.byte] & ~mask) | (raw << self.bit)


@dataclass(frozen=True)
class CodingDescription:
    ecu: str
    did: int
    length: int
    params: tuple[CodingParam, ...]

    def __post_init__(self) -> None:
        for p in self.params:
            if p.byte >= self.length:
                raise ConfigError(
                    N_("coding of {ecu}: {name} lies outside the {length} bytes"),
                    values={"ecu": self.ecu, "name": p.name, "length": self.length},
                )

    def param(self, name: str) -> CodingParam:
        for p in self.params:
            if p.name == name:
                return p
        raise CodingError(
            N_("{ecu} has no coding parameter {name}"),
            values={"ecu": self.ecu, "name": repr(name)},
            hint=N_("Known: {names}"),
            hint_values={"names": ", ".join(p.name for p in self.params)},
        )

    def decode(self, data: bytes) -> dict[str, str | int]:
        if len(data) != self.length:
            raise CodingError(
                N_("{ecu} sent {n} bytes of coding, expected {length}"),
                values={"ecu": self.ecu, "n": len(data), "length": self.length},
            )
        return {p.name: p.label(p.get(data)) for p in self.params}

    def encode(self, data: bytes, changes: dict[str, Any]) -> bytes:
        out = bytearray(data)
        for name, value in changes.items():
            param = self.param(name)
            param.set(out, param.parse(value))
        return bytes(out)


def load_coding_descriptions() -> dict[str, CodingDescription]:
    raw = tomllib.loads((resources.files("firmware_py.uds") / "coding_bmw.toml").read_text())
    shown = {name: texts_of(text) for name, text in raw.get("value_labels", {}).items()}
    out = {}
    for e in raw.get("ecu", []):
        params = tuple(
            CodingParam(
                p["name"],
                p["byte"],
                p["bit"],
                p["width"],
                dict(p.get("values", {})),
                dict(p.get("labels", {})),
                {v: shown[v] for v in p.get("values", {}) if v in shown},
            )
            for p in e.get("param", [])
        )
        out[e["name"]] = CodingDescription(e["name"], int(e["did"]), int(e["length"]), params)
    return out


def read_coding(session: EcuSession, desc: CodingDescription) -> bytes:
    return session.read_did_raw(desc.did)


def write_coding(
    session: EcuSession, desc: CodingDescription, data: bytes, *, security_level: int = 0x01
) -> None:
    """Write coding data in the extended session with security access, read it back and verify."""
    if len(data) != desc.length:
        raise CodingError(
            N_("coding of {ecu} has {length} bytes, not {n}"),
            values={"ecu": desc.ecu, "length": desc.length, "n": len(data)},
        )
    with session.in_session("extended"):
        session.security_access(security_level)
        session.raw(bytes([0x2E, desc.did >> 8, desc.did & 0xFF]) + data)
        back = read_coding(session, desc)
        if back != data:
            raise FlashError(
                N_("{ecu} did not keep the coding: wrote {value}, reads {value2}"),
                values={"ecu": desc.ecu, "value": data.hex(), "value2": back.hex()},
                hint=N_("Restore the previous coding: vci coding restore"),
            )
