"""Reading and validating a content set in the import format (docs/content-format.md, format
version 1): a directory, or a zip of one, with ``manifest.toml``, ``vehicles.toml``,
``labour.toml``, ``parts.toml``, ``software.toml`` and the folders ``instructions/``,
``wiring/``, ``bulletins/`` of TOML files, and SVG drawings beside them.

:func:`read` checks everything before anything is loaded: TOML syntax, required fields and their
types, the forms of VINs, DTCs, type codes and versions, every reference between records (an
instruction's wiring diagram, labour operation and parts; a part's group and hotspot; a wiring
diagram's connectors and pins in its drawing) and the drawings themselves (portal/content/svg.py).
It returns a :class:`ContentSet` or raises :class:`ContentError` listing every problem as
``file:line: what``.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from firmware_py.errors import ContentError
from portal.content import svg
from portal.content.records import Record, Source, matching
from portal.content.vehicle import normal_dtc, normal_vin

FORMAT_VERSION = 1
MAX_ZIP_BYTES = 1024 * 1024 * 1024
TYPE_CODE = re.compile(r"^[A-Z0-9]{4}$")
ECU = re.compile(r"^[A-Z0-9_]{2,16}$")
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
PART_NUMBER = re.compile(r"^[0-9]{7,11}$")
VERSION = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$", re.ASCII)
SGBM_ID = re.compile(r"^[0-9A-F]{8}$")
SERIAL = re.compile(r"^[A-Z0-9]{7}$")
PROCESS_CLASSES = frozenset(
    [
        "HWEL",
        "HWAP",
        "HWFR",
        "GWTB",
        "CAFD",
        "BTLD",
        "FLSL",
        "SWFL",
        "SWFF",
        "SWPF",
        "ONPS",
        "FAFP",
        "TLRT",
        "TPRG",
        "BLUP",
        "FLUP",
    ]
)
"""SVK process classes (the first byte of an SVK entry: 0x01 HWEL ... 0x08 SWFL ...)"""
MAX_VEHICLE_NAME = 200
"""the longest vehicle name (InfoVehicle.name)"""
MAX_DRAWING_FILE = 180
"""the longest drawing file name: with its folder it is InfoDrawing.name (200)"""


@dataclass
class ContentSet:
    """A validated content set: records as parsed (plain dicts, fields as documented), and the
    sanitised drawings by their path in the set."""

    name: str
    content_version: str
    work_units_per_hour: int
    vehicles: list[dict[str, Any]] = field(default_factory=list)
    instructions: list[dict[str, Any]] = field(default_factory=list)
    wiring: list[dict[str, Any]] = field(default_factory=list)
    bulletins: list[dict[str, Any]] = field(default_factory=list)
    labour: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    parts: list[dict[str, Any]] = field(default_factory=list)
    software: list[dict[str, Any]] = field(default_factory=list)
    drawings: dict[str, svg.Drawing] = field(default_factory=dict)


@contextmanager
def opened(path: Path) -> Iterator[Path]:
    """The content set's directory: ``path`` itself, or a zip unpacked into a temporary one
    (members with absolute paths, ``..``, links, or more than 1 GiB unpacked are refused)."""
    if path.is_dir():
        yield path
        return
    if not zipfile.is_zipfile(path):
        raise ContentError([f"{path}: neither a directory nor a zip file"])
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
        total = 0
        for member in archive.infolist():
            name = PurePosixPath(member.filename)
            kind = (member.external_attr >> 16) & 0o170000
            if name.is_absolute() or ".." in name.parts or kind == 0o120000:
                raise ContentError([f"{path}: member {member.filename!r} leaves the set"])
            total += member.file_size
            if total > MAX_ZIP_BYTES:
                raise ContentError([f"{path}: more than {MAX_ZIP_BYTES >> 20} MiB unpacked"])
        archive.extractall(tmp)
        entries = list(Path(tmp).iterdir())
        # a zip of the directory itself (content/manifest.toml) or of its contents
        yield entries[0] if len(entries) == 1 and entries[0].is_dir() else Path(tmp)


def read(path: Path) -> ContentSet:
    """The validated content set at ``path`` (a directory or a zip of one)."""
    with opened(path) as root:
        return _read(root)


def _read(root: Path) -> ContentSet:
    problems: list[str] = []
    manifest_path = root / "manifest.toml"
    if not manifest_path.is_file():
        raise ContentError([f"{root}: no manifest.toml (is this a content set?)"])
    manifest = Source(root, manifest_path, problems)
    if manifest.doc is None:
        raise ContentError(problems)
    m = Record(manifest, manifest.doc)
    fmt = m.number("format", integer=True, high=1000)
    if fmt is not None and fmt != FORMAT_VERSION:
        raise ContentError([f"manifest.toml:{manifest.line('format')}: format {fmt} is not "
                            f"supported; this portal reads format {FORMAT_VERSION}"])  # fmt: skip
    content = ContentSet(
        name=m.text("name", pattern=REF),
        content_version=m.text("content_version", pattern=REF, max_len=40),
        work_units_per_hour=int(m.number("work_units_per_hour", integer=True, low=1, high=600)
                                or 12),
    )  # fmt: skip
    checker = _Checker(root, content, problems)
    checker.run()
    if problems:
        raise ContentError(problems)
    return content


class _Checker:
    def __init__(self, root: Path, content: ContentSet, problems: list[str]) -> None:
        self.root, self.content, self.problems = root, content, problems

    def source(self, name: str, required: bool = True) -> Source | None:
        path = self.root / name
        if not path.is_file():
            if required:
                self.problems.append(f"{name}:1: missing")
            return None
        found = Source(self.root, path, self.problems)
        return found if found.doc is not None else None

    def folder(self, name: str) -> Iterator[Source]:
        for path in sorted((self.root / name).glob("*.toml")):
            found = Source(self.root, path, self.problems)
            if found.doc is not None:
                yield found

    def drawing(self, record: Record, key: str, folder: str) -> svg.Drawing | None:
        name = record.text(key, max_len=MAX_DRAWING_FILE)
        if not name:
            return None
        path = (self.root / folder / name).resolve()
        if self.root.resolve() not in path.parents or path.suffix != ".svg":
            record.bad(key, f"{name!r} is not an .svg file in {folder}/")
            return None
        relative = path.relative_to(self.root.resolve()).as_posix()
        if relative in self.content.drawings:
            return self.content.drawings[relative]
        if not path.is_file():
            record.bad(key, f"{relative} does not exist")
            return None
        try:
            drawing = svg.sanitise(path.read_bytes())
        except svg.SvgRefused as err:
            self.problems.append(f"{relative}:1: refused: {err}")
            return None
        record.data[key] = relative
        self.content.drawings[relative] = drawing
        return drawing

    def run(self) -> None:
        self.type_codes: set[str] = set()
        self.series: set[str] = set()
        self.labour_codes: set[str] = set()
        self.groups: dict[str, svg.Drawing | None] = {}
        self.parts: set[str] = set()
        self.wiring_ids: set[str] = set()
        self.ids: set[str] = set()
        for check in (self.vehicles, self.labour, self.parts_and_groups, self.software,
                      self.wiring, self.instructions, self.bulletins):  # fmt: skip
            check()

    def vehicle_scope(self, r: Record) -> list[str]:
        codes = r.texts("type_codes", matching(TYPE_CODE), "a type code")
        for code in codes:
            if code not in self.type_codes:
                r.bad("type_codes", f"{code} is not in vehicles.toml")
        return codes

    def references(self, r: Record, key: str, known: set[str], what: str) -> list[str]:
        found = r.texts(key)
        for ref in found:
            if ref not in known:
                r.bad(key, f"{ref!r} is not {what} of this set")
        return found

    def vehicles(self) -> None:
        """vehicles.toml: the type codes and series the rest names"""
        c = self.content
        if src := self.source("vehicles.toml"):
            for i, item in enumerate(Record(src, src.doc).tables("vehicle")):
                r = Record(src, item, "vehicle", i)
                v: dict[str, Any] = {"type_code": r.text("type_code", pattern=TYPE_CODE),
                     "series": r.text("series", pattern=ECU), "name": r.text("name", max_len=MAX_VEHICLE_NAME)}  # fmt: skip
                if v["type_code"] in self.type_codes:
                    r.bad("type_code", f"{v['type_code']} is listed twice")
                self.type_codes.add(v["type_code"])
                self.series.add(v["series"])
                c.vehicles.append(v)

    def labour(self) -> None:
        """labour.toml: operations with work units per series"""
        c = self.content
        if src := self.source("labour.toml"):
            for i, item in enumerate(Record(src, src.doc).tables("operation")):
                r = Record(src, item, "operation", i)
                op: dict[str, Any] = {"code": r.text("code", pattern=REF, max_len=32), "units": {}}
                op["description"] = r.prose("description", op)
                units = r.data.get("units")
                if not isinstance(units, dict) or not units:
                    r.bad("units", "must be a table of series = work units")
                else:
                    for name, value in units.items():
                        if name not in self.series:
                            r.bad("units", f"the series {name!r} is not in vehicles.toml")
                        elif (
                            isinstance(value, bool)
                            or not isinstance(value, int)
                            or not 0 < value <= 10_000
                        ):
                            r.bad("units", f"{name}: work units must be an integer from 1 to 10000")
                        else:
                            op["units"][name] = value
                if op["code"] in self.labour_codes:
                    r.bad("code", f"the operation {op['code']} is listed twice")
                self.labour_codes.add(op["code"])
                c.labour.append(op)

    def parts_and_groups(self) -> None:
        """parts.toml: groups with illustrations, parts with hotspots"""
        c = self.content
        if src := self.source("parts.toml"):
            top = Record(src, src.doc)
            for i, item in enumerate(top.tables("group")):
                r = Record(src, item, "group", i)
                g: dict[str, Any] = {"id": r.text("id", pattern=REF),
                     "type_codes": self.vehicle_scope(r)}  # fmt: skip
                g["title"] = r.prose("title", g)
                self.groups[g["id"]] = self.drawing(r, "illustration", "parts")
                g["illustration"] = r.data.get("illustration", "")
                c.groups.append(g)
            for i, item in enumerate(top.tables("part")):
                r = Record(src, item, "part", i)
                p: dict[str, Any] = {"number": r.text("number", pattern=PART_NUMBER, max_len=11),
                     "group": r.text("group"),
                     "hotspot": r.text("hotspot", required=False, max_len=16),
                     "type_codes": self.vehicle_scope(r),
                     "supersedes": r.texts("supersedes", matching(PART_NUMBER), "a part number")}  # fmt: skip
                p["description"] = r.prose("description", p)
                if p["group"] and p["group"] not in self.groups:
                    r.bad("group", f"{p['group']!r} is not a [[group]] of parts.toml")
                elif (
                    p["hotspot"]
                    and (drawing := self.groups.get(p["group"])) is not None
                    and (p["hotspot"] not in drawing.hotspots)
                ):
                    r.bad(
                        "hotspot",
                        f"{p['hotspot']!r} is not a data-hotspot of the group's illustration",
                    )
                if p["number"] in self.parts:
                    r.bad("number", f"the part {p['number']} is listed twice")
                self.parts.add(p["number"])
                c.parts.append(p)

    def software(self) -> None:
        """software.toml: SVK entries per ECU hardware part number"""
        c = self.content
        if src := self.source("software.toml", required=False):
            for i, item in enumerate(Record(src, src.doc).tables("svk")):
                r = Record(src, item, "svk", i)
                pc = r.text("process_class", max_len=8)
                if pc and pc not in PROCESS_CLASSES:
                    r.bad(
                        "process_class",
                        f"{pc!r} is not one of {', '.join(sorted(PROCESS_CLASSES))}",
                    )
                c.software.append({"ecu": r.text("ecu", pattern=ECU),
                                   "part_number": r.text("part_number", pattern=PART_NUMBER),
                                   "process_class": pc, "id": r.text("id", pattern=SGBM_ID),
                                   "version": r.text("version", pattern=VERSION)})  # fmt: skip

    def wiring(self) -> None:
        """wiring/: diagrams whose connectors and pins are in their drawings"""
        c = self.content
        for src in self.folder("wiring"):
            r = Record(src, src.doc)
            w: dict[str, Any] = {"id": r.text("id", pattern=REF),
                 "ecus": r.texts("ecus", matching(ECU), "an ECU name"),
                 "type_codes": self.vehicle_scope(r), "connectors": []}  # fmt: skip
            w["title"] = r.prose("title", w)
            drawing = self.drawing(r, "drawing", "wiring")
            w["drawing"] = r.data.get("drawing", "")
            for i, item in enumerate(r.tables("connector")):
                cr = Record(src, item, "connector", i)
                con: dict[str, Any] = {
                    "name": cr.text("name", pattern=REF),
                    "pins": cr.texts("pins"),
                }
                con["description"] = cr.prose("description", con)
                if drawing is not None and con["name"] not in drawing.connectors:
                    cr.bad("name", f"the drawing has no data-connector={con['name']!r}")
                for pin in con["pins"]:
                    if drawing is not None and f"{con['name']}.{pin}" not in drawing.pins:
                        cr.bad("pins", f"the drawing has no data-pin={con['name']}.{pin!r}")
                w["connectors"].append(con)
            if w["id"] in self.wiring_ids:
                r.bad("id", f"the wiring diagram {w['id']} exists twice")
            self.wiring_ids.add(w["id"])
            c.wiring.append(w)

    def instructions(self) -> None:
        """instructions/: repair instructions and what they reference"""
        c = self.content
        for src in self.folder("instructions"):
            r = Record(src, src.doc)
            ins: dict[str, Any] = {"id": r.text("id", pattern=REF),
                   "ecus": r.texts("ecus", matching(ECU), "an ECU name"),
                   "dtcs": r.texts("dtcs", normal_dtc, "a DTC (12A100 or P12A1-00)"),
                   "type_codes": self.vehicle_scope(r), "tools": r.texts("tools"),
                   "wiring": self.references(r, "wiring", self.wiring_ids, "a wiring diagram"),
                   "labour": self.references(r, "labour", self.labour_codes, "a labour operation"),
                   "parts": self.references(r, "parts", self.parts, "a part"), "steps": []}  # fmt: skip
            ins["title"] = r.prose("title", ins)
            ins["summary"] = r.prose("summary", ins, max_len=4000)
            for i, item in enumerate(r.tables("step")):
                sr = Record(src, item, "step", i)
                step: dict[str, Any] = {
                    "torque_nm": sr.number("torque_nm", required=False, high=5000),
                    "tool": sr.text("tool", required=False),
                }
                step["text"] = sr.prose("text", step, max_len=4000)
                ins["steps"].append(step)
            if not ins["steps"]:
                r.bad("step", "an instruction needs at least one [[step]]")
            if ins["id"] in self.ids:
                r.bad("id", f"{ins['id']} exists twice")
            self.ids.add(ins["id"])
            c.instructions.append(ins)

    def bulletins(self) -> None:
        """bulletins/: service bulletins and technical campaigns"""
        c = self.content
        for src in self.folder("bulletins"):
            r = Record(src, src.doc)
            kind = r.text("kind", max_len=16)
            if kind and kind not in ("campaign", "bulletin"):
                r.bad("kind", "must be campaign or bulletin")
            b: dict[str, Any] = {"id": r.text("id", pattern=REF), "kind": kind,
                 "ecus": r.texts("ecus", matching(ECU), "an ECU name"),
                 "dtcs": r.texts("dtcs", normal_dtc, "a DTC (12A100 or P12A1-00)"),
                 "type_codes": self.vehicle_scope(r),
                 "labour": self.references(r, "labour", self.labour_codes, "a labour operation"),
                 "model_years": r.data.get("model_years"), "vin_ranges": [], "vehicles": []}  # fmt: skip
            b["title"] = r.prose("title", b)
            b["text"] = r.prose("text", b, max_len=20_000)
            years = b["model_years"]
            if years is not None and not (
                isinstance(years, list) and len(years) == 2
                and all(isinstance(y, int) and 1980 <= y <= 2100 for y in years)
                and years[0] <= years[1]
            ):  # fmt: skip
                r.bad("model_years", "must be [first, last], years from 1980 to 2100")
                b["model_years"] = None
            for pair in r.data.get("vin_ranges", []) or []:
                if not (isinstance(pair, list) and len(pair) == 2 and all(
                        isinstance(s, str) and SERIAL.match(s) for s in pair) and pair[0] <= pair[1]):  # fmt: skip
                    r.bad("vin_ranges", f"{pair!r} is not [first, last] of 7-character serials")
                else:
                    b["vin_ranges"].append(pair)
            seen: set[str] = set()
            for i, item in enumerate(r.tables("vehicle")):
                vr = Record(src, item, "vehicle", i)
                vin = normal_vin(vr.text("vin", max_len=17) or "-")
                status = vr.text("status", max_len=8)
                if vin is None:
                    vr.bad("vin", "is not a 17-character VIN")
                elif vin in seen:
                    vr.bad("vin", f"{vin} is listed twice")
                if status and status not in ("open", "done"):
                    vr.bad("status", "must be open or done")
                if kind == "bulletin":
                    vr.bad("vin", "a bulletin has no per-vehicle state (kind = campaign has)")
                if vin:
                    seen.add(vin)
                    b["vehicles"].append({"vin": vin, "status": status})
            if b["id"] in self.ids:
                r.bad("id", f"{b['id']} exists twice")
            self.ids.add(b["id"])
            c.bulletins.append(b)
