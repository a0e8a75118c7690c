"""Map updates the portal offered this box and the box keeps until a technician installs them
(docs/maps.md): ``<state dir>/maps/offers/<id>.json``, each the portal's signed manifest and the
activation code of one car, checked when taken (signatures, the code is for this package).

The offer's id is the package's SHA-256 (first 16 hex digits) and the car's VIN: the tablet lists
the offers for the car connected and starts ``map_update`` with ``{"offer": id}``; the job checks
everything again (the VIN against the car) and forgets the offer once the map is active.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware_py.gateway.map_package import MapError, parse_manifest, read_activation
from firmware_py.i18n import N_

OFFER_ID = re.compile(r"^[0-9a-f]{16}-[A-HJ-NPR-Z0-9]{17}$")
MAX_OFFERS = 32
"""offers kept; the oldest goes when a newer one comes"""


def _directory(state_dir: Path) -> Path:
    return Path(state_dir) / "maps" / "offers"


def keep(
    state_dir: Path, keys: Mapping[str, Ed25519PublicKey], manifest: str, activation: str
) -> dict[str, Any]:
    """Check an offer and keep it (an offer kept again replaces itself); what the box answers."""
    m = parse_manifest(manifest, keys)
    code = read_activation(activation, keys, manifest=m)
    offer_id = f"{m.sha256[:16]}-{code.vin}"
    directory = _directory(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{offer_id}.tmp"
    tmp.write_text(json.dumps({"manifest": manifest.strip(), "activation": activation.strip()}))
    os.replace(tmp, directory / f"{offer_id}.json")
    for old in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-MAX_OFFERS]:
        old.unlink(missing_ok=True)
    return summary(offer_id, m.name, m.size, code.vin)


def summary(offer_id: str, name: str, size: int, vin: str) -> dict[str, Any]:
    return {"offer": offer_id, "map": name, "bytes": size, "vin": vin}


def offers(state_dir: Path, keys: Mapping[str, Ed25519PublicKey]) -> list[dict[str, Any]]:
    """The offers kept (each checked again: a key removed since takes its offers away)."""
    found = []
    for path in sorted(_directory(state_dir).glob("*.json")):
        try:
            manifest, activation = load(state_dir, path.stem)
            m = parse_manifest(manifest, keys)
            code = read_activation(activation, keys, manifest=m)
        except MapError:
            continue
        found.append(summary(path.stem, m.name, m.size, code.vin))
    return found


def load(state_dir: Path, offer_id: str) -> tuple[str, str]:
    """The manifest and activation code of a kept offer; :class:`MapError` if there is none."""
    if not OFFER_ID.match(offer_id):
        raise MapError(
            N_("{value} is not a map offer of this box"), values={"value": repr(offer_id[:40])}
        )
    try:
        data = json.loads((_directory(state_dir) / f"{offer_id}.json").read_text())
        return str(data["manifest"]), str(data["activation"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MapError(
            N_("this box keeps no map offer {offer_id}"),
            values={"offer_id": offer_id},
            hint=N_(
                "The portal offers map updates (vci-portal map offer); see the offers on the tablet"
            ),
        ) from err


def forget(state_dir: Path, offer_id: str) -> None:
    if OFFER_ID.match(offer_id):
        (_directory(state_dir) / f"{offer_id}.json").unlink(missing_ok=True)
