"""Programming end to end: the real ``vci flash`` against ``vci sim`` in its own process, over
DoIP and CAN; refusals before anything is erased; faults during the transfer; coding."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import TRANSPORTS, start_gateway_process
from tests.flash.conftest import image, sha

EGS, DSC = 0x18, 0x29
REGION_SIZE = 1024 * 1024  # the simulated EGS's and DSC's flash region


def region_sha(data: bytes) -> str:
    """SHA-256 of a 1 MiB region holding ``data`` at its start and erased flash (0xFF) after it."""
    return sha(data + b"\xff" * (REGION_SIZE - len(data)))


@pytest.fixture
def sim(start_sim):
    return start_sim("--battery", "13.6")


def flash(box, sim, *args: str, transport: str = "doip", timeout: float = 120):
    return box.vci("--json", "flash", *args, *sim.cli_args(transport), timeout=timeout)


def events(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_one_mebibyte_over_enet_with_counter_wrap(flash_box, publisher, sim, enet) -> None:
    data = image("12.05.00", 1024 * 1024)
    # blocks of 4094 data bytes (0x1000 with SID and counter): 257 blocks, the counter wraps 0xFF -> 0x00
    pkg = publisher.package(
        "egs.vcipkg",
        "EGS",
        EGS,
        "12.05.00",
        data,
        expects=("12.04.00",),
        hw="8699100",
        max_block=0x1000,
    )
    proc = flash(flash_box, sim, str(pkg), transport=enet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ev = events(proc)
    steps = [e["step"] for e in ev if e["kind"] == "job.step"]
    for expected in (
        "extended session",
        "programming session",
        "security access",
        "erase segment 1",
        "download segment 1",
        "check memory segment 1",
        "check programming dependencies",
        "ECU reset",
        "verify software version",
    ):
        assert expected in steps
    progress = [e for e in ev if e["kind"] == "job.progress"]
    assert progress[-1]["percent"] == 100.0 and progress[-1]["bytes"] == len(data)
    assert all(k in progress[0] for k in ("rate", "time_left", "total"))
    done = [e for e in ev if e["kind"] == "job.done"][-1]["result"]["packages"][0]
    assert done["bytes"] == len(data) and -(-len(data) // 4094) == 257
    egs = sim.state()["ecus"]["EGS"]
    assert (
        egs["region"]["sha256"] == sha(data)
        and egs["region"]["valid"]
        and egs["sw_version"] == "12.05.00"
    )
    assert egs["session"] == 0x01


def test_256_kib_over_can_with_counter_wrap(flash_box, publisher, sim) -> None:
    data = image("08.03.00", 256 * 1024)
    pkg = publisher.package(
        "dsc.vcipkg", "DSC", DSC, "08.03.00", data, fmt="srec", max_block=0x402
    )  # 1 KiB blocks: 257 blocks
    proc = flash(flash_box, sim, str(pkg), transport="can")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dsc = sim.state()["ecus"]["DSC"]
    assert (
        dsc["region"]["sha256"] == region_sha(data)
        and dsc["region"]["valid"]
        and dsc["sw_version"] == "08.03.00"
    )


@pytest.fixture
def untouched(sim):
    before = sim.state()["ecus"]["EGS"]

    def check() -> None:
        after = sim.state()["ecus"]["EGS"]
        assert after["region"] == before["region"] and after["sw_version"] == before["sw_version"]

    return check


def damaged(path, offset_from_end: int = 200):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda p: p.package(
                "a.vcipkg", "EGS", EGS, "12.05.00", image("12.05.00", 8192), fmt="bin"
            ),
            "the image is damaged|does not match|damaged",
        ),
        (
            lambda p: p.package(
                "b.vcipkg", "EGS", EGS, "12.05.00", image("12.05.00", 8192), expects=("99.99.99",)
            ),
            "updates only 99.99.99",
        ),
        (
            lambda p: p.package(
                "c.vcipkg", "EGS", EGS, "12.05.00", image("12.05.00", 8192), hw="1234567"
            ),
            "needs 1234567",
        ),
    ],
    ids=["flipped-bit-in-data", "wrong-version", "wrong-hardware"],
)
def test_refused_before_anything_is_erased(
    flash_box, publisher, sim, untouched, make, words
) -> None:
    import re

    pkg = make(publisher)
    if "a.vcipkg" in str(pkg):
        damaged(pkg)
    proc = flash(flash_box, sim, str(pkg))
    assert proc.returncode == 2
    text = proc.stdout + proc.stderr
    assert re.search(words, text), text
    untouched()


def test_refused_for_an_unknown_publisher(
    flash_box, publisher, sim, untouched, tmp_path, monkeypatch
) -> None:
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", image("12.05.00", 8192))
    empty = tmp_path / "no-keys"
    empty.mkdir()
    monkeypatch.setenv("VCI_SECURITY_PUBLISHER_KEYS_DIR", str(empty))
    proc = flash(flash_box, sim, str(pkg))
    assert proc.returncode == 2 and "does not trust" in proc.stdout + proc.stderr
    untouched()


def test_refused_for_another_ecu(flash_box, publisher, sim, untouched) -> None:
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", image("12.05.00", 8192))
    proc = flash(flash_box, sim, str(pkg), "--ecu", "DSC")
    assert proc.returncode == 2 and "the package is for EGS, not DSC" in proc.stdout + proc.stderr
    untouched()


def test_refused_at_low_voltage(flash_box, publisher, sim, untouched) -> None:
    sim.set_battery(12.0)
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", image("12.05.00", 8192))
    proc = flash(flash_box, sim, str(pkg))
    assert proc.returncode == 2
    err = json.loads(proc.stdout.splitlines()[-1])
    assert "battery voltage 12.0 V is below 13.0 V" in err["message"] and "charger" in err["hint"]
    untouched()


def test_response_pending_during_erase(flash_box, publisher, sim) -> None:
    sim.inject(ecu="EGS", pending=6)  # 8 x "response pending", 0.3 s apart, during the erase
    data = image("12.05.00", 16384)
    proc = flash(flash_box, sim, str(publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", data)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sim.state()["ecus"]["EGS"]["region"]["sha256"] == region_sha(data)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_ecu_answering_response_pending_for_ever_ends_the_flash_at_the_deadline(
    flash_box, publisher, sim, monkeypatch, transport: str
) -> None:
    """Every request has an overall deadline, "response pending" included: the job stops with a
    clear error and the journal lets it resume (before: vci flash hung for ever)."""
    monkeypatch.setenv("VCI_UDS_LONG_REQUEST_DEADLINE", "2")
    sim.inject(ecu="EGS", pending_forever=["0x36"])
    data = image("12.05.00", 16384)
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", data)
    proc = flash(flash_box, sim, str(pkg), transport=transport, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = json.loads(proc.stdout.splitlines()[-1])
    assert "response pending" in err["message"] and "2 s" in err["message"], err
    assert "block 1 of" in err["message"] and "vci flash --resume" in err["hint"], err
    status = json.loads(flash_box.vci("--json", "flash", "--status").stdout)[0]
    assert status["state"] == "stopped"


def test_a_lost_frame_times_out_one_block_which_is_sent_again(flash_box, publisher, sim) -> None:
    data = image("08.03.00", 32 * 1024)
    pkg = publisher.package("dsc.vcipkg", "DSC", DSC, "08.03.00", data, max_block=0x402)
    sim.inject(drop_can_frame={"0x6F1": 600})  # a consecutive frame in the middle of the transfer
    proc = flash(flash_box, sim, str(pkg), transport="can")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sending it again" in proc.stdout + proc.stderr
    assert sim.state()["ecus"]["DSC"]["region"]["sha256"] == region_sha(data)


def test_an_enet_connection_reset_mid_transfer(flash_box, publisher, sim, enet) -> None:
    data = image("12.05.00", 64 * 1024)
    sim.inject(doip_reset_on_transfer=True)  # the gateway resets the TCP connection (DoIP or HSFZ)
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", data)
    proc = flash(flash_box, sim, str(pkg), transport=enet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sim.state()["ecus"]["EGS"]["region"]["sha256"] == region_sha(data)


def test_an_ecu_that_resets_itself_mid_transfer_then_resume(
    flash_box, publisher, sim, enet
) -> None:
    data = image("12.05.00", 256 * 1024)
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", data)
    sim.inject(ecu="EGS", reset_after_blocks=20)
    proc = flash(flash_box, sim, str(pkg), transport=enet)
    assert proc.returncode == 2
    err = json.loads(proc.stdout.splitlines()[-1])
    assert "lost the transfer" in err["message"] and "block 20 of 64" in err["message"]
    assert "vci flash --resume" in err["hint"] and "download segment 1" in err["hint"]
    status = json.loads(flash_box.vci("--json", "flash", "--status").stdout)[0]
    assert status["state"] == "stopped" and status["blocks"] is not None
    assert not sim.state()["ecus"]["EGS"]["region"]["valid"]
    resumed = flash(flash_box, sim, "--resume", transport=enet)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    egs = sim.state()["ecus"]["EGS"]
    assert (
        egs["region"]["sha256"] == region_sha(data)
        and egs["region"]["valid"]
        and egs["sw_version"] == "12.05.00"
    )
    assert json.loads(flash_box.vci("--json", "flash", "--status").stdout)[0]["state"] == "done"


def test_whole_vehicle_plan_in_order(flash_box, publisher, sim) -> None:
    egs_data, dsc_data = image("12.05.00", 20000), image("08.03.00", 30000)
    egs = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", egs_data)
    dsc = publisher.package("dsc.vcipkg", "DSC", DSC, "08.03.00", dsc_data)
    proc = flash(flash_box, sim, str(egs), str(dsc))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [e["step"] for e in events(proc) if e["kind"] == "job.step"]
    assert steps.index("EGS: programming 12.05.00") < steps.index("DSC: programming 08.03.00")
    state = sim.state()["ecus"]
    assert state["EGS"]["region"]["sha256"] == region_sha(egs_data) and state["DSC"]["region"][
        "sha256"
    ] == region_sha(dsc_data)


def test_flashing_needs_a_ticket(box, publisher, sim, monkeypatch) -> None:
    monkeypatch.setenv("VCI_SECURITY_PUBLISHER_KEYS_DIR", str(publisher.trust))
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", image("12.05.00", 8192))
    proc = box.vci("--json", "flash", str(pkg), *sim.cli_args("doip"))
    assert (
        proc.returncode == 2 and json.loads(proc.stdout.splitlines()[-1])["error"] == "not_entitled"
    )


def test_coding_change_verify_and_restore(flash_box, sim, enet) -> None:
    flags = sim.cli_args(enet)
    before = sim.state()["ecus"]["BDC"]["coding"]
    read = json.loads(flash_box.vci("--json", "coding", "read", "--ecu", "BDC", *flags).stdout)
    assert (
        read["before"]["daytime_running_lights"] == "on"
        and read["before"]["welcome_light_seconds"] == 60
    )
    changed = flash_box.vci(
        "--json",
        "coding",
        "set",
        "--ecu",
        "BDC",
        "daytime_running_lights=off",
        "welcome_light_seconds=30",
        *flags,
    )
    assert changed.returncode == 0, changed.stdout + changed.stderr
    result = json.loads(changed.stdout)
    assert (
        result["verified"]
        and result["after"]["daytime_running_lights"] == "off"
        and result["after"]["welcome_light_seconds"] == 30
    )
    coded = sim.state()["ecus"]["BDC"]["coding"]
    assert coded != before and coded[:2] == "00" and coded[8:10] == "1e"
    bad = flash_box.vci("coding", "set", "--ecu", "BDC", "daytime_running_lights=maybe", *flags)
    assert bad.returncode == 2 and "Use one of: off, on" in bad.stderr
    assert sim.state()["ecus"]["BDC"]["coding"] == coded  # nothing written
    restored = flash_box.vci("--json", "coding", "restore", "--ecu", "BDC", *flags)
    assert restored.returncode == 0, restored.stderr
    assert sim.state()["ecus"]["BDC"]["coding"] == before


def test_the_gateway_finishes_an_interrupted_flash_at_start_up(flash_box, publisher, sim) -> None:
    data = image("12.05.00", 64 * 1024)
    pkg = publisher.package("egs.vcipkg", "EGS", EGS, "12.05.00", data)
    sim.inject(ecu="EGS", reset_after_blocks=5)
    assert flash(flash_box, sim, str(pkg)).returncode == 2
    with start_gateway_process(["--resume-flash", *sim.cli_args("doip")]) as gateway:
        gateway.output.wait_for("resuming interrupted programming job", 10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not sim.state()["ecus"]["EGS"]["region"]["valid"]:
            time.sleep(0.2)
        egs = sim.state()["ecus"]["EGS"]
        assert (
            egs["region"]["valid"]
            and egs["region"]["sha256"] == region_sha(data)
            and egs["sw_version"] == "12.05.00"
        )
