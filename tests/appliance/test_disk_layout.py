"""The amd64 disk's layout (image/disk.py) against what a portal-offered update needs: the bundle
is downloaded to the data partition before RAUC installs it (docs/update.md), so the partition
must hold a bundle as large as a root slot's image can make, with the update download's spare and
room for the state and the journal besides."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from firmware_py.gateway.download import SPARE

REPO = Path(__file__).resolve().parents[2]
STATE_AND_JOURNAL = 256 * 2**20
"""bytes kept for the gateway's state (tickets, packages, traces) and the journal"""


def _disk(name: str = "disk") -> object:
    spec = importlib.util.spec_from_file_location(f"image_{name}", REPO / "image" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_data_partition_holds_a_full_slots_bundle_with_room_to_spare() -> None:
    disk = _disk()
    slot = disk.SLOT_MB * 2**20  # type: ignore[attr-defined]
    data = disk.DATA_MB * 2**20  # type: ignore[attr-defined]
    # a bundle's squashfs is at most its root file system, which is at most the slot
    assert data >= slot + SPARE + STATE_AND_JOURNAL, (
        f"the data partition ({data // 2**20} MiB) cannot take an offered bundle of up to "
        f"{slot // 2**20} MiB (a root slot)"
    )
    names = [name for name, *_ in disk.layout()]  # type: ignore[attr-defined]
    assert names[-1] == "vci-data"


def test_the_pi_cards_data_partition_holds_a_full_slots_bundle_too() -> None:
    pi = _disk("pi")
    slot = pi.SLOT_MIB * 2**20  # type: ignore[attr-defined]
    data = pi.partition("data").size_mib * 2**20  # type: ignore[attr-defined]
    assert data >= slot + SPARE + STATE_AND_JOURNAL, (
        f"the Pi's data partition ({data // 2**20} MiB) cannot take an offered bundle of up to "
        f"{slot // 2**20} MiB (a root slot)"
    )
