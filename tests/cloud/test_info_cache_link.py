"""Issue 16 §3 over real processes: the portal (sample content imported into its database)
sends the simulated G30's repair information to a running ``vci gateway`` through mosquitto in
``info.piece`` messages; the box keeps it under a ticket with repair information, and what it
kept is still there with the broker gone. Without such a ticket the box refuses and keeps
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware_py.gateway.info_cache import InfoCache
from portal.content import format, sample, store
from portal.content.car_subset import car_subset, pieces, push
from portal.remote import RemoteError
from tests.cloud.conftest import BrokerOutage
from tests.cloud.portal_services import BOX

G30 = "WBAJA71090B123456"


def g30_subset(shop: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    content = tmp_path / "sample"
    sample.write(content)
    store.load(shop["factory"], format.read(content))
    with shop["factory"]() as session:
        return car_subset(session, G30, ["DME", "DSC", "ACSM", "BDC", "HU"], [], 2026)


def test_the_box_keeps_the_car_s_repair_information_and_reads_it_without_the_broker(
    basic_box: Any, remote_shop: dict[str, Any], tmp_path: Path
) -> None:
    subset = g30_subset(remote_shop, tmp_path)
    small = [dict(p) for p in pieces(subset, size=2000)]
    assert len(small) > 1  # the real size is one piece for the sample set: test the joining
    answer = push(remote_shop["sessions"].remote, BOX, subset)
    assert answer["complete"] and answer["content_version"] == "sample-2026.11"
    BrokerOutage(remote_shop["broker"]).kill()
    cache = InfoCache(basic_box.root / "state" / "info_cache.sqlite", 1 << 20)
    found = cache.for_dtc(G30, "480A00")  # the DSC's DTC: every DTC of the car's ECUs is there
    assert found is not None
    assert [i["id"] for i in found["instructions"]] == ["RI-DSC-480A00"]
    assert "CAMPAIGN-0032-SAMPLE" in [c["id"] for c in found["campaigns"]]


def test_pieces_join_in_any_order(tmp_path: Path) -> None:
    from firmware_py.gateway.info_cache import InfoPieces

    subset = {"vin": G30, "content_version": "v1", "dtcs": {}, "instructions": [],
              "campaigns": [], "groups": [{"id": "x" * 5000, "title": "t"}]}  # fmt: skip
    parts = pieces(subset, size=1000)
    taker = InfoPieces(InfoCache(tmp_path / "c.sqlite", 1 << 20))
    answers = [taker.take(p) for p in [parts[-1], *parts[:-1], parts[0]]]
    assert [a["complete"] for a in answers[:-2]] == [False] * (len(parts) - 1)
    assert answers[-2]["complete"]
    assert taker.cache.get(G30) == subset


def test_without_a_ticket_with_repair_information_the_box_keeps_nothing(
    box: Any, remote_shop: dict[str, Any], tmp_path: Path
) -> None:
    subset = g30_subset(remote_shop, tmp_path)
    with pytest.raises(RemoteError, match="no valid ticket with repair information"):
        push(remote_shop["sessions"].remote, BOX, subset)
    cache = InfoCache(box.root / "state" / "info_cache.sqlite", 1 << 20)
    assert cache.vins() == []


def test_the_portal_sends_an_identified_car_s_information_and_again_for_a_new_version(
    basic_box: Any, remote_shop: dict[str, Any], tmp_path: Path
) -> None:
    from portal import credit
    from portal.box_status import BoxStatusWatcher
    from portal.content.info_push import InfoPusher
    from portal.remote import RemoteSession
    from tests.cloud.conftest import wait_until
    from tests.cloud.portal_services import USER

    shop, broker = remote_shop, remote_shop["broker"]
    factory, owner = shop["factory"], shop["owner"]
    content = tmp_path / "sample"
    sample.write(content)
    store.load(factory, format.read(content))
    watcher = BoxStatusWatcher(
        factory, RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    )
    pusher = InfoPusher(factory, watcher.session)
    watcher.on_vehicle, watcher.on_round = pusher.vehicle_seen, pusher.refresh
    cache = InfoCache(basic_box.root / "state" / "info_cache.sqlite", 1 << 20)
    try:
        watcher.start()
        assert pusher.vehicle_seen(BOX, G30) is None  # no ticket with repair information yet
        credit.buy_ticket(factory, owner, owner.workshop_id, tariff="basic-1d", device=BOX,
                          signer=shop["signer"], seller=shop["seller"])  # fmt: skip
        final = shop["sessions"].remote.run(BOX, "identify", timeout=60)
        assert final.body["job"]["state"] == "done", final.body
        # the box's state names the car; the watcher's next round sends the information
        wait_until(lambda: watcher.step() >= 0 and cache.get(G30), 30, "the G30 in the cache")
        assert cache.for_dtc(G30, "12A100") is not None
        assert pusher.vehicle_seen(BOX, G30) is None  # this version is there: not sent again
        clock = pusher.clock
        pusher.clock = lambda: clock() + 601  # later, e.g. evicted from the box's cache since
        assert pusher.vehicle_seen(BOX, G30) is not None
        pusher.clock = clock
        newer = tmp_path / "newer"
        sample.write(newer, content_version="sample-2026.12")
        store.load(factory, format.read(newer))  # a new import while the car stays connected
        # the watcher's next rounds see the new version and send it without a new identify
        wait_until(
            lambda: watcher.step() >= 0
            and (cache.get(G30) or {}).get("content_version") == "sample-2026.12",
            30, "the new content version in the box's cache",
        )  # fmt: skip
        assert pusher.refresh() == 0  # once per version
    finally:
        watcher.session.close()
