"""The Raspberry Pi (arm64) image recipe checked where CI runs, without building it (a full build
under qemu-user takes most of an hour on CI's machines): ``image/build --arch arm64 --dry-run``
prints the plan (image/pi.py), and the plan is what the real build writes (the build compares
raspi-firmware's config.txt and cmdline.txt with it and stops on a difference).

Checked here: the packages (Debian's kernel and Raspberry Pi firmware, the box's packages), the
initramfs deferred to one run (the hooks' shell parses, the divert is undone before the run),
config.txt with image/config.txt's lines, cmdline.txt with the root by PARTUUID and the serial
console, fstab and cmdline agreeing with the partition table, and the table itself written to a
file and read back by sfdisk (``--verify``, ``--json``).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "image/build"


@pytest.fixture(scope="module")
def plan() -> dict[str, str]:
    """The dry run's sections, by heading (``## name``)."""
    out = subprocess.run(
        [sys.executable, str(BUILD), "--arch", "arm64", "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    sections: dict[str, str] = {}
    name = ""
    for line in out.splitlines():
        if line.startswith("## "):
            name = line[3:]
            sections[name] = ""
        elif name:
            sections[name] += line + "\n"
    return sections


def section(plan: dict[str, str], prefix: str) -> str:
    (key,) = [k for k in plan if k.startswith(prefix)]
    return plan[key]


def mmdebstrap_argv(plan: dict[str, str]) -> list[str]:
    return shlex.split(plan["mmdebstrap"])


def option(argv: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]


def test_packages_are_debians_pi_kernel_firmware_and_the_box(plan: dict[str, str]) -> None:
    argv = mmdebstrap_argv(plan)
    assert argv[0] == "mmdebstrap"
    assert option(argv, "architectures") == ["arm64"]
    assert "non-free-firmware" in option(argv, "components")[0].split(",")
    (include,) = option(argv, "include")
    packages = include.split(",")
    for wanted in ["linux-image-arm64", "raspi-firmware", "firmware-brcm80211", "python3-venv",
                   "hostapd", "nftables", "can-utils", "systemd-resolved", "dnsmasq-base"]:  # fmt: skip
        assert wanted in packages
    assert "linux-image-amd64" not in packages
    assert argv[-3:-1] == ["bookworm", "BASE.tar"]


def test_initramfs_is_deferred_to_one_run(plan: dict[str, str]) -> None:
    argv = mmdebstrap_argv(plan)
    (essential,) = option(argv, "essential-hook")
    (customize,) = option(argv, "customize-hook")
    for hook in (essential, customize):
        subprocess.run(["sh", "-n", "-c", hook], check=True)
    # during installation update-initramfs is diverted away and replaced by a no-op ...
    assert re.search(r"dpkg-divert .*--rename .*--add /usr/sbin/update-initramfs", essential)
    assert "update-initramfs -c" not in essential
    stub = re.search(r"printf '([^']*)' > \"\$1/usr/sbin/update-initramfs\"", essential)
    assert stub and stub.group(1).startswith("#!/bin/sh") and "mkinitramfs" not in stub.group(1)
    # ... and afterwards restored, then run exactly once per kernel
    restore = customize.index("--remove /usr/sbin/update-initramfs")
    runs = [m.start() for m in re.finditer(r"chroot \"\$1\" update-initramfs ", customize)]
    assert len(runs) == 1 and runs[0] > restore
    assert "update-initramfs -c -k" in customize[runs[0] :]


def test_config_txt_has_the_can_hat_spi_and_watchdog(plan: dict[str, str]) -> None:
    config = plan["/boot/firmware/config.txt"].splitlines()
    assert "arm_64bit=1" in config and "enable_uart=1" in config
    ours = [
        line
        for line in (ROOT / "image/config.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "dtoverlay=mcp2515-can0,oscillator=16000000,interrupt=25" in ours
    for line in ours + ["dtparam=watchdog=on", "dtparam=spi=on"]:
        assert line in config


def partition_table(plan: dict[str, str], tmp_path: Path) -> dict:
    """The plan's sfdisk script applied to an image file, read back as sfdisk's JSON."""
    sfdisk = shutil.which("sfdisk") or "/usr/sbin/sfdisk"
    script = section(plan, "sfdisk ")
    image = tmp_path / "card.img"
    last_end = max(
        int(m.group(1)) + int(m.group(2)) for m in re.finditer(r"start=(\d+), size=(\d+)", script)
    )
    with image.open("wb") as f:
        f.truncate((last_end + 2048) * 512)
    subprocess.run([sfdisk, "--quiet", str(image)], input=script, text=True, check=True)
    verify = subprocess.run([sfdisk, "--verify", str(image)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    dumped = subprocess.run([sfdisk, "--json", str(image)], capture_output=True, text=True)
    return json.loads(dumped.stdout)["partitiontable"]


def test_partition_table_is_valid_and_matches_cmdline_and_fstab(
    plan: dict[str, str], tmp_path: Path
) -> None:
    table = partition_table(plan, tmp_path)
    assert table["label"] == "dos"  # the Pi 3's boot ROM reads MBR only
    disk_id = table["id"].removeprefix("0x")
    boot, slot_a, slot_b, data = table["partitions"]
    assert boot["type"] == "c" and boot.get("bootable") and boot["start"] * 512 % 2**20 == 0
    assert [p["type"] for p in (slot_a, slot_b, data)] == ["83", "83", "83"]
    assert slot_a["size"] == slot_b["size"]  # an update fits either slot
    for before, after in [(boot, slot_a), (slot_a, slot_b), (slot_b, data)]:
        assert after["start"] >= before["start"] + before["size"]
    cmdline = plan["/boot/firmware/cmdline.txt"].strip()
    assert "\n" not in cmdline  # the firmware reads one line
    args = cmdline.split()
    assert f"root=PARTUUID={disk_id}-02" in args and "rootwait" in args  # slot A first
    consoles = [a.removeprefix("console=") for a in args if a.startswith("console=")]
    assert consoles[-1] == "ttyS1,115200"  # the last console gets /dev/console: the serial one
    fstab = [line.split() for line in plan["/etc/fstab"].splitlines()]
    mounts = {f[1]: f[0] for f in fstab}
    assert "/" not in mounts  # the root is whichever slot cmdline.txt names
    assert mounts["/boot/firmware"] == f"PARTUUID={disk_id}-01"
    assert mounts["/data"] == f"PARTUUID={disk_id}-04"
    assert mounts["/var/lib/vci"] == "/data/vci"  # the state survives slot switches


def test_wheels_are_for_aarch64_cpython_311(plan: dict[str, str]) -> None:
    build_wheel, download = [shlex.split(c) for c in section(plan, "wheels").splitlines()]
    assert build_wheel[-1] == str(ROOT) and "--no-deps" in build_wheel
    assert "--only-binary=:all:" in download
    platforms = [download[i + 1] for i, a in enumerate(download) if a == "--platform"]
    assert platforms and all(p.endswith("_aarch64") for p in platforms)
    assert "manylinux2014_aarch64" in platforms
    assert download[download.index("--python-version") + 1] == "3.11"
    assert download[download.index("--abi") + 1] == "cp311"


def test_dry_run_is_refused_for_amd64() -> None:
    done = subprocess.run(
        [sys.executable, str(BUILD), "--dry-run"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "--arch arm64" in done.stderr


def test_can_hat_device_tree_matches_config_txt(plan: dict[str, str], tmp_path: Path) -> None:
    """Debian's device trees take no overlays: the HAT is merged into them (can-hat.dts), and it
    must describe the same chip, crystal and interrupt line as config.txt's active overlay."""
    installed = plan["device tree (the CAN HAT for Debian's kernel)"].split()
    assert "/etc/kernel/postinst.d/z60-vci-can-hat" in installed  # after raspi-firmware's z50
    assert "/etc/initramfs/post-update.d/z60-vci-can-hat" in installed
    source = (ROOT / "image/pi-boot/can-hat.dts").read_text()
    (overlay,) = [
        line.split("=", 1)[1]
        for line in plan["/boot/firmware/config.txt"].splitlines()
        if line.startswith("dtoverlay=")
    ]
    name, *params = overlay.split(",")
    settings = dict(p.split("=") for p in params)
    assert name == "mcp2515-can0" and '"microchip,mcp2515"' in source
    assert f"clock-frequency = <{settings['oscillator']}>" in source
    assert f"interrupts = <{settings['interrupt']} 8>" in source  # level low, as the overlay


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc: apt install device-tree-compiler")
def test_can_hat_device_tree_merges_into_a_pi_tree(tmp_path: Path) -> None:
    """The fragment compiles onto a tree with the nodes it names by path (as the box's hook does
    with Debian's bcm2711/bcm2837 trees) and enables SPI0 with the MCP2515 on the gpio's IRQ."""
    dtc = shutil.which("dtc") or "dtc"
    source = (ROOT / "image/pi-boot/can-hat.dts").read_text()
    # a skeleton with the nodes the fragment names by path, as in Debian's bcm2711/bcm2837 trees
    skeleton = """/dts-v1/;
/ { #address-cells = <1>; #size-cells = <1>;
  soc { #address-cells = <1>; #size-cells = <1>;
    gpio@7e200000 { reg = <0x7e200000 0xb4>; gpio-controller; #gpio-cells = <2>;
      interrupt-controller; #interrupt-cells = <2>; phandle = <6>;
      spi0_gpio7 { brcm,pins = <7 8 9 10 11>; brcm,function = <4>; }; };
    spi@7e204000 { reg = <0x7e204000 0x200>; #address-cells = <1>; #size-cells = <0>;
      status = "disabled"; }; }; };
"""
    merged = tmp_path / "merged.dts"
    merged.write_text(skeleton + source)
    out = tmp_path / "merged.dtb"
    subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", str(out), str(merged)], check=True)
    back = subprocess.run(
        [dtc, "-q", "-I", "dtb", "-O", "dts", str(out)], capture_output=True, text=True, check=True
    ).stdout
    spi = back[back.index("spi@7e204000 {") :]
    assert 'status = "okay"' in spi.split("can@0")[0]
    assert "interrupt-parent = <0x06>" in spi  # the gpio controller, by path
