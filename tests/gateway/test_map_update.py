"""The map update end to end (docs/maps.md): ``vci map update`` against the simulator (``vci
sim``, its head unit's map region over DoIP or HSFZ), a real HTTP server on 127.0.0.1 with an
access log (map_server.py), the portal's real signing (``vci-portal map`` code with a TEST key
made by the ``box`` fixture) and an Informationssuche ticket. The package is GENERATED sample
data (a sparse file named as sample), never real map content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from firmware_py.sim.vehicle import load_vehicle
from portal import map_cli
from tests.conftest import Box
from tests.gateway.map_server import MapServer

BIG = 300 * 2**20
"""bytes of the sample package of the cut-and-resume test (sparse: no disk taken by the source)"""
SMALL = 3 * 2**20
MAP = "SAMPLE_EUROPE 2026-1"
VIN = load_vehicle("g30").vin


@pytest.fixture
def info_box(box: Box) -> Box:
    """A box with an Informationssuche ticket (repair_information: map updates)."""
    proc = box.vci("ticket", "add", box.issue("info-1m"))
    assert proc.returncode == 0, proc.stderr
    return box


def sample(tmp_path: Path, size: int, name: str = "sample.map") -> Path:
    (tmp_path / "served").mkdir(exist_ok=True)
    return map_cli.make_sample(tmp_path / "served" / name, size)


def signed(box: Box, package: Path, url: str, vin: str = VIN) -> tuple[Path, Path]:
    """The portal's manifest of ``package`` and its activation code for ``vin``, as files."""
    manifest = map_cli.publish(
        package, box.keys_dir, None, region="SAMPLE_EUROPE", version="2026-1", url=url,
        ecu="HU", address=0x40000000,
    )  # fmt: skip
    code = map_cli.activation(manifest, box.keys_dir, None, vin)
    (box.root / "manifest.txt").write_text(manifest)
    (box.root / "activation.txt").write_text(code)
    return box.root / "manifest.txt", box.root / "activation.txt"


def update(box: Box, sim: Any, files: tuple[Path, Path], transport: str = "doip") -> Any:
    manifest, activation = files
    return box.vci(
        "--json", "map", "update", "--manifest", str(manifest), "--activation", str(activation),
        *sim.cli_args(transport), timeout=120,
    )  # fmt: skip


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def head_unit(sim: Any) -> dict[str, Any]:
    return dict(sim.state()["ecus"]["HU"]["maps"])


def test_a_download_cut_at_30_percent_goes_on_without_a_byte_twice_and_is_installed_and_activated(
    info_box: Box, start_sim: Any, tmp_path: Path
) -> None:
    package = sample(tmp_path, BIG)
    cut = BIG * 3 // 10
    sim = start_sim()
    with MapServer(package, cut_at=cut) as server:
        done = update(info_box, sim, signed(info_box, package, server.url))
    assert done.returncode == 0, done.stdout + done.stderr
    # the server's access log: the first answer broke off at 30 %, the second asked for the rest
    # from exactly there (Range), and every byte went out once
    [first, second] = server.log
    assert (first.range, first.start, first.sent) == (None, 0, cut)
    assert (second.range, second.status) == (f"bytes={cut}-", 206)
    assert second.start == cut and first.sent + second.sent == BIG
    seen = events(done.stdout)
    phases = {e.get("phase") for e in seen if e.get("kind") == "job.progress"}
    assert phases == {"download", "install"}  # what the tablet shows of a job
    result = seen[-1]["result"]
    assert (result["map"], result["bytes"], result["installed_from"]) == (MAP, BIG, 0)
    hu = head_unit(sim)
    assert hu["active"] == MAP and hu["held"] == BIG and hu["checked"]
    assert hu["sha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert list((info_box.root / "state" / "maps").iterdir()) == []  # the package is not kept


def test_an_activation_code_for_another_vin_is_refused_before_anything_is_fetched(
    info_box: Box, start_sim: Any, tmp_path: Path
) -> None:
    package = sample(tmp_path, SMALL)
    sim = start_sim()
    with MapServer(package) as server:
        done = update(info_box, sim, signed(info_box, package, server.url, "WBA00000000000001"))
    assert done.returncode == 2
    failed = events(done.stdout)[-1]
    assert failed["error"] == "map_update_failed"
    assert f"for vehicle WBA00000000000001, the car connected is {VIN}" in failed["message"]
    assert "bound to the VIN" in failed["hint"]
    assert server.log == []  # nothing fetched
    hu = head_unit(sim)
    assert hu["held"] == 0 and hu["active"] == "SAMPLE_EUROPE 2025-1"  # nothing sent


def test_a_corrupt_package_is_refused_and_nothing_is_installed(
    info_box: Box, start_sim: Any, tmp_path: Path
) -> None:
    package = sample(tmp_path, SMALL)
    sim = start_sim()
    with MapServer(package) as server:
        files = signed(info_box, package, server.url)
        with package.open("r+b") as f:  # the served file is damaged after it was published
            f.seek(SMALL // 2)
            f.write(b"\x01")
        done = update(info_box, sim, files)
    assert done.returncode == 2
    failed = events(done.stdout)[-1]
    assert "does not match the manifest's SHA-256; it was discarded" in failed["message"]
    assert [e.start for e in server.log] == [0]
    assert list((info_box.root / "state" / "maps").iterdir()) == []  # nothing kept
    hu = head_unit(sim)
    assert hu["held"] == 0 and hu["active"] == "SAMPLE_EUROPE 2025-1"  # nothing sent


def test_a_full_disk_is_refused_before_the_download(
    info_box: Box, start_sim: Any, tmp_path: Path, small_disk: Path
) -> None:
    config = info_box.config.read_text().replace(
        str(info_box.root / "state"), str(small_disk / "state")
    )
    info_box.config.write_text(config)
    assert info_box.vci("ticket", "add", info_box.issue("info-1m")).returncode == 0
    package = sample(tmp_path, SMALL)
    sim = start_sim()
    with MapServer(package) as server:
        done = update(info_box, sim, signed(info_box, package, server.url))
    assert done.returncode == 2
    failed = events(done.stdout)[-1]
    assert failed["error"] == "storage_error"
    assert "not enough space for the map package: it needs 19 MiB" in failed["message"]
    assert server.log == []
    assert head_unit(sim)["held"] == 0


def test_an_installation_broken_off_goes_on_where_the_head_unit_stands(
    info_box: Box, start_sim: Any, tmp_path: Path, enet: str
) -> None:
    package = sample(tmp_path, SMALL)
    sim = start_sim()
    sim.inject(ecu="HU", reset_after_blocks=20)  # it resets in the middle of the transfer
    with MapServer(package) as server:
        files = signed(info_box, package, server.url)
        broken = update(info_box, sim, files, enet)
        assert broken.returncode == 2, broken.stdout
        held = head_unit(sim)["held"]
        assert 0 < held < SMALL
        done = update(info_box, sim, files, enet)
    assert done.returncode == 0, done.stdout + done.stderr
    result = events(done.stdout)[-1]["result"]
    assert result["installed_from"] == held  # the bytes the head unit held were not sent again
    assert [e.start for e in server.log] == [0]  # the package was kept on the box: fetched once
    hu = head_unit(sim)
    assert hu["active"] == MAP and hu["held"] == SMALL
