"""Parallel programming over one ENET connection (``vci flash --parallel``): three ECUs behind the
gateway at the same time over the one DoIP or HSFZ link, each with its own journal row; and power
cuts (SIGKILL) spread over such a flash, after which ``vci flash --resume`` finishes every ECU,
each region verified against its image."""

from __future__ import annotations

import json
import random
import time

import pytest

from firmware_py.gateway.job_params import check_params
from firmware_py.strict_json import StrictJsonError
from firmware_py.uds.flash.plan import ParallelRules, stages
from tests.flash.conftest import cut_point, flash_cut_after, image, sha, transfer_cut_point

REGION = 1024 * 1024
#: ECU, address, version before, version after (g30.toml: each has a 1 MiB region at 0x80000)
ECUS = (
    ("EGS", 0x18, "12.04.00", "12.05.00"),
    ("DSC", 0x29, "08.02.05", "08.03.00"),
    ("KOMBI", 0x60, "17.22.01", "17.23.00"),
)
KILLS = 10
TRANSFER_KILLS = 4
"""cuts placed in a transfer (the others are drawn over the whole flash's time, where a loaded
machine moves the share of the transfers)"""


def _packages(publisher, size: int) -> tuple[list[str], dict[str, str]]:
    paths, expected = [], {}
    for n, (ecu, address, before, after) in enumerate(ECUS):
        data = image(after, size, seed=n + 1)
        path = publisher.package(
            f"{ecu.lower()}.vcipkg", ecu, address, after, data, expects=(before,), max_block=0x402
        )
        paths.append(str(path))
        expected[ecu] = sha(data + b"\xff" * (REGION - len(data)))
    return paths, expected


def _verified(sim, expected: dict[str, str]) -> bool:
    ecus = sim.state()["ecus"]
    return all(
        ecus[ecu]["region"]["sha256"] == expected[ecu]
        and ecus[ecu]["region"]["valid"]
        and ecus[ecu]["sw_version"] == after
        for ecu, _, _, after in ECUS
    )


def _fresh(sim, delay: float) -> None:
    sim.reset()
    sim.set_battery(13.6)
    for ecu, *_ in ECUS:
        sim.inject(ecu=ecu, delay=delay)  # an ECU that takes a while per answer (writing flash)


def test_the_plan_runs_ecus_behind_the_gateway_together_and_can_ecus_in_turn() -> None:
    rules = ParallelRules(alone=(0x10,))
    addresses = [0x18, 0x29, 0x10, 0x60, 0x60]
    assert stages(addresses, link_kind="doip", parallel=True, rules=rules) == [
        [0, 1],
        [2],  # the gateway alone: its reset drops everyone's connection
        [3],
        [4],  # two packages for one ECU: in the order given
    ]
    assert stages(addresses, link_kind="can", parallel=True, rules=rules) == [[i] for i in range(5)]
    assert stages(addresses, link_kind="hsfz", parallel=False, rules=rules) == [
        [i] for i in range(5)
    ]


def test_parallel_flash_of_three_ecus_over_one_link(flash_box, publisher, start_sim, enet) -> None:
    sim = start_sim("--battery", "13.6")
    paths, expected = _packages(publisher, 64 * 1024)
    _fresh(sim, 0.003)
    done = flash_box.vci("--json", "flash", *paths, "--parallel", *sim.cli_args(enet), timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    progress = [e for e in events if e.get("kind") == "job.progress"]
    assert {e["ecu"] for e in progress} == {"EGS", "DSC", "KOMBI"}
    # they ran together: another ECU reported progress before the first one finished
    first_done = next(i for i, e in enumerate(progress) if e.get("percent") == 100.0)
    assert len({e["ecu"] for e in progress[: first_done + 1]}) >= 2
    result = events[-1]["result"]
    assert result["parallel"] and [p["ecu"] for p in result["packages"]] == ["EGS", "DSC", "KOMBI"]
    assert _verified(sim, expected)
    rows = json.loads(flash_box.vci("--json", "flash", "--status").stdout)
    assert sorted(r["packages"][0]["ecu"] for r in rows if r["state"] == "done") == [
        "DSC",
        "EGS",
        "KOMBI",
    ]


def test_sigkill_during_a_parallel_flash_and_resume_finishes_every_ecu(
    flash_box, publisher, start_sim, enet
) -> None:
    sim = start_sim("--battery", "13.6")
    paths, expected = _packages(publisher, 64 * 1024)
    rng = random.Random(20261128)
    _fresh(sim, 0.004)
    started = time.monotonic()
    first = flash_box.vci("--json", "flash", *paths, "--parallel", *sim.cli_args(enet), timeout=120)
    span = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-2000:]
    seen = {r["job_id"] for r in json.loads(flash_box.vci("--json", "flash", "--status").stdout)}
    resumed, where_killed = 0, []
    for kill in range(KILLS):
        _fresh(sim, 0.004)
        # the power cut: the first ones in the transfers (where most of a real flash's time goes),
        # the others anywhere in the flash
        point = (
            transfer_cut_point(first.stdout, rng)
            if kill < TRANSFER_KILLS
            else cut_point(first.stdout, rng)
        )
        flash_cut_after([*paths, "--parallel", *sim.cli_args(enet)], point)
        rows = [
            r
            for r in json.loads(flash_box.vci("--json", "flash", "--status").stdout)
            if r["job_id"] not in seen
        ]
        where_killed.append(
            ", ".join(
                f"{r['packages'][0]['ecu']} {r['state']} {r['step_name']}"
                + (f" block {r['blocks']}" if r["blocks"] else "")
                for r in sorted(rows, key=lambda r: r["job_id"])
            )
            or "before the journal"
        )
        if any(r["state"] != "done" for r in rows):
            done = flash_box.vci("--json", "flash", "--resume", *sim.cli_args(enet), timeout=120)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        elif not rows:  # killed before the journal began: nothing was changed
            done = flash_box.vci(
                "--json", "flash", *paths, "--parallel", *sim.cli_args(enet), timeout=120
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        after = json.loads(flash_box.vci("--json", "flash", "--status").stdout)
        assert all(r["state"] == "done" for r in after if r["job_id"] not in seen), after
        seen.update(r["job_id"] for r in after)
        assert _verified(sim, expected), where_killed[-1]
        resumed += 1
    print(f"\nresumed {resumed}/{KILLS} ({enet}); a parallel flash of 3 ECUs takes {span:.2f} s")
    print("killed during:\n  " + "\n  ".join(where_killed))
    assert resumed == KILLS
    assert sum("download" in w for w in where_killed) >= TRANSFER_KILLS


def test_the_programming_job_takes_a_parallel_flag() -> None:
    check_params("programming", {"packages": ["a.vcipkg", "b.vcipkg"], "parallel": True})
    check_params("programming", {"resume": True, "parallel": False})
    with pytest.raises(StrictJsonError):
        check_params("programming", {"packages": ["a.vcipkg"], "parallel": "yes"})


def test_one_ecu_failing_does_not_stop_the_others(flash_box, publisher, start_sim) -> None:
    sim = start_sim("--battery", "13.6")
    paths, expected = _packages(publisher, 64 * 1024)
    # the DSC's package is for software it does not have: refused before anything is erased
    data = image("08.03.00", 64 * 1024, seed=2)
    paths[1] = str(
        publisher.package("dsc.vcipkg", "DSC", 0x29, "08.03.00", data, expects=("01.00.00",))
    )
    _fresh(sim, 0.003)
    done = flash_box.vci("--json", "flash", *paths, "--parallel", *sim.cli_args("doip"))
    assert done.returncode == 2
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert "1 of 3 ECUs not programmed" in failed["message"]
    assert "EGS: verified" in failed["message"] and "KOMBI: verified" in failed["message"]
    assert "DSC: DSC has software 08.02.05" in failed["message"]
    ecus = sim.state()["ecus"]
    for ecu in ("EGS", "KOMBI"):
        assert ecus[ecu]["region"]["sha256"] == expected[ecu] and ecus[ecu]["region"]["valid"]
    assert ecus["DSC"]["sw_version"] == "08.02.05"
    rows = {
        r["packages"][0]["ecu"]: r["state"]
        for r in json.loads(flash_box.vci("--json", "flash", "--status").stdout)
    }
    assert rows == {"EGS": "done", "DSC": "refused", "KOMBI": "done"}


@pytest.mark.parametrize("params", [{"resume": ""}, {"resume": "x" * 65}, {"package": ""}])
def test_a_programming_job_names_packages_or_an_interrupted_job(params) -> None:
    """Refused with the parameters (before, an empty resume id passed and the job failed in the
    handler, which checked the names a second time)."""
    with pytest.raises(StrictJsonError):
        check_params("programming", params, local=True)
