"""The tablet's view of the box's cache of repair information (``/api/info/{vin}/dtc/{code}``):
a fault code's instructions and the car's open campaigns come from the box, not the portal; an
unpaired client gets nothing; a car that is not cached is a 404 that says what to do."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from portal.content import format, sample, store
from portal.content.car_subset import car_subset
from portal.db.engine import open_database
from tests.web.conftest import pair, run, tablet

G30 = "WBAJA71090B123456"


def test_the_tablet_reads_a_dtc_s_instructions_from_the_box_s_cache(server, tmp_path: Path) -> None:
    content = tmp_path / "sample"
    sample.write(content)
    engine, factory = open_database(f"sqlite:///{tmp_path / 'portal.db'}", migrate=True)
    store.load(factory, format.read(content))
    with factory() as session:
        server.gateway.info_cache.put(car_subset(session, G30, ["DME"], ["12A100"], 2026))
    engine.dispose()  # no portal from here on

    async def go(base, pairing, clock):
        url = base + f"/api/info/{G30}/dtc/12A100"
        async with aiohttp.ClientSession() as stranger, stranger.get(url) as r:
            assert r.status in (401, 403)
        async with tablet() as t:
            await pair(t, base, pairing, clock)
            async with t.get(base + f"/api/info/{G30.lower()}/dtc/P12A1-00") as r:
                assert r.status == 200
                found = await r.json()
            async with t.get(base + "/api/info/WBA8E9C50GK123456/dtc/12A100") as r:
                assert r.status == 404
                assert "Identify the car" in (await r.json())["hint"]
        return found

    found = run(server, go)
    assert [i["id"] for i in found["instructions"]] == ["RI-DME-12A100"]
    assert "CAMPAIGN-0032-SAMPLE" in [c["id"] for c in found["campaigns"]]
