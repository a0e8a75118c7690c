"""The simulated head unit's navigation map storage (its "HDD"): the map region it takes map data
into, and the activation of a map with its code.

A map is written with the download services the bootloader has (RequestDownload 0x34 to an
address in the map region, TransferData 0x36, RequestTransferExit 0x37; programming session,
security level 0x11), checked with the check-memory routine (0x0202: address, length, SHA-256)
and activated in the extended session with routine :data:`RID_MAP_ACTIVATION`, whose option
record is the activation code. A download that begins at the region's start begins a new map; one
that begins where the stored bytes end continues them (an installation that broke off goes on).

The region keeps the map's length and the SHA-256 of its bytes as they arrive, not the bytes
(a few hundred MB in a test): what the ECU is asked about (fill level, check, activation) needs
no more. :data:`DID_MAP_STATE` reports the bytes held, their SHA-256 and the active map.

The activation code is the portal's signed statement (``va1.<payload>.<signature>``,
docs/maps.md). The head unit checks that it is for this car's VIN and for the map it holds
(region, version, SHA-256), and refuses it otherwise (NRC 0x31); a real head unit also checks
its manufacturer's signature with a key of its own. The simulator holds no portal key: the box
checks the signature with its portal keys before it sends the code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from firmware_py.sim.response_behaviour import Nack, Nrc
from firmware_py.sim.vehicle import MapRegionSpec

DID_MAP_STATE = 0xD0A0
"""bytes held (4), their SHA-256 (32), the active map ("REGION VERSION", ASCII; empty: none)"""
RID_MAP_ACTIVATION = 0x0D20
"""routine: activate the map held with an activation code (option record: the code, ASCII)"""


@dataclass
class MapArea:
    address: int
    size: int
    max_block_length: int
    active: str
    """the map in use: "REGION VERSION" ("" none)"""
    held: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    checked: bool = False
    """the bytes held passed the check-memory routine (a complete map)"""

    @classmethod
    def new(cls, spec: MapRegionSpec) -> MapArea:
        return cls(spec.address, spec.size, spec.max_block_length, spec.installed)

    def contains(self, address: int, length: int) -> bool:
        return self.address <= address and address + length <= self.address + self.size

    def begin(self, address: int, length: int) -> int:
        """A RequestDownload into the map region: the offset it writes at (0 starts a new map,
        the end of the bytes held continues them)."""
        offset = address - self.address
        if offset == 0:
            self.held, self.digest, self.checked = 0, hashlib.sha256(), False
        elif offset != self.held:
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)  # a map is written in order, without gaps
        return offset

    def write(self, offset: int, data: memoryview) -> None:
        self.digest.update(data)
        self.held += len(data)

    def check(self, address: int, length: int, sha256: bytes) -> bool:
        ok = (
            address == self.address
            and length == self.held
            and self.digest.copy().digest() == sha256
        )
        self.checked = ok
        return ok

    def state_record(self) -> bytes:
        return struct.pack(">I", self.held) + self.digest.copy().digest() + self.active.encode()

    def activate(self, option: bytes, vin: str) -> bytes:
        """Routine :data:`RID_MAP_ACTIVATION`: the code must be for this VIN and the map held."""
        code = _activation_payload(option)
        if not self.checked:
            raise Nack(Nrc.CONDITIONS_NOT_CORRECT)  # no complete, checked map to activate
        if (
            code.get("vin") != vin
            or code.get("sha256") != self.digest.copy().hexdigest()
            or not isinstance(code.get("region"), str)
            or not isinstance(code.get("version"), str)
        ):
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)  # another car's code, or another map's
        self.active = f"{code['region']} {code['version']}"
        return b"\x00"

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "size": self.size,
            "held": self.held,
            "sha256": self.digest.copy().hexdigest(),
            "checked": self.checked,
            "active": self.active,
        }


def _activation_payload(option: bytes) -> dict[str, Any]:
    """The fields of an activation code (``va1.<payload>.<signature>``); 0x31 if it is none."""
    try:
        prefix, body, _signature = option.decode("ascii").split(".")
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (UnicodeDecodeError, ValueError, binascii.Error, RecursionError) as err:
        raise Nack(Nrc.REQUEST_OUT_OF_RANGE) from err
    if prefix != "va1" or not isinstance(payload, dict):
        raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
    return payload
