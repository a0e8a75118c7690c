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
import os
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
    """Tryboot's layout: 1 autoboot FAT, 2/3 the slots' boot FATs, 4 extended, 5/6 the slots'
    roots, 7 data; each slot's cmdline.txt names its own root, read-only."""
    table = partition_table(plan, tmp_path)
    assert table["label"] == "dos"  # the Pi 3's boot ROM reads MBR only
    disk_id = table["id"].removeprefix("0x")
    autoboot, boot_a, boot_b, extended, root_a, root_b, data = table["partitions"]
    assert autoboot["type"] == "c" and autoboot.get("bootable")
    assert [p["type"] for p in (boot_a, boot_b)] == ["c", "c"]
    assert extended["type"] == "5"
    assert [p["type"] for p in (root_a, root_b, data)] == ["83", "83", "83"]
    for p in table["partitions"]:
        assert p["start"] * 512 % 2**20 == 0  # aligned for SD erase blocks
    assert boot_a["size"] == boot_b["size"] and root_a["size"] == root_b["size"]  # either slot
    for before, after in [(autoboot, boot_a), (boot_a, boot_b), (boot_b, extended)]:
        assert after["start"] >= before["start"] + before["size"]
    for before, after in [(root_a, root_b), (root_b, data)]:
        assert after["start"] > before["start"] + before["size"]  # room for the EBR
    end = extended["start"] + extended["size"]
    assert all(extended["start"] < p["start"] and p["start"] + p["size"] <= end
               for p in (root_a, root_b, data))  # fmt: skip
    # autoboot.txt: A's boot partition primary, B's the one tryboot starts once
    autoboot_txt = plan["autoboot.txt (partition 1)"].split()
    assert autoboot_txt == ["[all]", "tryboot_a_b=1", "boot_partition=2", "[tryboot]",
                            "boot_partition=3"]  # fmt: skip
    for slot, number, root in (("A", 2, "05"), ("B", 3, "06")):
        cmdline = plan[f"cmdline.txt of slot {slot} (partition {number})"].strip()
        assert "\n" not in cmdline  # the firmware reads one line
        args = cmdline.split()
        assert f"root=PARTUUID={disk_id}-{root}" in args and "rootwait" in args
        assert "ro" in args and "rw" not in args  # the read-only root
        assert f"rauc.slot={slot}" in args  # RAUC 1.8's booted slot
        consoles = [a.removeprefix("console=") for a in args if a.startswith("console=")]
        assert consoles[-1] == "ttyS1,115200"  # the last console gets /dev/console
    fstab = [line.split() for line in plan["/etc/fstab"].splitlines() if line[0] != "#"]
    mounts = {f[1]: f[0] for f in fstab}
    assert "/" not in mounts  # the root is whichever slot's cmdline.txt the firmware read
    assert "/boot/firmware" not in mounts  # which slot's would it be? none is needed
    assert mounts["/boot/autoboot"] == f"PARTUUID={disk_id}-01"
    assert mounts["/data"] == f"PARTUUID={disk_id}-07"
    assert mounts["/var/lib/vci"] == "/data/vci"  # the state survives slot switches


def test_read_only_root_mounts_are_the_amd64_ones(plan: dict[str, str]) -> None:
    """The Pi's fstab has the VM's binds and tmpfs (image/fstab) line for line: one list for
    what a read-only root needs, only the partitions named per flavour."""
    shared = [
        line
        for line in (ROOT / "image/fstab").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "PARTLABEL="))
    ]
    pi = plan["/etc/fstab"].splitlines()
    assert shared and all(line in pi for line in shared)
    assert {"/tmp", "/var/tmp", "/var/log", "/var/lib/systemd", "/var/log/journal"} <= {
        line.split()[1] for line in shared
    }


def test_system_conf_slots_are_the_cards_partitions(plan: dict[str, str]) -> None:
    """RAUC's slots on the Pi (image/rauc/system-rpi.conf) are the partitions the plan makes:
    boot A/B with parent= their root, the roots with bootnames A/B."""
    import configparser

    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string((ROOT / "image/rauc/system-rpi.conf").read_text())
    parts = {
        line.split()[1]: line.split()[2].removeprefix("PARTUUID=")
        for line in plan["partitions"].splitlines()
    }
    wanted = {
        "slot.boot.0": ("boot-a", "rootfs.0"),
        "slot.boot.1": ("boot-b", "rootfs.1"),
        "slot.rootfs.0": ("root-a", None),
        "slot.rootfs.1": ("root-b", None),
    }
    for key, (name, parent) in wanted.items():
        assert conf[key]["device"] == f"/dev/disk/by-partuuid/{parts[name]}"
        assert conf[key].get("parent") == parent
    assert conf["slot.rootfs.0"]["bootname"] == "A" and conf["slot.rootfs.1"]["bootname"] == "B"
    assert conf["system"]["bootloader"] == "custom"
    assert conf["system"]["compatible"] == "vci-gateway-rpi-arm64"
    assert section(plan, "bundle ").startswith("image.boot boot.vfat")  # both of a group


def test_the_pi_gets_the_tryboot_rauc_files_and_not_grubs(plan: dict[str, str]) -> None:
    files = plan["files (systemd/install.txt for arm64)"].splitlines()
    installed = {line.split()[1]: line.split()[2] for line in files if line.startswith("install")}
    assert installed["image/rauc/system-rpi.conf"] == "/etc/rauc/system.conf"
    assert installed["image/pi-boot/vci-rauc-tryboot"] == "/usr/lib/vci/rauc-tryboot"
    assert "image/rauc/system.conf" not in installed  # GRUB's
    assert "systemd/vci-machine-id.service" not in installed  # writes grubenv
    assert "image/fstab" not in installed  # the Pi's fstab is image/pi.py's
    assert "enable rauc.service" in files and "enable vci-health.service" in files
    argv = mmdebstrap_argv(plan)
    assert "rauc" in option(argv, "include")[0].split(",")


def test_the_amd64_flavour_keeps_its_files() -> None:
    """amd64 (the VM) installs exactly what it did before the flavours: GRUB's RAUC config,
    vci-machine-id, image/fstab, and nothing of the Pi's."""
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader("vci_image_build", str(BUILD))
    spec = importlib.util.spec_from_loader("vci_image_build", loader)
    assert spec
    build = importlib.util.module_from_spec(spec)
    loader.exec_module(build)
    files, enable, mask = build.install_list("amd64")
    targets = {src: dst for src, dst, _ in files}
    assert targets["image/rauc/system.conf"] == "/etc/rauc/system.conf"
    assert targets["image/fstab"] == "/etc/fstab"
    assert targets["systemd/vci-machine-id.service"].endswith("vci-machine-id.service")
    assert not any(src.startswith(("image/pi-boot/", "image/rauc/system-rpi")) for src in targets)
    assert "vci-machine-id.service" in enable and mask == ["hostapd.service"]
    assert len(targets) == len(files)


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


def _pi_module():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("vci_image_pi_test", ROOT / "image/pi.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("mkfs.vfat", "mcopy", "mtype")),
    reason="the data partition's owners need root (chown); mtools, dosfstools",
)
def test_card_image_is_assembled_as_planned(tmp_path: Path) -> None:
    """image/pi.py's make_sd_image on a stand-in root (no Debian, no qemu): the card's table,
    partition 1's autoboot.txt and state, slot A's boot files and cmdline.txt, read back from the
    image file at the planned offsets; boot.vfat and rootfs.img beside it for the bundle."""
    pi = _pi_module()
    root = tmp_path / "root"
    firmware = root / "boot/firmware"
    firmware.mkdir(parents=True)
    for name in ("bootcode.bin", "start4.elf", "vmlinuz-6.1.0-arm64", "bcm2711-rpi-4-b.dtb"):
        (firmware / name).write_bytes(b"x" * 100)
    (firmware / "config.txt").write_text(pi.expected_config_txt())
    (firmware / "cmdline.txt").write_text(pi.expected_cmdline_txt() + "\n")
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nvci:x:999:999::/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nvci:x:999:\nsystemd-journal:x:998:\n")
    out = tmp_path / "out"
    out.mkdir()
    card = out / pi.image_name()
    pi.make_sd_image(root, card, lambda msg: None)
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(card)], capture_output=True, text=True, check=True
        ).stdout  # fmt: skip
    )["partitiontable"]
    starts = {int(p["node"].rsplit("img", 1)[1]): p["start"] for p in table["partitions"]}
    for p in pi.layout():
        assert starts[p.number] * 512 == p.start_mib * 2**20, p.name

    def fat(name: str, path: str) -> str:
        offset = pi.partition(name).start_mib * 2**20
        return subprocess.run(["mtype", "-i", f"{card}@@{offset}", f"::{path}"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip

    assert fat("autoboot", "autoboot.txt") == pi.autoboot_txt()
    assert fat("autoboot", "vci-slots.txt") == "A=good\nB=bad\n"
    assert fat("autoboot", "bootcode.bin") == "x" * 100  # the Pi 3's second stage
    assert fat("boot-a", "cmdline.txt").strip() == pi.slot_cmdline_txt("A")
    assert "kernel=vmlinuz-VERSION" in fat("boot-a", "config.txt")
    assert (out / "boot.vfat").is_file() and (out / "rootfs.img").is_file()
    assert (out / "cmdline.txt").read_text().strip() == pi.slot_cmdline_txt("A")
    # the backend reads partition 1's files as the card has them
    conf = tmp_path / "auto"
    conf.mkdir()
    for name in ("autoboot.txt", "vci-slots.txt"):
        (conf / name).write_text(fat("autoboot", name))
    got = subprocess.run(
        [sys.executable, str(ROOT / "image/pi-boot/vci-rauc-tryboot"), "get-primary"],
        env={**os.environ, "VCI_TRYBOOT_AUTOBOOT_DIR": str(conf),
             "VCI_TRYBOOT_SYSTEM_CONF": str(ROOT / "image/rauc/system-rpi.conf")},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert got.stdout.strip() == "A"
