"""Service functions: Condition Based Service (CBS) status and reset, battery registration.

What each function reads and starts is declared as data (``service_bmw.toml``); this engine
decodes the records, runs the routines in the extended session and reads back to verify, so a
reset that the ECU acknowledged but did not keep is reported, not assumed.
"""

from __future__ import annotations

import struct
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from firmware_py.errors import ConfigError, UnexpectedResponseError, VciError
from firmware_py.i18n import N_, texts_of

if TYPE_CHECKING:  # the description is read without loading udsoncan (vci service --help)
    from firmware_py.uds.ecu import EcuSession

NO_DISTANCE = 0x7FFFFFFF
CBS_RECORD = struct.Struct(">BBib")


class ServiceFunctionError(VciError):
    code = "service_function_failed"


@dataclass(frozen=True)
class CbsItem:
    id: int
    name: str
    text: str
    #: the text in every language the data file has ({en = "...", de = "..."}; English always)
    texts: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ServiceDescription:
    cbs_ecu: str
    cbs_did: int
    cbs_reset_routine: int
    items: tuple[CbsItem, ...]
    battery_ecu: str
    battery_did: int
    battery_routine: int
    min_capacity_ah: int
    max_capacity_ah: int
    technologies: dict[str, int]

    def item(self, name: str) -> CbsItem:
        for item in self.items:
            if item.name == name:
                return item
        raise ServiceFunctionError(
            N_("no service item {name}"),
            values={"name": repr(name)},
            hint=N_("Known: {names}"),
            hint_values={"names": ", ".join(i.name for i in self.items)},
        )

    def technology_name(self, raw: int) -> str:
        return next((n for n, v in self.technologies.items() if v == raw), f"unknown ({raw})")


def load_service_description() -> ServiceDescription:
    raw = tomllib.loads((resources.files("firmware_py.uds") / "service_bmw.toml").read_text())
    try:
        cbs, battery = raw["cbs"], raw["battery"]
        return ServiceDescription(
            cbs_ecu=cbs["ecu"],
            cbs_did=int(cbs["did"]),
            cbs_reset_routine=int(cbs["reset_routine"]),
            items=tuple(
                CbsItem(int(i["id"]), i["name"], texts_of(i["text"])["en"], texts_of(i["text"]))
                for i in cbs["item"]
            ),
            battery_ecu=battery["ecu"],
            battery_did=int(battery["did"]),
            battery_routine=int(battery["register_routine"]),
            min_capacity_ah=int(battery["min_capacity_ah"]),
            max_capacity_ah=int(battery["max_capacity_ah"]),
            technologies={k: int(v) for k, v in battery["technologies"].items()},
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            N_("service_bmw.toml: bad or missing {err}"), values={"err": err}
        ) from err


def read_cbs(session: EcuSession, desc: ServiceDescription) -> list[dict[str, Any]]:
    """Every CBS item the cluster keeps: availability in percent, remaining distance (``None``
    for time-only items) and months, and whether it is due."""
    data = session.read_did_raw(desc.cbs_did)
    if not data or len(data) != 1 + data[0] * CBS_RECORD.size:
        raise UnexpectedResponseError(
            N_("{name} sent a CBS record of {n} bytes that does not match its count"),
            values={"name": session.name, "n": len(data)},
        )
    names = {i.id: i for i in desc.items}
    out = []
    for n in range(data[0]):
        item_id, percent, km, months = CBS_RECORD.unpack_from(data, 1 + n * CBS_RECORD.size)
        known = names.get(item_id)
        distance = None if km == NO_DISTANCE else km
        out.append(
            {
                "id": item_id,
                "name": known.name if known else f"item_{item_id}",
                "text": known.text if known else f"service item {item_id}",
                "texts": dict(known.texts) if known else {"en": f"service item {item_id}"},
                "availability": percent,
                "remaining_km": distance,
                "remaining_months": months,
                "due": percent == 0 or months <= 0 or (distance is not None and distance <= 0),
            }
        )
    return out


def _start_routine(session: EcuSession, routine: int, option: bytes, what: str) -> None:
    """Start a service routine (in the extended session the caller opened); a status other
    than 0x00 is the ECU's refusal."""
    status = session.routine("start", routine, option)
    if status[:1] not in (b"", b"\x00"):
        raise ServiceFunctionError(
            N_("{name} refused {what} (routine status {value})"),
            values={"name": session.name, "what": what, "value": status.hex()},
        )


def reset_cbs(session: EcuSession, desc: ServiceDescription, name: str) -> list[dict[str, Any]]:
    """Reset one item (after the service was done); returns every item as read back, the reset
    one with its interval restored."""
    item = desc.item(name)
    with session.in_session("extended"):
        _start_routine(session, desc.cbs_reset_routine, bytes([item.id]), f"to reset {item.text}")
        items = read_cbs(session, desc)
    after = next((i for i in items if i["id"] == item.id), None)
    if after is None or after["availability"] != 100:
        raise ServiceFunctionError(
            N_("{name} acknowledged the reset of {text} but does not keep it: {after}"),
            values={"name": session.name, "text": item.text, "after": after},
            hint=N_(
                "Read the service status again; if it persists, check the cluster's fault memory"
            ),
        )
    return items


def read_battery(session: EcuSession, desc: ServiceDescription) -> dict[str, Any]:
    data = session.read_did_raw(desc.battery_did)
    if len(data) != 6:
        raise UnexpectedResponseError(
            N_("{name} sent a battery record of {n} bytes, expected 6"),
            values={"name": session.name, "n": len(data)},
        )
    capacity, technology, registered_km = struct.unpack(">BBI", data)
    return {
        "capacity_ah": capacity,
        "technology": desc.technology_name(technology),
        "registered_km": registered_km,
    }


def register_battery(
    session: EcuSession, desc: ServiceDescription, capacity_ah: int, technology: str
) -> dict[str, Any]:
    """Tell the energy management about a new battery; read back that it keeps it."""
    if technology not in desc.technologies:
        raise ServiceFunctionError(
            N_("battery technology {technology} is not known"),
            values={"technology": repr(technology)},
            hint=N_("Use one of: {names}"),
            hint_values={"names": ", ".join(desc.technologies)},
        )
    if not desc.min_capacity_ah <= capacity_ah <= desc.max_capacity_ah:
        raise ServiceFunctionError(
            N_("a battery of {capacity_ah} Ah cannot be registered"),
            values={"capacity_ah": capacity_ah},
            hint=N_(
                "The capacity is {min_capacity_ah}..{max_capacity_ah} Ah (printed on the battery)"
            ),
            hint_values={
                "min_capacity_ah": desc.min_capacity_ah,
                "max_capacity_ah": desc.max_capacity_ah,
            },
        )
    option = bytes([capacity_ah, desc.technologies[technology]])
    with session.in_session("extended"):
        _start_routine(session, desc.battery_routine, option, "the battery registration")
        after = read_battery(session, desc)
    if (after["capacity_ah"], after["technology"]) != (capacity_ah, technology):
        raise ServiceFunctionError(
            N_("{name} acknowledged the registration but keeps {after}"),
            values={"name": session.name, "after": after},
        )
    return after
