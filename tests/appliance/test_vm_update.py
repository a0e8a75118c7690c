"""Signed A/B updates in the booted box (docs/update.md): the disk image booted through OVMF and
GRUB (RAUC's A/B scheme), bundles from a "USB stick" installed with ``vci update install``.

The tests run in order on one VM, each starting from the state the one before left:
  1. a bundle signed under another CA is refused, nothing changes;
  2. GRUB told to try the still empty slot B cannot load it, reboots (no prompt) and starts A;
  3. a good bundle goes into slot B, boots on trial, the health check marks it good; the
     gateway's state (a file in /var/lib/vci) is still there;
  4. an unhealthy bundle (its gateway exits at once) goes into slot A, boots on trial, is
     never marked good: the health check marks it bad and reboots, GRUB starts slot B again;
  5. a power cut (QEMU killed) while a bundle is being written leaves slot B running.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.conftest import (
    REBOOT_TIMEOUT,
    VCI,
    Vm,
    rauc_status,
    reboot,
    record,
    release_keys,
    running,
    version,
    wait_healthy,
)
from tests.appliance.update_bundles import GOOD_VERSION, UNHEALTHY_VERSION, make_stick


@pytest.fixture(scope="module")
def update_vm(appliance_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vm]:
    work = tmp_path_factory.mktemp("update")
    import time

    t0 = time.monotonic()
    stick, sizes = make_stick(appliance_image.parent, release_keys(), work)
    record("update: bundles made (image/bundle --fast, 2 bundles + 1 re-signed)",
           time.monotonic() - t0)  # fmt: skip
    for name, size in sizes.items():
        print(f"appliance: bundle {name}: {size / 2**20:.0f} MiB", flush=True)
    # three slots written by RAUC (good, unhealthy, the one cut by the power cut)
    machine = Vm(appliance_image, work, efi=True, stick=stick, disk_gib=4.0)
    try:
        with running(machine, "update: boot through OVMF + GRUB to the test agent"):
            yield machine
    finally:
        stick.unlink(missing_ok=True)  # 900 MB of bundles


GRUBENV = "/boot/efi/EFI/BOOT/grubenv"
"""GRUB's A/B state (image/grub.cfg), edited by RAUC"""
STICK = "mountpoint -q /run/stick || { mkdir -p /run/stick && mount -o ro /dev/vdb /run/stick; }"
"""the "USB stick" mounted (again after a reboot)"""


def install(vm: Vm, bundle: str) -> str:
    vm.check(STICK)
    result = vm.run(f"{VCI} update install /run/stick/{bundle}", 900)
    return f"rc={result.rc}\n{result.out}\n{result.err}"


def test_first_boot_is_slot_a_marked_good(update_vm: Vm) -> None:
    vm = update_vm
    with vm.timed("update: first boot healthy, slot A marked good"):
        wait_healthy(vm)
    status = rauc_status(vm)
    assert status["_"]["booted"] == "A"
    assert status["A"]["boot_status"] == "good"
    assert "A_TRY=0" in vm.check(f"grub-editenv {GRUBENV} list")
    # the root is read-only; the state is on the data partition
    assert vm.run("touch /usr/probe").rc != 0
    assert vm.check("findmnt -n -o SOURCE /data").strip() == "/dev/vda4"
    assert vm.check("findmnt -n -o TARGET /var/lib/vci").strip() == "/var/lib/vci"


def test_bundle_signed_by_another_key_is_refused(update_vm: Vm) -> None:
    vm = update_vm
    with vm.timed("update: bundle under another CA refused"):
        out = install(vm, "other.raucb")
    assert out.startswith("rc=2"), out
    assert "signature does not verify" in out, out
    status = rauc_status(vm)
    assert status["_"]["primary"] == "A" and status["B"]["boot_status"] == "bad"


def test_a_slot_that_cannot_be_started_is_skipped(update_vm: Vm) -> None:
    """GRUB told to try a slot it cannot load (slot B is still empty here: no file system, no
    kernel) reboots by itself instead of waiting at its prompt (a box has no keyboard), and on
    the next start marks that slot bad and boots the other."""
    vm = update_vm
    assert rauc_status(vm)["_"]["booted"] == "A"
    vm.check(f"grub-editenv {GRUBENV} set 'ORDER=B A' B_OK=1 B_TRY=0")
    with vm.timed("update: empty slot B tried -> GRUB reboots -> slot A"):
        reboot(vm)
        wait_healthy(vm)  # slot A started on trial again: the health check marks it good
    assert "vci: slot B could not be started" in vm.console.read_text(errors="replace")
    env = vm.check(f"grub-editenv {GRUBENV} list")
    assert "B_OK=0" in env and "A_TRY=0" in env, env
    status = rauc_status(vm)
    assert status["_"]["booted"] == "A" and status["A"]["boot_status"] == "good"
    vm.check(f"grub-editenv {GRUBENV} set 'ORDER=A B'")  # as the image left it


def test_good_bundle_installs_boots_on_trial_and_is_kept(update_vm: Vm) -> None:
    vm = update_vm
    token = secrets.token_hex(8)
    vm.check(f"echo {token} > /var/lib/vci/update-probe && sync")
    with vm.timed("update: vci update install good.raucb (into slot B)"):
        out = install(vm, "good.raucb")
    assert out.startswith("rc=0"), out
    assert f"installed version {GOOD_VERSION} into rootfs.1" in out, out
    assert rauc_status(vm)["_"]["primary"] == "B"
    with vm.timed("update: reboot into slot B (OVMF + GRUB)"):
        reboot(vm)
    with vm.timed("update: slot B healthy and marked good"):
        wait_healthy(vm)
    assert version(vm) == GOOD_VERSION
    status = rauc_status(vm)
    assert status["_"]["booted"] == "B"
    assert status["B"]["boot_status"] == "good" and status["B"]["version"] == GOOD_VERSION
    assert status["A"]["boot_status"] == "good"
    assert vm.check("cat /var/lib/vci/update-probe").strip() == token
    assert vm.check("systemctl show -p SubState --value vci-gateway").strip() == "running"


def test_unhealthy_bundle_is_rolled_back_by_itself(update_vm: Vm) -> None:
    vm = update_vm
    assert version(vm) == GOOD_VERSION
    with vm.timed("update: vci update install unhealthy.raucb (into slot A)"):
        out = install(vm, "unhealthy.raucb")
    assert out.startswith("rc=0"), out
    old = vm.boot_id()
    vm.run("systemctl reboot", 10)
    # slot A boots on trial, its gateway never becomes ready, the health check gives up,
    # marks A bad and reboots; GRUB then starts B: two reboots
    with vm.timed("update: reboot into unhealthy slot A on trial"):
        vm.wait_reboot(old, REBOOT_TIMEOUT)
    first = vm.boot_id()
    trial_version = vm.run("cat /etc/vci/release").out.strip()
    with vm.timed("update: health check gives up -> fallback to slot B, healthy"):
        vm.wait_reboot(first, REBOOT_TIMEOUT + 120)
        wait_healthy(vm)
    assert trial_version == UNHEALTHY_VERSION
    assert version(vm) == GOOD_VERSION
    status = rauc_status(vm)
    assert status["_"]["booted"] == "B"
    assert status["A"]["boot_status"] == "bad" and status["B"]["boot_status"] == "good"
    journal = vm.check("journalctl -b -1 -u vci-health -o cat --no-pager")
    assert "not healthy" in journal and "marking slot A bad" in journal, journal


def test_power_cut_during_installation_keeps_the_running_version(update_vm: Vm) -> None:
    vm = update_vm
    vm.check(STICK)
    vm.check(f"setsid {VCI} update install /run/stick/unhealthy.raucb >/tmp/install.log 2>&1 &")
    # cut the power while RAUC writes slot A (its progress past the checks, below 100 %)
    vm.wait_for(
        "busctl get-property de.pengutronix.rauc / de.pengutronix.rauc.Installer Progress "
        "| grep -q 'Copying image'",
        120,
        "RAUC writing the slot",
    )
    vm.kill()
    with vm.timed("update: power cut during install -> boot again"):
        record("update: boot after the power cut (OVMF + GRUB)", vm.start())
        wait_healthy(vm)
    assert version(vm) == GOOD_VERSION
    status = rauc_status(vm)
    assert status["_"]["booted"] == "B" and status["B"]["boot_status"] == "good"
