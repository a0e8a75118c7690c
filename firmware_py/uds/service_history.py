"""The electronic service booklet the instrument cluster keeps: read its entries, append one.

The DIDs, the session and the record layout are data (``service_history_bmw.toml``); this engine
decodes the fixed-size records with the layout and writes a new one with WriteDataByIdentifier in
the session the cluster needs, then reads the booklet back: an entry the cluster acknowledged but
does not show is reported, not assumed. Each entry has a stable id (VIN, the cluster's index and a
hash of its record), so whoever sees it twice - a resend after a power cut - knows it is one.
"""

from __future__ import annotations

import hashlib
import struct
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from firmware_py.errors import ConfigError, UnexpectedResponseError
from firmware_py.i18n import N_
from firmware_py.uds.service_functions import ServiceDescription, ServiceFunctionError

if TYPE_CHECKING:
    from firmware_py.uds.ecu import EcuSession

_FORMATS = {"u8": "B", "u16": "H", "u32": "I", "items": "H"}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    size: int = 0


@dataclass(frozen=True)
class HistoryDescription:
    ecu: str
    did: int
    append_did: int
    odometer_did: int
    session: str
    slots: int
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        names = {f.name for f in self.fields}
        missing = {"index", "year", "month", "day", "mileage_km", "items"} - names
        if missing:
            raise ConfigError(
                N_("service_history_bmw.toml: the record lacks {value}"),
                values={"value": sorted(missing)},
            )
        for f in self.fields:
            if f.type not in _FORMATS and not (f.type == "ascii" and f.size > 0):
                raise ConfigError(
                    N_("service_history_bmw.toml: field {name} has type {type}"),
                    values={"name": f.name, "type": f.type},
                )

    @property
    def record(self) -> struct.Struct:
        return struct.Struct(
            ">"
            + "".join(f"{f.size}s" if f.type == "ascii" else _FORMATS[f.type] for f in self.fields)
        )

    def text_size(self, name: str) -> int:
        return next((f.size for f in self.fields if f.name == name and f.type == "ascii"), 0)


def load_history_description() -> HistoryDescription:
    raw = tomllib.loads(
        (resources.files("firmware_py.uds") / "service_history_bmw.toml").read_text()
    )
    try:
        h = raw["history"]
        return HistoryDescription(
            ecu=h["ecu"],
            did=int(h["did"]),
            append_did=int(h["append_did"]),
            odometer_did=int(h["odometer_did"]),
            session=str(h["session"]),
            slots=int(h["slots"]),
            fields=tuple(Field(f["name"], f["type"], int(f.get("size", 0))) for f in h["field"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            N_("service_history_bmw.toml: bad or missing {err}"), values={"err": err}
        ) from err


def entry_id(vin: str, index: int, record: bytes) -> str:
    """The entry's stable id: the car, the cluster's index, and its record's hash."""
    return f"{vin}-{index:05d}-{hashlib.sha256(record).hexdigest()[:12]}"


def decode_entry(
    record: bytes, desc: HistoryDescription, service: ServiceDescription, vin: str
) -> dict[str, Any]:
    values = dict(zip((f.name for f in desc.fields), desc.record.unpack(record), strict=True))
    names = {i.id: i.name for i in service.items}
    entry: dict[str, Any] = {}
    for f in desc.fields:
        value = values[f.name]
        if f.type == "ascii":
            value = value.rstrip(b"\0").decode("ascii", "replace")
        elif f.type == "items":
            value = [names.get(n, f"item_{n}") for n in range(1, 17) if value & (1 << (n - 1))]
        entry[f.name] = value
    entry["date"] = f"{entry['year']:04d}-{entry['month']:02d}-{entry['day']:02d}"
    entry["id"] = entry_id(vin, entry["index"], record)
    entry["vin"] = vin
    return entry


def read_history(
    session: EcuSession, desc: HistoryDescription, service: ServiceDescription, vin: str
) -> list[dict[str, Any]]:
    """The entries the cluster keeps, oldest first."""
    data = session.read_did_raw(desc.did)
    size = desc.record.size
    if not data or len(data) != 1 + data[0] * size:
        raise UnexpectedResponseError(
            N_("{name} sent a service booklet of {n} bytes that does not match its count"),
            values={"name": session.name, "n": len(data)},
        )
    return [
        decode_entry(data[1 + n * size : 1 + (n + 1) * size], desc, service, vin)
        for n in range(data[0])
    ]


def read_odometer(session: EcuSession, desc: HistoryDescription) -> int:
    data = session.read_did_raw(desc.odometer_did)
    if len(data) != 4:
        raise UnexpectedResponseError(
            N_("{name} sent an odometer of {n} bytes"),
            values={"name": session.name, "n": len(data)},
        )
    return int(struct.unpack(">I", data)[0])


def encode_entry(
    desc: HistoryDescription,
    service: ServiceDescription,
    *,
    index: int,
    date: tuple[int, int, int],
    mileage_km: int,
    items: list[str],
    workshop: str,
    note: str,
) -> bytes:
    bits = 0
    for name in items:
        bits |= 1 << (service.item(name).id - 1)
    values: dict[str, int | bytes] = {
        "index": index,
        "year": date[0],
        "month": date[1],
        "day": date[2],
        "mileage_km": mileage_km,
        "items": bits,
    }
    for name, text in (("workshop", workshop), ("note", note)):
        size = desc.text_size(name)
        raw = text.encode("ascii", "replace")
        if len(raw) > size:
            raise ServiceFunctionError(
                N_("the {name} has {n} characters; the cluster keeps {size}"),
                values={"name": name, "n": len(raw), "size": size},
                hint=N_("Shorten the {name} to {size} characters"),
                hint_values={"name": name, "size": size},
            )
        values[name] = raw
    return desc.record.pack(
        *(values.get(f.name, b"" if f.type == "ascii" else 0) for f in desc.fields)
    )


def append_entry(
    session: EcuSession,
    desc: HistoryDescription,
    service: ServiceDescription,
    vin: str,
    record: bytes,
) -> dict[str, Any]:
    """Write ``record`` (its index the newest + 1) in the cluster's session, read the booklet
    back and return the entry as the cluster keeps it."""
    with session.in_session(desc.session):
        session.raw(bytes([0x2E, desc.append_did >> 8, desc.append_did & 0xFF]) + record)
    history = read_history(session, desc, service, vin)
    index = struct.unpack_from(">H", record)[0]
    kept = next((e for e in history if e["index"] == index), None)
    if kept is None or kept["id"] != entry_id(vin, index, record):
        raise ServiceFunctionError(
            N_("{name} acknowledged the service entry but does not keep it"),
            values={"name": session.name},
            hint=N_(
                "Read the service history again; if it persists, check the cluster's fault memory"
            ),
        )
    return kept
