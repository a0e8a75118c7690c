"""A full state disk for real (a 4 MiB tmpfs filled to the last byte): a job that changes the car
is refused before it starts with an error that says what to do, because its record for the
service history could not be kept; reads still run; pairing on a full disk counts a wrong code
all the same and answers a clear 507, never a 500; the page and its tasks keep working."""

from __future__ import annotations

import asyncio

from tests.conftest import fill
from tests.web.conftest import CODE, pair, tablet


def test_car_changing_jobs_are_refused_before_they_start_when_the_record_cannot_be_kept(
    small_disk_server, small_disk
) -> None:
    page = small_disk_server

    async def go() -> None:
        async with tablet() as s:
            csrf = await pair(s, page.base, page.pairing, page.clock)
            filler = fill(small_disk)
            jobs_before = sorted(page.gateway.runner.jobs)
            for kind, params, ecu in (
                ("clear_fault_memory", {}, None),
                ("coding", {"action": "set", "changes": {"daytime_running_lights": "off"}}, "BDC"),
                ("service_reset", {"action": "reset", "item": "engine_oil"}, None),
                ("raw_uds", {"request": "2E F1 90 00"}, "DME"),
            ):
                async with s.post(
                    page.base + "/api/jobs",
                    json={"kind": kind, "params": params, "ecu": ecu},
                    headers={"X-CSRF-Token": csrf},
                ) as r:
                    body = await r.json()
                    assert r.status == 507, (kind, body)
                    assert body["error"] == "storage_error"
                    assert "not started" in body["message"] and "Free space" in body["hint"]
            assert sorted(page.gateway.runner.jobs) == jobs_before
            # a read does not need the record and still runs; the VIN still follows it
            async with s.post(
                page.base + "/api/jobs", json={"kind": "identify"}, headers={"X-CSRF-Token": csrf}
            ) as r:
                assert r.status == 202
                job_id = (await r.json())["id"]
            for _ in range(200):
                if page.gateway.runner.jobs[job_id].state.value in ("done", "failed"):
                    break
                await asyncio.sleep(0.05)
            assert page.gateway.runner.jobs[job_id].state.value == "done"
            assert page.gateway.vehicle_state()["vin"] == "WBAJA71090B123456"
            filler.unlink()  # space again: the same job is taken
            async with s.post(
                page.base + "/api/jobs",
                json={"kind": "clear_fault_memory"},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                assert r.status == 202

    page.loop.run_until_complete(go())


def test_pairing_on_a_full_disk_counts_wrong_codes_and_answers_clearly(
    small_disk_server, small_disk
) -> None:
    page = small_disk_server

    async def go() -> None:
        async with tablet() as s:
            async with s.post(page.base + "/api/pair", json={"name": "t"}) as r:
                req = await r.json()
            filler = fill(small_disk)
            for _ in range(3):  # max_code_attempts of the fixture
                async with s.post(
                    page.base + f"/api/pair/{req['id']}/code", json={"code": "WRONG9"}
                ) as r:
                    body = await r.json()
                    assert r.status == 403 and "wrong code" in body["message"], body
            async with s.post(page.base + f"/api/pair/{req['id']}/code", json={"code": CODE}) as r:
                assert r.status == 403 and "too many wrong codes" in (await r.json())["message"]
            # the button still pairs, but the session cannot be stored while the disk is full
            async with s.post(
                page.base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
            ) as r:
                assert r.status == 202
            page.pairing.press_button(page.clock.now())
            async with s.post(
                page.base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
            ) as r:
                body = await r.json()
                assert r.status == 507 and body["error"] == "storage_error", body
            filler.unlink()
            async with s.post(
                page.base + f"/api/pair/{req['id']}/collect", json={"claim": req["claim"]}
            ) as r:
                assert r.status == 200

    page.loop.run_until_complete(go())
