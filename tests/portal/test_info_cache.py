"""Issue 16 §3, the box's cache of repair information: the portal's subset for one car (from the
sample content, imported into a real database), kept by the box's cache (real SQLite) and read
back without the portal; bounded (the car fetched longest ago goes first); refreshed when the
portal's content version changes; nothing asked for without a ticket with repair information."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import InfoCacheError
from firmware_py.gateway.info_cache import InfoCache
from portal.content import format, sample, store
from portal.content.car_subset import car_subset

G30, F30 = "WBAJA71090B123456", "WBA8E9C50GK123456"
G30_ECUS = ["DME", "DSC", "ACSM", "BDC", "HU"]
YEAR = 2026


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    sample.write(out)
    return out


@pytest.fixture
def loaded(factory: sessionmaker[Session], sample_dir: Path) -> sessionmaker[Session]:
    store.load(factory, format.read(sample_dir), now=1_790_000_000)
    return factory


def subset(factory: sessionmaker[Session], vin: str, dtcs: list[str]) -> dict[str, object]:
    with factory() as session:
        return car_subset(session, vin, G30_ECUS, dtcs, YEAR)


def test_a_cached_car_answers_its_dtc_and_campaigns_without_the_portal(
    loaded: sessionmaker[Session], tmp_path: Path
) -> None:
    cache = InfoCache(tmp_path / "cache.sqlite", 1024 * 1024)
    cache.put(subset(loaded, G30, ["P12A1-00", "not a dtc"]))
    loaded.kw["bind"].dispose()  # the portal's database is not asked again
    again = InfoCache(tmp_path / "cache.sqlite", 1024 * 1024)  # survives a restart of the box
    found = again.for_dtc(G30, "12A100")
    assert found is not None
    assert [i["id"] for i in found["instructions"]] == ["RI-DME-12A100"]
    assert found["instructions"][0]["record"]["steps"]
    assert {c["id"] for c in found["campaigns"]} == {"CAMPAIGN-0032-SAMPLE", "CAMPAIGN-0047-SAMPLE"}
    assert found["content_version"] == "sample-2026.11"
    whole = again.get(G30)
    assert whole is not None and "62 DME" in [g["id"] for g in whole["groups"]]
    assert again.for_dtc(F30, "12A100") is None


def test_the_f30_gets_its_own_campaign_state(loaded: sessionmaker[Session]) -> None:
    states = {c["id"]: c["status"] for c in subset(loaded, F30, [])["campaigns"]}  # type: ignore[union-attr]
    assert states == {"CAMPAIGN-0032-SAMPLE": "done"}  # CAMPAIGN-0047 is the G30's type only


def test_the_cache_is_bounded_and_evicts_the_car_fetched_longest_ago(
    loaded: sessionmaker[Session], tmp_path: Path
) -> None:
    one = subset(loaded, G30, ["12A100"])
    size = len(json.dumps(one, separators=(",", ":")).encode())
    cache = InfoCache(tmp_path / "cache.sqlite", int(size * 2.5))
    vins = ["WBAJA71090B12345" + str(n) for n in range(4)]
    for n, vin in enumerate(vins):
        cache.put(subset(loaded, vin, ["12A100"]), now=1000.0 + n)
    assert cache.vins() == vins[2:]
    assert cache.for_dtc(vins[0], "12A100") is None
    small = InfoCache(tmp_path / "small.sqlite", 100)
    with pytest.raises(InfoCacheError, match="info_cache_bytes"):
        small.put(one)


def test_a_new_content_version_makes_cached_cars_stale_until_asked_again(
    loaded: sessionmaker[Session], sample_dir: Path, tmp_path: Path
) -> None:
    cache = InfoCache(tmp_path / "cache.sqlite", 1024 * 1024)
    assert cache.stale(G30)
    cache.put(subset(loaded, G30, ["12A100"]))
    assert not cache.stale(G30)
    newer = tmp_path / "newer"
    sample.write(newer, content_version="sample-2026.12")
    store.load(loaded, format.read(newer))
    answer = subset(loaded, F30, [])
    cache.put(answer)  # another car's answer carries the new version: the G30's is now old
    assert cache.latest() == "sample-2026.12"
    assert cache.stale(G30) and not cache.stale(F30)
    cache.put(subset(loaded, G30, ["12A100"]))
    assert not cache.stale(G30)
    assert cache.get(G30)["content_version"] == "sample-2026.12"  # type: ignore[index]
