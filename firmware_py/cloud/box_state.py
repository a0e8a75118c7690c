"""The box's retained state on ``vci/box/<box>/state`` (docs/remote-protocol.md): whether it is
online, the software release it runs and the car connected to it, as one JSON object::

    {"state": "online", "version": "2026.11.1",
     "vehicle": {"vin": "WBA3A5C50DF123456", "type": "BMW 3 Series"}}

The box publishes it (retained) when its link comes up and again when a car is identified or
lost; its last will, and the WebSocket bridge's, is ``{"state": "offline", ...}``. Boxes of
earlier releases publish the bare words ``online`` / ``offline``: :func:`parse` takes those too.

Pure: bytes in, a validated :class:`BoxState` out, and back; every refusal is a
:class:`~firmware_py.cloud.schema.ProtocolError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from firmware_py import strict_json
from firmware_py.cloud.schema import ProtocolError

MAX_STATE = 1024
"""bytes of a state message"""
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+~_-]{0,39}")
VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
MAX_TYPE = 80


@dataclass(frozen=True)
class BoxState:
    online: bool
    version: str | None = None
    """the software release the box runs (None: not said, an earlier box or the bridge)"""
    vin: str | None = None
    """the car connected now (None: none, or not identified yet)"""
    vehicle: str | None = None
    """the car's type as the box names it from the VIN, if known"""

    @property
    def word(self) -> str:
        """``online`` or ``offline``: what the state was before it carried more."""
        return "online" if self.online else "offline"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"state": self.word, "version": self.version, "vehicle": None}
        if self.vin is not None:
            body["vehicle"] = {"vin": self.vin, "type": self.vehicle}
        return strict_json.dumps(body).encode()


def parse(payload: bytes) -> BoxState:
    """A state message as the box (or the bridge) published it; refused with what is wrong."""
    if payload in (b"online", b"offline"):  # a box of an earlier release
        return BoxState(payload == b"online")
    try:
        body = strict_json.obj(strict_json.loads(payload, max_bytes=MAX_STATE), "the state")
        state = body.get("state")
        if state not in ("online", "offline"):
            raise ProtocolError("state is neither online nor offline")
        version = body.get("version")
        if version is not None and (not isinstance(version, str) or not VERSION.fullmatch(version)):
            raise ProtocolError("version is not a release version")
        vehicle = body.get("vehicle")
        vin = kind = None
        if vehicle is not None:
            vehicle = strict_json.obj(vehicle, "vehicle")
            vin = vehicle.get("vin")
            if not isinstance(vin, str) or not VIN.fullmatch(vin):
                raise ProtocolError("vehicle.vin is not a VIN")
            kind = vehicle.get("type")
            if kind is not None and (
                not isinstance(kind, str) or len(kind) > MAX_TYPE or not kind.isprintable()
            ):
                raise ProtocolError(f"vehicle.type is not text of at most {MAX_TYPE} characters")
    except strict_json.StrictJsonError as err:
        raise ProtocolError(f"the box's state: {err}") from err
    return BoxState(state == "online", version, vin, kind)
