"""OBD-II (SAE J1979 / ISO 15031-5) for the emissions check: requests, decoding and one read of
everything an emissions report needs, over a link's functional address.

What each PID and information type is, how it is decoded and which readiness monitor each bit
of PID 01 names are data (``obd_pids.toml``); the functions here decode by that table. The
requests go functionally addressed (every emissions-related ECU answers: 0x7DF on CAN, 0xE400 on
DoIP; :mod:`firmware_py.transport.functional`), with the ISO 15765-4 message forms of CAN (a
count byte before the DTCs of modes 03/07/0A and before the items of mode 09).

Why not a decoder package: python-OBD's decoders take its ELM327 ``Message`` objects and return
pint quantities (a second units library for a few formulas) and read one ECU at a time; Scapy's
``scapy.contrib.automotive.obd`` layers decode every PID but Scapy is a large packet toolkit the
box does not otherwise need. The tests use Scapy's layers as the independent decoder that must
agree with this one (tests/reports/test_scapy_obd.py).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Protocol

from firmware_py.errors import ConfigError, FrameError
from firmware_py.i18n import N_, SOURCE, texts_of

MODE_CURRENT_DATA, MODE_STORED_DTCS, MODE_CLEAR, MODE_PENDING_DTCS = 0x01, 0x03, 0x04, 0x07
MODE_VEHICLE_INFO, MODE_PERMANENT_DTCS = 0x09, 0x0A
DTC_MODES = {"stored": MODE_STORED_DTCS, "pending": MODE_PENDING_DTCS, "permanent": 0x0A}
MAX_PIDS_PER_REQUEST = 6  # J1979: a mode 01 request names at most six PIDs
DTC_LETTERS = "PCBU"


@dataclass(frozen=True)
class PidSpec:
    pid: int
    name: str
    text: str
    size: int
    kind: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    formula: str = ""
    values: Mapping[int, str] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)
    """``text`` in every language the data file has (``{"en": ..., "de": ...}``)"""

    def __post_init__(self) -> None:
        kinds = ("linear", "enum", "bitmap", "monitor_status", "ascii", "hex")
        if self.kind not in kinds or not 0 <= self.pid <= 0xFF or self.size < 1:
            raise ConfigError(
                N_("obd_pids.toml: PID 0x{pid} has a bad kind or size"),
                values={"pid": format(self.pid, "02X")},
            )


@dataclass(frozen=True)
class ObdTables:
    pids: Mapping[int, PidSpec]
    info: Mapping[int, PidSpec]
    continuous: tuple[str, ...]
    spark: tuple[str, ...]
    compression: tuple[str, ...]
    monitor_texts: Mapping[str, Mapping[str, str]]


def _spec(raw: dict[str, Any]) -> PidSpec:
    values = {int(k): str(v) for k, v in raw.pop("values", {}).items()}
    texts = texts_of(raw.pop("text"))
    return PidSpec(**raw, text=texts[SOURCE], texts=texts, values=values)


def _monitor(
    t: ObdTables, name: str, continuous: bool, supported: int, incomplete: int
) -> dict[str, Any]:
    texts = t.monitor_texts[name]
    return {"name": name, "text": texts[SOURCE], "texts": dict(texts), "continuous": continuous,
            "supported": bool(supported), "complete": not incomplete}  # fmt: skip


@cache
def tables() -> ObdTables:
    """The decoding tables of ``obd_pids.toml`` (read once)."""
    raw = tomllib.loads((resources.files("firmware_py.uds") / "obd_pids.toml").read_text())
    r = raw["readiness"]
    return ObdTables(
        pids={p["pid"]: _spec(dict(p)) for p in raw["pid"]},
        info={p["pid"]: _spec(dict(p)) for p in raw["info"]},
        continuous=tuple(r["continuous"]),
        spark=tuple(r["spark"]),
        compression=tuple(r["compression"]),
        monitor_texts={name: texts_of(text) for name, text in r["text"].items()},
    )


# -- decoding (pure) -----------------------------------------------------------------------------
def supported_pids(base: int, data: bytes) -> list[int]:
    """The PIDs a "PIDs supported" bitmap (PID ``base``) names: bit 7 of byte A is base + 1."""
    bits = int.from_bytes(data[:4], "big")
    return [base + 1 + i for i in range(32) if bits & (1 << (31 - i))]


def monitor_status(data: bytes) -> dict[str, Any]:
    """PID 01: MIL, number of emissions-related DTCs, ignition type and every monitor's readiness
    (supported and complete) as J1979 lays out bytes A-D."""
    if len(data) != 4:
        raise FrameError(N_("PID 01 has 4 data bytes, not {n}"), values={"n": len(data)})
    t = tables()
    a, b, c, d = data
    compression = bool(b & 0x08)
    monitors = [
        _monitor(t, name, True, b & (1 << i), b & (0x10 << i))
        for i, name in enumerate(t.continuous)
    ]
    names = t.compression if compression else t.spark
    monitors += [
        _monitor(t, name, False, c & (1 << i), d & (1 << i)) for i, name in enumerate(names) if name
    ]
    return {
        "mil": bool(a & 0x80),
        "dtc_count": a & 0x7F,
        "ignition": "compression" if compression else "spark",
        "monitors": monitors,
    }


def decode_pid(spec: PidSpec, data: bytes) -> Any:
    if spec.kind == "monitor_status":
        return monitor_status(data)
    if spec.kind == "bitmap":
        return supported_pids(spec.pid, data)
    raw = int.from_bytes(data, "big")
    if spec.kind == "enum":
        return spec.values.get(raw, f"unknown ({raw})")
    value = raw * spec.scale + spec.offset
    return int(value) if float(value).is_integer() else round(value, 3)


def split_mode01(data: bytes) -> dict[int, bytes]:
    """A mode 01 answer (``41 PID data [PID data ...]``) -> {PID: data}, by the sizes in the
    table. A PID the table does not know ends the parse: its length is unknown."""
    if not data or data[0] != 0x41:
        raise FrameError(N_("not a mode 01 answer: {value}"), values={"value": data[:8].hex(" ")})
    pids = tables().pids
    out, i = {}, 1
    while i < len(data):
        spec = pids.get(data[i])
        if spec is None or i + 1 + spec.size > len(data):
            break
        out[data[i]] = data[i + 1 : i + 1 + spec.size]
        i += 1 + spec.size
    return out


def dtc_code(two: bytes) -> str:
    """Two DTC bytes -> the J1979 text form, e.g. ``01 00`` -> ``P0100``."""
    return f"{DTC_LETTERS[two[0] >> 6]}{(two[0] >> 4) & 3}{two[0] & 0xF:X}{two[1]:02X}"


def dtc_bytes(code: str) -> bytes:
    """``P0300`` -> ``03 00`` (the inverse of :func:`dtc_code`)."""
    if len(code) != 5 or code[0] not in DTC_LETTERS or code[1] not in "0123":
        raise ValueError(f"{code!r} is not an OBD DTC such as P0300")
    first = (DTC_LETTERS.index(code[0]) << 6) | (int(code[1]) << 4) | int(code[2], 16)
    return bytes([first, int(code[3:], 16)])


def parse_dtcs(mode: int, data: bytes) -> list[str]:
    """A mode 03/07/0A answer in its ISO 15765-4 form (``4x N DTC...``) -> DTC codes; DTC
    0000 (padding) is left out."""
    if len(data) < 2 or data[0] != mode + 0x40 or len(data) < 2 + 2 * data[1]:
        raise FrameError(
            N_("not a mode {mode} answer: {value}"),
            values={"mode": format(mode, "02X"), "value": data[:8].hex(" ")},
        )
    pairs = (data[i : i + 2] for i in range(2, 2 + 2 * data[1], 2))
    return [dtc_code(p) for p in pairs if p != b"\0\0"]


def parse_info(data: bytes) -> tuple[int, list[str]]:
    """A mode 09 answer (``49 PID N item...``) -> (PID, decoded items)."""
    if len(data) < 3 or data[0] != 0x49:
        raise FrameError(N_("not a mode 09 answer: {value}"), values={"value": data[:8].hex(" ")})
    pid, count, body = data[1], data[2], data[3:]
    spec = tables().info.get(pid)
    if spec is None:
        return pid, [body.hex().upper()]
    items = [body[i * spec.size : (i + 1) * spec.size] for i in range(count)]
    if spec.kind == "hex":
        return pid, [item.hex().upper() for item in items]
    return pid, [item.rstrip(b"\0").decode("ascii", "replace").strip() for item in items]


# -- one read of everything --------------------------------------------------------------------
class FunctionalLink(Protocol):
    def functional_request(
        self, payload: bytes, *, window: float = ..., expect: Collection[int] = ...
    ) -> dict[int, bytes]: ...


def _chunks(items: list[int], n: int) -> Iterable[list[int]]:
    return (items[i : i + n] for i in range(0, len(items), n))


def read_emissions_data(
    link: FunctionalLink,
    *,
    names: Mapping[int, str] | None = None,
    window: float | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Everything the emissions check reads, from every ECU that answers OBD: readiness and MIL
    (PID 01), the PIDs of the table each ECU supports, stored/pending/permanent DTCs, and the
    vehicle information (VIN, CALID, CVN). One dict per ECU, by its source (CAN response id or
    DoIP address; ``names`` gives the workshop's name for it). Empty: no ECU answers OBD."""
    names = names or {}
    t = tables()
    kw: dict[str, Any] = {} if window is None else {"window": window}

    def ask(payload: bytes, expect: Collection[int] = ()) -> dict[int, bytes]:
        return link.functional_request(payload, expect=expect, **kw)

    step("OBD: who answers")
    supported: dict[int, set[int]] = {}
    base = 0x00
    while True:  # an ECU is asked for the next range only if it said it has it
        askers = [s for s, pids in supported.items() if base in pids]
        answers = ask(bytes([0x01, base]), askers)
        more = False
        for source, data in answers.items():
            part = split_mode01(data).get(base) if data[:1] == b"\x41" else None
            if part is not None:
                pids = supported_pids(base, part)
                supported.setdefault(source, set()).update(pids)
                more = more or base + 0x20 in pids
        if not more or base >= 0xC0:
            break
        base += 0x20
    ecus = sorted(supported)
    if not ecus:
        return []
    out: dict[int, dict[str, Any]] = {
        s: {"source": f"0x{s:03X}", "name": names.get(s, f"0x{s:03X}"), "pids": {}, "dtcs": {}}
        for s in ecus
    }
    step("OBD: readiness and values")
    wanted = sorted(
        p for p, spec in t.pids.items()
        if spec.kind != "bitmap" and any(p in supported[s] for s in ecus)
    )  # fmt: skip
    for group in _chunks(wanted, MAX_PIDS_PER_REQUEST):
        askers = [s for s in ecus if supported[s] & set(group)]  # the others stay silent
        for source, data in ask(bytes([0x01, *group]), askers).items():
            if source not in out or data[:1] != b"\x41":
                continue
            for pid, raw in split_mode01(data).items():
                spec = t.pids[pid]
                value = decode_pid(spec, raw)
                if spec.kind == "monitor_status":
                    out[source]["monitor_status"] = value
                else:
                    out[source]["pids"][spec.name] = {
                        "pid": f"0x{pid:02X}",
                        "text": spec.text,
                        "texts": dict(spec.texts),  # the report shows the reader's
                        "value": value,
                        "unit": spec.unit,
                    }
    step("OBD: fault codes")
    for kind, mode in DTC_MODES.items():
        for source, data in ask(bytes([mode]), ecus).items():
            if source in out and data[:1] == bytes([mode + 0x40]):
                try:
                    out[source]["dtcs"][kind] = parse_dtcs(mode, data)
                except FrameError as err:  # one ECU's broken answer: said, the others read
                    out[source].setdefault("errors", []).append(str(err))
    step("OBD: vehicle information")
    info_supported: dict[int, list[int]] = {}
    for source, data in ask(b"\x09\x00", ecus).items():
        if source in out and data[:2] == b"\x49\x00" and len(data) >= 6:
            info_supported[source] = supported_pids(0, data[-4:])
    for pid, spec in t.info.items():
        askers = [s for s in ecus if pid in info_supported.get(s, ())]
        if not askers:
            continue
        for source, data in ask(bytes([0x09, pid]), askers).items():
            if source in out and data[:2] == bytes([0x49, pid]):
                items = parse_info(data)[1]
                out[source][spec.name] = items[0] if spec.name in ("vin", "ecu_name") else items
    return [out[s] for s in ecus]
