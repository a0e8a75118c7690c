"""Power cuts in the middle of programming: the flashing process is SIGKILLed once in each
distinct part of a flash (``step_cut_points``: before the journal, the set-up, the erase, three
places in the transfer, each check, the reset, after it); ``vci flash --resume`` must finish
every one of them, verified. And a battery that sags during the transfer stops the flash at a
safe point."""

from __future__ import annotations

import json
import time

import pytest

from firmware_py.config import TransportConfig
from firmware_py.gateway.flash_journal import FlashJournal
from firmware_py.gateway.store import Store
from firmware_py.keys import load_public_keys
from firmware_py.sim.runtime import SimOptions, SimulatedVehicle
from firmware_py.sim.vehicle import load_vehicle
from firmware_py.uds.flash.package import load_package_file
from firmware_py.uds.flash.sequencer import FlashError, FlashOptions, Sequencer
from firmware_py.uds.vehicle import VehicleSession
from tests.flash.conftest import flash_cut_after, image, sha, step_cut_points

REGION = 1024 * 1024


def test_sigkill_in_every_part_of_a_flash_and_resume(flash_box, publisher, start_sim) -> None:
    sim = start_sim("--battery", "13.6")
    data = image("12.05.00", 256 * 1024)
    # 1 KiB blocks: 257 of them, so that the transfer is long enough to be cut in the middle
    pkg = publisher.package(
        "egs.vcipkg", "EGS", 0x18, "12.05.00", data, expects=("12.04.00",), max_block=0x402
    )
    expected = sha(data + b"\xff" * (REGION - len(data)))
    resumed, where_killed = 0, []
    seen_jobs: set[str] = set()

    # one whole flash first: the cuts are spread over its time
    def fresh_vehicle() -> None:
        sim.reset()
        sim.set_battery(13.6)
        sim.inject(ecu="EGS", delay=0.003)  # an ECU that takes 3 ms per answer (writing its flash)

    fresh_vehicle()
    started = time.monotonic()
    first = flash_box.vci("--json", "flash", str(pkg), *sim.cli_args("doip"), timeout=120)
    span = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-2000:]
    seen_jobs.update(
        r["job_id"] for r in json.loads(flash_box.vci("--json", "flash", "--status").stdout)
    )
    # One cut per place that resumes differently (the resume's start follows from the journal's
    # step: Plan.resume_index): 20 random cuts fell mostly in the transfer, a repetition of the
    # same path; three transfer cuts keep its start, middle and end.
    points = step_cut_points(first.stdout)
    assert len(points) >= 9, points
    for point in points:
        fresh_vehicle()
        # the power cut
        lines = flash_cut_after([str(pkg), *sim.cli_args("doip")], point)
        steps = [
            json.loads(line).get("step")
            for line in lines
            if line.startswith("{") and '"job.step"' in line
        ]
        where_killed.append(steps[-1] if steps else "starting")
        records = [
            r
            for r in json.loads(flash_box.vci("--json", "flash", "--status").stdout)
            if r["job_id"] not in seen_jobs
        ]
        if records and records[0]["blocks"]:
            where_killed[-1] += f" (block {records[0]['blocks']})"
        if records and records[0]["state"] != "done":
            done = flash_box.vci("--json", "flash", "--resume", *sim.cli_args("doip"), timeout=120)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        elif (
            not records
        ):  # killed before the journal began: nothing was changed, flash from the start
            done = flash_box.vci("--json", "flash", str(pkg), *sim.cli_args("doip"), timeout=120)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        # else: killed after the journal recorded the verified end; nothing to do
        seen_jobs.update(
            r["job_id"] for r in json.loads(flash_box.vci("--json", "flash", "--status").stdout)
        )
        egs = sim.state()["ecus"]["EGS"]
        assert (
            egs["region"]["sha256"] == expected
            and egs["region"]["valid"]
            and egs["sw_version"] == "12.05.00"
        )
        resumed += 1
    print(
        f"\nresumed {resumed}/{len(points)}; a flash takes {span:.2f} s; killed during: {', '.join(where_killed)}"
    )
    assert resumed == len(points)
    phases = {w.split(" (")[0] for w in where_killed}
    # before anything was changed, set-up, erase, transfer, checks, reset (a loaded machine may
    # let a short step's cut land in the next one)
    assert len(phases) >= 5, where_killed
    assert sum(w.startswith("download") for w in where_killed) >= 2, where_killed


def test_a_sagging_battery_stops_at_a_safe_point_and_resume_finishes(tmp_path, publisher) -> None:
    options = SimOptions(doip_port=0, can_interface=None, announce_to=None, control_port=None)
    data = image("12.05.00", 128 * 1024)
    pkg_path = publisher.package("egs.vcipkg", "EGS", 0x18, "12.05.00", data, max_block=0x402)
    package = load_package_file(pkg_path, load_public_keys(publisher.trust))
    with SimulatedVehicle(load_vehicle(), options) as vehicle:
        vehicle.inject(battery=13.8)
        session = VehicleSession.open(TransportConfig(doip_port=vehicle.doip_port), "doip")
        journal = FlashJournal(Store(tmp_path / "state"))
        journal.begin(
            "job-1",
            [
                {
                    "path": str(pkg_path),
                    "sha256": package.sha256,
                    "ecu": "EGS",
                    "version": "12.05.00",
                }
            ],
        )
        readings = []

        def battery() -> float:
            volts = session.supply_voltage()
            readings.append(volts)
            if len(readings) == 3:
                vehicle.inject(battery=11.4)  # the charger falls off during the transfer
            return volts

        clock = iter(range(10**6))
        seq = Sequencer(
            session.ecu(0x18),
            package,
            journal=journal,
            job_id="job-1",
            voltage=battery,
            clock=lambda: float(next(clock)),
            options=FlashOptions(voltage_interval=10),
        )
        with pytest.raises(FlashError, match="battery voltage fell to 11.4 V") as info:
            seq.run()
        assert "charger" in (info.value.hint or "")
        record = journal.get("job-1")
        assert record is not None and record.step_name == "download segment 1" and record.blocks
        assert not vehicle.state()["ecus"]["EGS"]["region"]["valid"]
        vehicle.inject(battery=13.8)
        again = Sequencer(
            session.ecu(0x18),
            package,
            journal=journal,
            job_id="job-1",
            voltage=session.supply_voltage,
        )
        result = again.run(record.step_index)
        assert result["resumed_from"] == 0  # the segment starts again from its erase
        assert vehicle.state()["ecus"]["EGS"]["region"]["sha256"] == sha(
            data + b"\xff" * (REGION - len(data))
        )
        session.close()
    time.sleep(0)
