"""Flash test material: images with the simulator's header, made here, and packages signed by a
publisher key generated for the test (TEST material)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_py.keys import load_private_key
from firmware_py.uds.flash.package import SequenceParams, build_package
from portal import keys

EGS_REGION = 0x00080000  # every simulated ECU but the DME (see docs/simulator.md)


def image(version: str, size: int, seed: int = 1) -> bytes:
    header = b"VCIS" + version.encode().ljust(16, b" ")
    header += bytes(64 - len(header))
    body = bytes((i * 31 + seed) & 0xFF for i in range(size - len(header)))
    return header + body


@dataclass
class Publisher:
    root: Path
    trust: Path
    key_file: Path

    def package(
        self,
        name: str,
        ecu: str,
        address: int,
        version: str,
        data: bytes,
        *,
        expects: tuple[str, ...] = (),
        hw: str | None = None,
        fmt: str = "ihex",
        max_block: int | None = None,
        region: int = EGS_REGION,
    ) -> Path:
        kid, key = load_private_key(self.key_file)
        raw = build_package(
            ecu_name=ecu,
            ecu_address=address,
            version=version,
            segments=[(region, data)],
            key=key,
            kid=kid,
            image_format=fmt,
            hw_number=hw,
            sw_versions=expects,
            sequence=SequenceParams(max_block_length=max_block),
        )
        path = self.root / name
        path.write_bytes(raw)
        return path


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    keys.generate(tmp_path / "publisher", "test-publisher")
    trust = tmp_path / "trusted-publishers"
    trust.mkdir()
    (trust / "test-publisher.pub").write_bytes(
        (tmp_path / "publisher" / "test-publisher.pub").read_bytes()
    )
    return Publisher(tmp_path, trust, tmp_path / "publisher" / "test-publisher.key")


@pytest.fixture
def flash_box(basic_box, publisher, monkeypatch):
    """A box with a Basic ticket that trusts the test publisher (VCI_* for every vci started)."""
    monkeypatch.setenv("VCI_SECURITY_PUBLISHER_KEYS_DIR", str(publisher.trust))
    return basic_box


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["EGS_REGION", "Publisher", "image", "sha", "os"]
