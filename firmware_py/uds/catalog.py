"""The client's catalogue of ECUs (name, diagnostic address, CAN identifiers, security
algorithm), declared as data in ``catalog_bmw.toml`` and validated on load.

The box works on a real car from this catalogue alone: it never reads the simulator's vehicle
file. ECUs in the catalogue that a car does not have simply do not answer.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from firmware_py.errors import ConfigError
from firmware_py.i18n import N_, texts_of


@dataclass(frozen=True)
class EcuInfo:
    name: str
    description: str
    address: int
    can_ids: tuple[int, int] | None = None
    security: str | None = None
    programmable: bool = False
    #: the description in every language the catalogue has (English always)
    descriptions: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not (self.name.isascii() and self.name.isalnum() and self.name.isupper()):
            raise ConfigError(
                N_("catalogue: ECU name {name} must be upper-case letters/digits"),
                values={"name": repr(self.name)},
            )
        if not 0 < self.address <= 0xFF:
            raise ConfigError(
                N_("catalogue: ECU {name} address 0x{address} is not 0x01..0xFF"),
                values={"name": self.name, "address": format(self.address, "X")},
            )
        if self.can_ids is not None and (
            len(self.can_ids) != 2 or not all(0 < i <= 0x7FF for i in self.can_ids)
        ):
            raise ConfigError(
                N_("catalogue: ECU {name} can_ids must be two 11-bit identifiers"),
                values={"name": self.name},
            )

    @property
    def label(self) -> str:
        return f"{self.name} (0x{self.address:02X})"


@dataclass(frozen=True)
class Catalog:
    ecus: tuple[EcuInfo, ...]

    def __post_init__(self) -> None:
        for attr in ("name", "address"):
            values = [getattr(e, attr) for e in self.ecus]
            if len(values) != len(set(values)):
                raise ConfigError(N_("catalogue: duplicate ECU {attr}"), values={"attr": attr})

    def find(self, name_or_address: str | int) -> EcuInfo:
        """An ECU by name (``DME``, any case) or address (``0x12``, ``18``); an address that is
        not in the catalogue gives an unnamed entry so raw work on unknown ECUs stays possible."""
        if isinstance(name_or_address, int):
            address: int | None = name_or_address
        else:
            text = name_or_address.strip()
            for e in self.ecus:
                if e.name == text.upper():
                    return e
            try:
                address = int(text, 0)
            except ValueError:
                address = None
        if address is None or not 0 < address <= 0xFF:
            names = ", ".join(e.name for e in self.ecus)
            raise ConfigError(
                N_("unknown ECU {name_or_address}"),
                values={"name_or_address": repr(name_or_address)},
                hint=N_("Use a name ({names}) or an address such as 0x12"),
                hint_values={"names": names},
            )
        for e in self.ecus:
            if e.address == address:
                return e
        return EcuInfo(f"ECU{address:02X}", "not in the catalogue", address)

    def normal_ids(self) -> dict[int, tuple[int, int]]:
        return {e.address: e.can_ids for e in self.ecus if e.can_ids}


def load_catalog(path: Path | None = None) -> Catalog:
    text = (
        path.read_text()
        if path
        else (resources.files("firmware_py.uds") / "catalog_bmw.toml").read_text()
    )
    try:
        raw = tomllib.loads(text)
        return Catalog(
            tuple(
                EcuInfo(
                    name=e["name"],
                    description=texts_of(e.get("description", "")).get("en", ""),
                    descriptions=texts_of(e.get("description", "")),
                    address=int(e["address"]),
                    can_ids=tuple(e["can_ids"]) if "can_ids" in e else None,  # type: ignore[arg-type]
                    security=e.get("security"),
                    programmable=bool(e.get("programmable", False)),
                )
                for e in raw.get("ecu", [])
            )
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(N_("ECU catalogue is invalid: {err}"), values={"err": repr(err)}) from err
