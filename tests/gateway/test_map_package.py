"""The map manifest and activation code as the box checks them (firmware_py/gateway/
map_package.py): signed with a TEST key made here; what must be refused is refused with a
message that says why and what to do."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_py.gateway.map_package import (
    MapError,
    parse_activation,
    parse_manifest,
    sign_activation,
    sign_manifest,
)
from firmware_py.gateway.ticket_token import sign

VIN = "WBAJA71090B123456"
KEY = Ed25519PrivateKey.generate()
KEYS = {"test": KEY.public_key()}
GOOD: dict[str, Any] = {
    "region": "SAMPLE_EUROPE", "version": "2026-1", "url": "https://portal.example/m.map",
    "size": 300 * 2**20, "sha256": "ab" * 32, "ecu": "HU", "address": 0x40000000,
}  # fmt: skip


def manifest(**over: Any) -> str:
    return sign("vm1", {"kid": "test", "iat": 0, **GOOD, **over}, KEY)


def test_a_manifest_and_the_cars_code_are_taken() -> None:
    m = parse_manifest(sign_manifest(KEY, "test", **GOOD), KEYS)
    assert (m.name, m.size, m.address) == ("SAMPLE_EUROPE 2026-1", 300 * 2**20, 0x40000000)
    assert m.fetch().file_name == "ab" * 32 + ".map"
    code = parse_activation(sign_activation(KEY, "test", vin=VIN, manifest=m), KEYS,
                            manifest=m, vin=VIN)  # fmt: skip
    assert (code.vin, code.version) == (VIN, "2026-1")


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"url": "file:///etc/shadow"}, "not an http(s) URL"),
        ({"size": 0}, "a package of 0 bytes"),
        ({"size": 2**32}, "refused"),
        ({"size": True}, "malformed"),
        ({"sha256": "AB" * 32}, "malformed"),
        ({"region": "../etc"}, "malformed"),
        ({"address": -1}, "malformed"),
        ({"extra": 1}, "malformed (its fields)"),
    ],
)
def test_manifests_the_box_must_not_take_are_refused(over: dict[str, Any], words: str) -> None:
    with pytest.raises(MapError, match=re.escape(words)):
        parse_manifest(manifest(**over), KEYS)


def test_a_manifest_or_code_not_signed_by_the_portal_is_refused() -> None:
    forged = sign("vm1", {"kid": "test", "iat": 0, **GOOD}, Ed25519PrivateKey.generate())
    with pytest.raises(MapError, match="signature is not valid") as info:
        parse_manifest(forged, KEYS)
    assert "nothing was fetched or installed" in (info.value.hint or "")
    m = parse_manifest(manifest(), KEYS)
    ticket_shaped = "vt1." + sign_activation(KEY, "test", vin=VIN, manifest=m).split(".", 1)[1]
    with pytest.raises(MapError, match="refused"):
        parse_activation(ticket_shaped, KEYS, manifest=m, vin=VIN)


def test_another_cars_or_another_packages_code_is_refused_with_what_to_do() -> None:
    m = parse_manifest(manifest(), KEYS)
    other_car = sign_activation(KEY, "test", vin="WBA00000000000001", manifest=m)
    with pytest.raises(
        MapError, match=f"for vehicle WBA00000000000001, the car connected is {VIN}"
    ):
        parse_activation(other_car, KEYS, manifest=m, vin=VIN)
    newer = parse_manifest(manifest(version="2026-2"), KEYS)
    with pytest.raises(MapError, match="not for the package SAMPLE_EUROPE 2026-2") as info:
        parse_activation(sign_activation(KEY, "test", vin=VIN, manifest=m), KEYS,
                         manifest=newer, vin=VIN)  # fmt: skip
    assert "activation code of this package" in (info.value.hint or "")
    with pytest.raises(MapError, match="VIN could not be read"):
        parse_activation(sign_activation(KEY, "test", vin=VIN, manifest=m), KEYS, manifest=m,
                         vin=None)  # fmt: skip
    with pytest.raises(MapError, match="is not a VIN"):
        sign_activation(KEY, "test", vin="WBA0000000000000I", manifest=m)


def test_offers_are_kept_listed_and_named_by_their_id_only(tmp_path) -> None:
    from firmware_py.gateway import map_offers
    from firmware_py.gateway.job_params import check_params
    from firmware_py.strict_json import StrictJsonError

    m = parse_manifest(manifest(), KEYS)
    code = sign_activation(KEY, "test", vin=VIN, manifest=m)
    kept = map_offers.keep(tmp_path, KEYS, manifest(), code)
    assert kept == {"offer": "ab" * 8 + "-" + VIN, "map": m.name, "bytes": m.size, "vin": VIN}
    assert map_offers.offers(tmp_path, KEYS) == [kept]
    assert map_offers.offers(tmp_path, {}) == []  # a key removed since takes its offers away
    assert map_offers.load(tmp_path, kept["offer"])[1] == code
    for bad in ("../../etc/passwd", "ab" * 8 + "-" + "I" * 17, ""):
        with pytest.raises(MapError):
            map_offers.load(tmp_path, bad)
        with pytest.raises(StrictJsonError):
            check_params("map_update", {"offer": bad})
    with pytest.raises(StrictJsonError, match="unknown parameter"):
        check_params("map_update", {"offer": kept["offer"], "manifest": manifest()})
    map_offers.forget(tmp_path, kept["offer"])
    assert map_offers.offers(tmp_path, KEYS) == []
