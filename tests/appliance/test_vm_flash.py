"""A power cut of the gateway in the middle of programming, as the box meets it: a tablet on the
page starts a flash of the car's EGS (a car in the network namespace ``car`` on the ENET veth,
``vci sim``), and while the transfer runs ``systemctl kill -s KILL`` ends the gateway at once.
systemd restarts it (``Restart=always``), ``--resume-flash`` finishes the job from the flash
journal, and the ECU ends valid with the new software. The portal key, the publisher key, the
ticket and the package are TEST material made here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from firmware_py.keys import load_private_key
from firmware_py.uds.flash.package import SequenceParams, build_package
from portal import keys, tickets
from tests.appliance.conftest import VCI, Vm, put
from tests.flash.conftest import EGS_REGION, image

UNIT = "vci-gateway.service"
REGION = 1024 * 1024
CONTROL = "http://127.0.0.1:8099"
"""the simulated car's control API, in the car's namespace"""


def car_state(vm: Vm) -> dict:
    return dict(json.loads(vm.check(f"ip netns exec car curl -s --max-time 10 {CONTROL}/state")))


def unit(vm: Vm, prop: str) -> str:
    return vm.check(f"systemctl show -p {prop} --value {UNIT}").strip()


def test_a_flash_killed_with_the_gateway_is_finished_after_the_restart(
    enet_vm: Vm, tmp_path: Path
) -> None:
    vm = enet_vm
    # the trust the box's configuration names (/etc/vci/portal-keys, /etc/vci/publisher-keys)
    keys.generate(tmp_path / "portal", "test-portal")
    keys.generate(tmp_path / "publisher", "test-publisher")
    vm.check("mkdir -p -m 0755 /etc/vci/portal-keys /etc/vci/publisher-keys")
    put(vm, "/etc/vci/portal-keys/test-portal.pub",
        (tmp_path / "portal/test-portal.pub").read_bytes())  # fmt: skip
    put(vm, "/etc/vci/publisher-keys/test-publisher.pub",
        (tmp_path / "publisher/test-publisher.pub").read_bytes())  # fmt: skip
    device = vm.check(
        "/opt/vci/venv/bin/python -c 'from firmware_py.config import device_id, load_config; "
        "print(device_id(load_config()))'"
    ).strip()
    kid, key = keys.load_signing_key(tmp_path / "portal")
    put(vm, "/tmp/ticket.txt", tickets.issue(key, kid, tariff="basic-1d", device=device).encode())
    data = image("12.05.00", 256 * 1024)
    pkid, pkey = load_private_key(tmp_path / "publisher" / "test-publisher.key")
    package = build_package(
        ecu_name="EGS", ecu_address=0x18, version="12.05.00", segments=[(EGS_REGION, data)],
        key=pkey, kid=pkid, sequence=SequenceParams(max_block_length=0x402),
    )  # fmt: skip
    put(vm, "/tmp/egs.vcipkg", package)
    script = Path(__file__).with_name("vm_scripts") / "tablet_flash.py"
    put(vm, "/tmp/tablet_flash.py", script.read_bytes())

    # the car: its EGS takes 20 ms per answer (writing its flash), so the transfer lasts
    vm.start_sim(
        "flash-car", "--host", "0.0.0.0", "--no-can", "--control-port", "8099",
        "--announce-to", "", "--fault", "battery=13.6", "--fault", "delay:EGS=0.02",
        netns="car",
    )  # fmt: skip
    try:
        vm.check(f"systemctl restart {UNIT}")  # reads the keys; finds the car by broadcast
        vm.wait_for(f'[ "$(systemctl show -p SubState --value {UNIT})" = running ]', 240, "READY")
        with vm.timed("check: tablet pairs and starts programming (page, ticket, package)"):
            started = vm.run(
                "python3 /tmp/tablet_flash.py http://192.168.73.1:8080 /tmp/ticket.txt "
                "/tmp/egs.vcipkg EGS 5 240",
                timeout=300,
            )
        assert started.rc == 0, started
        job = json.loads(started.out.strip().splitlines()[-1])
        before_pid, restarts = unit(vm, "MainPID"), int(unit(vm, "NRestarts"))
        vm.check(f"systemctl kill -s KILL {UNIT}")  # the power cut, in the transfer
        egs = car_state(vm)["ecus"]["EGS"]
        assert not egs["region"]["valid"], "the kill came after the flash had finished"
        with vm.timed("check: gateway killed in the transfer -> restart -> resumed, verified"):
            vm.wait_for(
                f'[ "$(systemctl show -p NRestarts --value {UNIT})" -gt {restarts} ]', 120,
                "systemd restarts the gateway",
            )  # fmt: skip
            vm.wait_for(
                f"journalctl -u {UNIT} -o cat --no-pager | grep -q 'resumed and verified'",
                300,
                "the restarted gateway resumes the flash",
            )
        assert unit(vm, "MainPID") != before_pid
        egs = car_state(vm)["ecus"]["EGS"]
        expected = hashlib.sha256(data + b"\xff" * (REGION - len(data))).hexdigest()
        assert egs["region"]["valid"] and egs["sw_version"] == "12.05.00"
        assert egs["region"]["sha256"] == expected
        journal = vm.check(f"journalctl -u {UNIT} -o cat --no-pager | tail -n 300")
        assert f"programming job {job['id']} resumed and verified" in journal, journal
        status = json.loads(vm.check(f"runuser -u vci -- {VCI} --json flash --status"))
        assert all(r["state"] == "done" for r in status), status
    finally:
        vm.stop_sims()
        vm.run("rm -f /etc/vci/portal-keys/test-portal.pub "
               "/etc/vci/publisher-keys/test-publisher.pub")  # fmt: skip
