"""Navigation map data packages (docs/maps.md): the portal's signed manifest and the activation
code bound to a car, as the box checks them.

Both are statements signed with the portal's ticket key, in the shape of a ticket
(ticket_token.py):

- the **manifest** (``vm1.``) publishes one package for every box: its region and version, the
  URL it is served at, its size and SHA-256, and where it goes (the ECU, by name, and the address
  of its map region);
- the **activation code** (``va1.``) is made for one car: its VIN, and the package's region,
  version and SHA-256. The box refuses a code for another VIN or another package before it
  fetches or sends anything; the head unit checks the VIN and the map again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py.errors import TicketError, UpdateError
from firmware_py.gateway.download import Fetch
from firmware_py.gateway.ticket_token import MAX_TIME, sign, verify
from firmware_py.i18n import N_

MANIFEST_PREFIX, ACTIVATION_PREFIX = "vm1", "va1"
MAX_MAP = 2**32 - 1
"""bytes: what one RequestDownload with 4-byte lengths can name"""
MANIFEST_FIELDS = {"kid", "region", "version", "url", "size", "sha256", "ecu", "address", "iat"}
ACTIVATION_FIELDS = {"kid", "vin", "region", "version", "sha256", "iat"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REGION = re.compile(r"^[A-Z0-9_]{1,32}$")
_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,16}$")
_ECU = re.compile(r"^[A-Z0-9_]{1,16}$")
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")


class MapError(UpdateError):
    """A map update was refused or failed; the head unit keeps the map it has."""

    code = "map_update_failed"


@dataclass(frozen=True)
class MapManifest:
    region: str
    version: str
    url: str
    size: int
    sha256: str
    ecu: str
    address: int
    iat: int

    @property
    def name(self) -> str:
        return f"{self.region} {self.version}"

    def fetch(self) -> Fetch:
        """What the box's downloader fetches (download.py), named as a map package."""
        return Fetch(
            self.url, self.size, self.sha256, f"{self.sha256}.map", what="the map package",
            item="map package", source="manifest", siblings="*.map*",
        )  # fmt: skip


@dataclass(frozen=True)
class ActivationCode:
    vin: str
    region: str
    version: str
    sha256: str
    token: str
    """the signed code as the head unit gets it"""


def sign_manifest(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    region: str,
    version: str,
    url: str,
    size: int,
    sha256: str,
    ecu: str,
    address: int,
    now: float | None = None,
) -> str:
    """The portal's side: a map package published (checked with the box's own rules first)."""
    payload = {
        "kid": kid, "region": region, "version": version, "url": url, "size": size,
        "sha256": sha256, "ecu": ecu, "address": address,
        "iat": int(time.time() if now is None else now),
    }  # fmt: skip
    _manifest_from(payload)
    return sign(MANIFEST_PREFIX, payload, key)


def sign_activation(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    vin: str,
    manifest: MapManifest,
    now: float | None = None,
) -> str:
    """The portal's side: the activation code of one package for one car."""
    if not _VIN.match(vin):
        raise MapError(
            N_("{value} is not a VIN (17 letters and digits, no I, O or Q)"),
            values={"value": repr(vin[:20])},
        )
    payload = {
        "kid": kid, "vin": vin, "region": manifest.region, "version": manifest.version,
        "sha256": manifest.sha256, "iat": int(time.time() if now is None else now),
    }  # fmt: skip
    return sign(ACTIVATION_PREFIX, payload, key)


def _verified(prefix: str, token: str, keys: Mapping[str, Ed25519PublicKey], what: str) -> Any:
    try:
        return verify(prefix, token, keys)
    except TicketError as err:
        raise MapError(
            N_("the map {what} is refused: {value}"),
            values={"what": what, "value": err.args[0]},
            hint=N_("Only the portal can issue map {what}s; nothing was fetched or installed"),
            hint_values={"what": what},
        ) from err


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _manifest_from(payload: Any) -> MapManifest:
    if not isinstance(payload, dict) or set(payload) != MANIFEST_FIELDS:
        raise MapError(N_("the map manifest is malformed (its fields)"))
    p = payload
    if not (
        all(isinstance(p[k], str) for k in ("region", "version", "url", "sha256", "ecu"))
        and all(_is_int(p[k]) for k in ("size", "address", "iat"))
        and _REGION.match(p["region"])
        and _VERSION.match(p["version"])
        and _ECU.match(p["ecu"])
        and _SHA256.match(p["sha256"])
        and 0 <= p["iat"] <= MAX_TIME
        and 0 <= p["address"] <= 0xFFFFFFFF
        and len(p["url"]) <= 2048
    ):
        raise MapError(N_("the map manifest is malformed (a field's type or form)"))
    if not 0 < p["size"] <= MAX_MAP:
        raise MapError(
            N_("the map manifest names a package of {size} bytes; refused"),
            values={"size": p["size"]},
        )
    if urlsplit(p["url"]).scheme not in ("http", "https") or not urlsplit(p["url"]).hostname:
        raise MapError(N_("the map manifest's URL is not an http(s) URL; refused"))
    return MapManifest(
        p["region"], p["version"], p["url"], p["size"], p["sha256"], p["ecu"], p["address"],
        p["iat"],
    )  # fmt: skip


def parse_manifest(token: str, keys: Mapping[str, Ed25519PublicKey]) -> MapManifest:
    """A verified manifest, or :class:`MapError` saying why not."""
    return _manifest_from(_verified(MANIFEST_PREFIX, token, keys, "manifest"))


def read_activation(
    token: str, keys: Mapping[str, Ed25519PublicKey], *, manifest: MapManifest
) -> ActivationCode:
    """A verified activation code of this package (signature, fields, the package it names);
    which car it is for is checked against the car by :func:`parse_activation`."""
    p = _verified(ACTIVATION_PREFIX, token, keys, "activation code")
    if set(p) != ACTIVATION_FIELDS or not all(
        isinstance(p[k], str) for k in ("vin", "region", "version", "sha256")
    ):
        raise MapError(N_("the map activation code is malformed (its fields)"))
    if not _VIN.match(p["vin"]):
        raise MapError(N_("the map activation code is malformed (its VIN)"))
    if (p["region"], p["version"], p["sha256"]) != (
        manifest.region,
        manifest.version,
        manifest.sha256,
    ):
        raise MapError(
            N_(
                "the map activation code is for {region} {version}, not for the package {name}; nothing was fetched or installed"
            ),
            values={"region": p["region"], "version": p["version"], "name": manifest.name},
            hint=N_("Ask the portal for the activation code of this package"),
        )
    return ActivationCode(p["vin"], p["region"], p["version"], p["sha256"], token.strip())


def parse_activation(
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    manifest: MapManifest,
    vin: str | None,
) -> ActivationCode:
    """A verified activation code for this car (``vin``) and this package; :class:`MapError`
    says why not (another car's code is the one a workshop meets: it says both VINs)."""
    code = read_activation(token, keys, manifest=manifest)
    if vin is None:
        raise MapError(
            N_("the car's VIN could not be read, so the map activation code cannot be checked"),
            hint=N_("Check the connection to the car (vci identify), then start again"),
        )
    if code.vin != vin:
        raise MapError(
            N_(
                "the map activation code is for vehicle {vin}, the car connected is {vin2}; nothing was fetched or installed"
            ),
            values={"vin": code.vin, "vin2": vin},
            hint=N_("Ask the portal for this car's activation code (it is bound to the VIN)"),
        )
    return code
