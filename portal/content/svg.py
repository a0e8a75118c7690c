"""SVG drawings of a content set (wiring diagrams, parts illustrations) are hostile input: this
module parses them with defusedxml (no DTDs, no entity expansion, no external entities) and
rebuilds each drawing from an allow-list of SVG elements and attributes, so that what the portal
stores and serves has no scripts, no event attributes (``on*``), no ``style`` (CSS can fetch
URLs), no links or references outside the drawing (only ``href="#id"``), and no foreign content
(``foreignObject``, HTML). Names the content gives parts of a drawing (``data-connector``,
``data-pin`` on wiring diagrams, ``data-hotspot`` on illustrations) are kept and listed.

The portal serves a drawing as an image under its own Content-Security-Policy
(``default-src 'none'``), so even a drawing that got past this would run nothing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
MAX_SVG_BYTES = 2 * 1024 * 1024

ELEMENTS = frozenset(
    [
        "svg",
        "g",
        "defs",
        "symbol",
        "use",
        "title",
        "desc",
        "path",
        "rect",
        "circle",
        "ellipse",
        "line",
        "polyline",
        "polygon",
        "text",
        "tspan",
        "marker",
        "linearGradient",
        "radialGradient",
        "stop",
        "clipPath",
    ]
)
ATTRIBUTES = frozenset(
    [
        "id",
        "class",
        "x",
        "y",
        "x1",
        "y1",
        "x2",
        "y2",
        "cx",
        "cy",
        "r",
        "rx",
        "ry",
        "width",
        "height",
        "d",
        "points",
        "transform",
        "viewBox",
        "preserveAspectRatio",
        "fill",
        "fill-opacity",
        "fill-rule",
        "stroke",
        "stroke-width",
        "stroke-dasharray",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-opacity",
        "opacity",
        "font-family",
        "font-size",
        "font-weight",
        "text-anchor",
        "dominant-baseline",
        "dx",
        "dy",
        "markerWidth",
        "markerHeight",
        "refX",
        "refY",
        "orient",
        "offset",
        "stop-color",
        "stop-opacity",
        "gradientUnits",
        "clip-path",
        "marker-start",
        "marker-end",
        "version",
        "data-connector",
        "data-pin",
        "data-hotspot",
        "data-signal",
    ]
)
LOCAL_REF = re.compile(r"^#[A-Za-z_][\w.-]*$")
URL_REF = re.compile(r"url\(\s*#[A-Za-z_][\w.-]*\s*\)")
"""the only url() a presentation attribute may hold: a reference inside the drawing"""
EXTERNAL = re.compile(r"url\(|javascript:|data:|//", re.IGNORECASE)


class SvgRefused(ValueError):
    """The file is not an SVG drawing this portal accepts; the message says why."""


@dataclass
class Drawing:
    svg: str
    """the sanitised drawing"""
    connectors: set[str] = field(default_factory=set)
    pins: set[str] = field(default_factory=set)
    hotspots: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    """what was dropped (elements, attributes), for the import's report"""


def sanitise(data: bytes) -> Drawing:
    """The drawing rebuilt from the allowed elements and attributes, with its named parts."""
    if len(data) > MAX_SVG_BYTES:
        raise SvgRefused(f"larger than {MAX_SVG_BYTES // 1024} KiB")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as err:
        raise SvgRefused(f"a DTD or entity declaration ({type(err).__name__})") from err
    except ET.ParseError as err:
        raise SvgRefused(f"not well-formed XML ({err})") from err
    if root.tag != f"{{{SVG_NS}}}svg":
        raise SvgRefused(f"the root element is {root.tag!r}, not an SVG <svg> element")
    drawing = Drawing(svg="")
    ET.register_namespace("", SVG_NS)
    clean = _copy(root, drawing)
    assert clean is not None
    drawing.svg = ET.tostring(clean, encoding="unicode")
    return drawing


def _copy(element: ET.Element, drawing: Drawing) -> ET.Element | None:
    namespace, _, name = element.tag.rpartition("}")
    if namespace != "{" + SVG_NS or name not in ELEMENTS:
        drawing.removed.append(f"<{name}>")
        return None
    out = ET.Element(element.tag)
    for key, value in element.attrib.items():
        kept = _attribute(name, key, value)
        if kept is None:
            drawing.removed.append(f"{name}@{key.rpartition('}')[2]}")
            continue
        out.set(*kept)
        if key == "data-connector":
            drawing.connectors.add(value)
        elif key == "data-pin":
            drawing.pins.add(value)
        elif key == "data-hotspot":
            drawing.hotspots.add(value)
    out.text = element.text if name in ("text", "tspan", "title", "desc") else None
    for child in element:
        copied = _copy(child, drawing)
        if copied is not None:
            out.append(copied)
            copied.tail = child.tail if name in ("text", "tspan") else None
    return out


def _attribute(element: str, key: str, value: str) -> tuple[str, str] | None:
    if key in (f"{{{XLINK_NS}}}href", "href"):
        # <use> may show a part of this drawing; nothing may point outside it
        return ("href", value) if element == "use" and LOCAL_REF.match(value) else None
    if "}" in key or key not in ATTRIBUTES:  # on*, style, other namespaces
        return None
    if EXTERNAL.search(URL_REF.sub("", value)):
        return None
    return key, value
