"""The Raspberry Pi (arm64) flavour of the image recipe: ``image/build --arch arm64``.

Owns what differs from the VM flavour, built the way Debian's own Raspberry Pi images are
(salsa.debian.org/raspi-team/image-specs, raspi_master.yaml): Debian's ``linux-image-arm64`` and
``raspi-firmware`` from non-free-firmware, whose kernel and initramfs hooks fill /boot/firmware
(firmware blobs, kernel, initrd, the bcm*.dtb files, config.txt, cmdline.txt) from
/etc/default/raspi-firmware, raspi-firmware-custom (our image/config.txt lines) and
raspi-extra-cmdline. It adds:

- initramfs deferred to exactly one run: an mmdebstrap essential hook diverts update-initramfs to
  a no-op while the packages install (the kernel, initramfs-tools' trigger and the firmware's
  hook would each run mkinitramfs under qemu-user, minutes apiece); the customize hook restores
  it and runs ``update-initramfs -c -k VERSION`` once. The result is cached in the base tarball;
- the dependencies' wheels for manylinux aarch64 / CPython 3.11 (``pip download --platform``),
  so nothing is compiled under emulation;
- an SD card image file assembled without mounting anything, laid out for the firmware's
  tryboot A/B switch (layout(): autoboot.txt on partition 1, each slot a boot FAT and a root,
  the data partition; RAUC drives it with image/pi-boot/vci-rauc-tryboot, docs/update.md): the
  FATs with ``mkfs.vfat`` and ``mcopy``, the root and data with ``mkfs.ext4 -d``, the table
  with ``sfdisk`` on the file and the partitions put in place with ``dd`` at their offsets;
  beside it the two images an update bundle carries (boot.vfat, rootfs.img: image/bundle).

``plan()`` is everything the build would run and write, printed by ``--dry-run`` and checked by
tests/appliance/test_image_recipe.py (no root, no network).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCH = "arm64"
COMPATIBLE = "vci-gateway-rpi-arm64"
"""RAUC's compatible (image/rauc/system-rpi.conf): amd64 bundles are refused here"""
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
COMPONENTS = ["main", "non-free-firmware"]  # raspi-firmware, firmware-brcm80211

# The box's packages as in the VM flavour (image/build, PACKAGES["amd64"]) without the VM test's
# curl and procps, with the Pi's kernel and boot firmware instead of linux-image-amd64, the
# on-board Wi-Fi's firmware (brcmfmac, needed for the box's access point), the regulatory
# database hostapd's country setting needs, and systemd-timesyncd: the Pi has no real-time clock,
# and tickets and TLS need the time (its last known time is on tmpfs on the read-only root:
# docs/pi-image.md); zstd,
# initramfs-tools' default compressor (without it: gzip, slower to unpack at every boot); and
# device-tree-compiler for the CAN HAT's device tree (DEVICE_TREE below).
PACKAGES = [
    "systemd-sysv", "udev", "dbus", "linux-image-arm64", "raspi-firmware", "firmware-brcm80211",
    "wireless-regdb", "zstd", "device-tree-compiler", "kmod", "iproute2", "can-utils", "python3",
    "python3-venv", "hostapd", "iw", "wpasupplicant", "nftables", "systemd-resolved",
    "libnss-resolve", "dnsmasq-base", "systemd-timesyncd",
    # signed A/B updates: RAUC (its boot-loader backend is ours, image/pi-boot/vci-rauc-tryboot)
    "rauc",
]  # fmt: skip

DPKG_EXCLUDES = [
    "/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/usr/share/lintian/*",
]  # fmt: skip

# update-initramfs is diverted to this no-op while the packages install (essential hook) ...
INITRAMFS_STUB = "/usr/sbin/update-initramfs"
INITRAMFS_REAL = "/usr/sbin/update-initramfs.vci-deferred"
ESSENTIAL_HOOK = (
    f'chroot "$1" dpkg-divert --quiet --local --rename --divert {INITRAMFS_REAL} '
    f"--add {INITRAMFS_STUB} && "
    f"printf '#!/bin/sh\\necho \"update-initramfs: deferred by image/build\" >&2\\n' "
    f'> "$1{INITRAMFS_STUB}" && chmod 755 "$1{INITRAMFS_STUB}"'
)
# ... and restored by the customize hook, which then builds the one initramfs. MODULES=most stays
# (initramfs-tools' default): MODULES=dep would pick the build host's storage drivers, not the
# Pi's SD (sdhci-iproc, mmc) or USB (xhci, usb-storage) ones, and the box would not find its root.
CUSTOMIZE_HOOK = (
    f'rm -f "$1{INITRAMFS_STUB}" && '
    f'chroot "$1" dpkg-divert --quiet --local --rename --remove {INITRAMFS_STUB} && '
    'for v in "$1"/boot/vmlinuz-*; do v=${v##*/vmlinuz-}; '
    'echo "image/build: update-initramfs -c -k $v (the only run)"; '
    'start=$(date +%s); chroot "$1" update-initramfs -c -k "$v" >&2; '
    'echo "image/build: initramfs built in $(( $(date +%s) - start )) s"; done'
)

# The SD card for the firmware's tryboot A/B switch (docs/update.md, "The Raspberry Pi"). The
# firmware switches boot partitions, not roots, so each slot is a pair: its own FAT boot
# partition (kernel, initrd, device trees, config.txt, a cmdline.txt naming the slot's root) and
# its root. Partition 1 is a small FAT with autoboot.txt only, which says which boot partition
# is primary ([all]) and which one ``reboot '0 tryboot'`` starts once ([tryboot]). MBR, as the
# Pi 3's boot ROM reads no GPT: seven partitions need an extended one (4) for the roots and the
# data partition. Named by PARTUUID (the disk identifier below and the number; MBR has no
# partition names), fixed so that cmdline.txt, fstab and RAUC's system.conf
# (image/rauc/system-rpi.conf) are known before the image exists.
DISK_ID = "0x56434931"  # "VCI1"
SECTOR = 512
MIB = 2**20
AUTOBOOT_MIB = 64  # autoboot.txt and the slots' state (bytes); FAT32 wants 65525 clusters
BOOT_MIB = 160  # firmware (~25 MiB), kernel and initrd (~60 MiB), DTBs: room for an update's
SLOT_MIB = 1536  # one root slot; the root file system is about 800 MiB
DATA_MIB = SLOT_MIB + 512  # as image/disk.py's DATA_MB: an offered bundle (up to a slot) is
# downloaded here before RAUC installs it, besides the state and the journal
EBR_MIB = 1  # before each logical partition: its extended boot record, 1 MiB for alignment


@dataclass(frozen=True)
class Partition:
    """One partition of the SD card image."""

    number: int
    """MBR partition number (1-4 primary, 5-7 logical)."""
    name: str
    """What it holds: autoboot, boot-a, boot-b (the slots' firmware FATs), extended (the
    container of the logical ones), root-a, root-b (the slots' roots), data."""
    start_mib: int
    """Start on the card, MiB (aligned for SD erase blocks)."""
    size_mib: int
    """Size in MiB."""
    sfdisk_type: str
    """MBR type: c (FAT32 LBA) for the firmware's, 5 extended, 83 Linux."""
    fs_label: str
    """File system label ("" for slot B's: empty until the first update writes them)."""

    @property
    def partuuid(self) -> str:
        return f"{DISK_ID.removeprefix('0x')}-{self.number:02d}"


def layout() -> list[Partition]:
    primary = [
        ("autoboot", AUTOBOOT_MIB, "c", "VCI-AUTO"),
        ("boot-a", BOOT_MIB, "c", "VCI-BOOT-A"),
        ("boot-b", BOOT_MIB, "c", ""),
    ]
    logical = [
        ("root-a", SLOT_MIB, "83", "vci-root-a"),
        ("root-b", SLOT_MIB, "83", ""),
        ("data", DATA_MIB, "83", "vci-data"),
    ]
    parts: list[Partition] = []
    start = 4
    for number, (name, size, kind, label) in enumerate(primary, 1):
        parts.append(Partition(number, name, start, size, kind, label))
        start += size
    extended_start = start
    for number, (name, size, kind, label) in enumerate(logical, 5):
        start += EBR_MIB
        parts.append(Partition(number, name, start, size, kind, label))
        start += size
    parts.insert(3, Partition(4, "extended", extended_start, start - extended_start, "5", ""))
    return parts


def partition(name: str) -> Partition:
    return next(p for p in layout() if p.name == name)


SLOT_A = partition("root-a").partuuid
"""the root the image boots first (the firmware hook's ROOTPART; each slot's own cmdline.txt
is slot_cmdline_txt's)"""
SLOTS = {"A": ("boot-a", "root-a"), "B": ("boot-b", "root-b")}
"""RAUC's bootname -> (boot partition, root partition)"""


def sfdisk_script(parts: list[Partition]) -> str:
    lines = ["label: dos", f"label-id: {DISK_ID}", "unit: sectors", ""]
    for p in parts:  # in number order: sfdisk makes the lines after the extended one logical
        lines.append(
            f"start={p.start_mib * MIB // SECTOR}, size={p.size_mib * MIB // SECTOR}, "
            f"type={p.sfdisk_type}" + (", bootable" if p.name == "autoboot" else "")
        )
    return "\n".join(lines) + "\n"


# The firmware hook's settings (/etc/default/raspi-firmware): root by PARTUUID; the serial
# console last, so it gets the kernel's and systemd's messages (/dev/console) and the emergency
# shell, the screen first. Debian's upstream kernel names the Pi 3/4's mini UART ttyS1 (the
# ``serial0`` alias of Raspberry Pi OS is its own kernel's), as Debian's images do.
CONSOLES = "tty0 ttyS1,115200"
# No cma= on the command line: the box is headless (no vc4 display needing a larger pool), and
# the hook's cma=64M, chosen when the build host is not a Pi 4, can keep a Pi 4 from booting
# (the hook's own warning). CMA=0 leaves the pool to the device tree.
CMA = "0"


# Debian's kernel comes with mainline device trees: no __symbols__, no __overrides__, and Debian
# ships none of the Raspberry Pi's overlays, so config.txt's dtparam=spi=on and
# dtoverlay=mcp2515-can0 do nothing there (they stay for Raspberry Pi OS kernels). The CAN HAT
# is written into the trees themselves: image/pi-boot/can-hat.dts merged by a hook that runs
# after raspi-firmware's on every kernel or initramfs update (and once at build time).
DEVICE_TREE = [
    ("image/pi-boot/can-hat.dts", "/etc/vci/can-hat.dts", 0o644),
    ("image/pi-boot/vci-can-hat-dtb", "/etc/kernel/postinst.d/z60-vci-can-hat", 0o755),
    ("image/pi-boot/vci-can-hat-dtb", "/etc/initramfs/post-update.d/z60-vci-can-hat", 0o755),
]
DTB_CHECKS = [  # (device tree, node, property, value) after the merge
    ("bcm2711-rpi-4-b.dtb", "/soc/spi@7e204000", "status", "okay"),
    ("bcm2711-rpi-4-b.dtb", "/soc/spi@7e204000/can@0", "compatible", "microchip,mcp2515"),
    ("bcm2837-rpi-3-b-plus.dtb", "/soc/spi@7e204000/can@0", "compatible", "microchip,mcp2515"),
]


def firmware_defaults() -> str:
    return (
        "\n# image/build (image/pi.py): the root by PARTUUID, the serial console last\n"
        f'ROOTPART="PARTUUID={SLOT_A}"\n'
        f'CONSOLES="{CONSOLES}"\n'
        f'CMA="{CMA}"\n'
    )


def config_lines() -> str:
    """image/config.txt without its comments: what raspi-firmware-custom adds to config.txt."""
    text = (REPO / "image/config.txt").read_text()
    return "\n".join(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")) + "\n"


def expected_config_txt(kernel: str = "vmlinuz-VERSION", initrd: str = "initrd.img-VERSION") -> str:
    """config.txt as raspi-firmware's hook writes it for arm64 (1.20220830), with our lines."""
    return (
        "arm_64bit=1\nenable_uart=1\nupstream_kernel=1\n"
        f"kernel={kernel}\ninitramfs {initrd}\n"
        "\n# Inserted by /etc/default/raspi-firmware-custom\n" + config_lines()
    )


def expected_cmdline_txt() -> str:
    """cmdline.txt as raspi-firmware's hook writes it from our settings (blanks normalised)."""
    consoles = " ".join(f"console={c}" for c in CONSOLES.split())
    root = f"PARTUUID={SLOT_A}"
    return f"{consoles} root={root} rw fsck.repair=yes net.ifnames=0 rootwait"


def slot_cmdline_txt(bootname: str) -> str:
    """The cmdline.txt of a slot's boot partition: the hook's with the slot's root, mounted
    read-only (``ro``; nothing on / is written, see fstab()), ``rauc.slot=`` (RAUC 1.8 takes
    the booted slot from it) and ``panic=10`` (a panicking trial resets, and the firmware's
    one-shot tryboot flag is gone: the primary slot boots). The backend writes the same
    root= and rauc.slot= into a slot it arms (image/pi-boot/vci-rauc-tryboot)."""
    root = partition(SLOTS[bootname][1]).partuuid
    words = [
        f"root=PARTUUID={root}" if w.startswith("root=") else "ro" if w == "rw" else w
        for w in expected_cmdline_txt().split()
    ]
    return " ".join([*words, f"rauc.slot={bootname}", "panic=10"])


def autoboot_txt() -> str:
    """Partition 1's autoboot.txt: slot A's boot partition primary, slot B's for a trial."""
    return (
        f"[all]\ntryboot_a_b=1\nboot_partition={partition('boot-a').number}\n"
        f"[tryboot]\nboot_partition={partition('boot-b').number}\n"
    )


SLOT_STATE = "A=good\nB=bad\n"
"""vci-slots.txt beside autoboot.txt: the backend's good/bad (slot B empty until an update)"""


def shared_fstab_lines() -> list[str]:
    """image/fstab's mounts that are no partition (the binds into /data and the tmpfs of the
    read-only root): the same on both flavours; only the partitions are named differently."""
    lines = (REPO / "image/fstab").read_text().splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith(("#", "PARTLABEL="))]


def fstab() -> str:
    """The root comes from cmdline.txt (slot A or B, read-only); partition 1 (autoboot.txt,
    the slots' state) at /boot/autoboot for RAUC's backend; the data partition and the shared
    binds and tmpfs (image/fstab). No slot's boot partition is mounted: nothing on the box
    changes the running slot's (no kernel updates on a read-only root), and RAUC writes the
    other one whole."""
    autoboot, data = partition("autoboot"), partition("data")
    return (
        "# image/build (image/pi.py): the Pi's partitions; the rest as image/fstab\n"
        f"PARTUUID={autoboot.partuuid} /boot/autoboot vfat umask=0077,noatime,nofail 0 0\n"
        f"PARTUUID={data.partuuid} /data ext4 noatime,nodev,nosuid 0 2\n"
        + "\n".join(shared_fstab_lines())
        + "\n"
    )


def mmdebstrap_command(target: str) -> list[str]:
    return [
        "mmdebstrap", "--mode=root", "--variant=minbase", f"--architectures={ARCH}",
        f"--components={','.join(COMPONENTS)}",
        "--include=" + ",".join(PACKAGES),
        *[f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES],
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        # the tree is tarred when done: no fsync per file (costly under qemu-user)
        "--dpkgopt=force-unsafe-io",
        f"--essential-hook={ESSENTIAL_HOOK}",
        f"--customize-hook={CUSTOMIZE_HOOK}",
        SUITE, target, MIRROR,
    ]  # fmt: skip


def base_key() -> str:
    import hashlib

    h = hashlib.sha256()
    h.update(json.dumps(mmdebstrap_command("TARGET")).encode())
    return h.hexdigest()[:16]


def version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def image_name() -> str:
    return f"vci-{version()}-{ARCH}.img"


def pip_platforms() -> list[str]:
    """manylinux aarch64 tags Debian 12's glibc 2.36 runs (pip takes them one by one)."""
    tags = ["manylinux2014_aarch64"] + [f"manylinux_2_{v}_aarch64" for v in range(17, 37)]
    return [arg for tag in tags for arg in ("--platform", tag)]


# gpiozero's pin backend on the Pi: lgpio drives /dev/gpiochip* and /dev/spidev*, which Debian's
# mainline kernel has (the older backends want the Raspberry Pi kernel's /dev/gpiomem). Not a
# project dependency (a PC needs none); the Pi's venv gets it beside the project.
PI_WHEELS = ["lgpio"]


def wheel_commands(dest: str, project_wheel: str) -> list[list[str]]:
    return [
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dest,
         str(REPO)],
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         *pip_platforms(), "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
         "--dest", dest, project_wheel, *PI_WHEELS],
    ]  # fmt: skip


def plan(installs: list[str]) -> str:
    """What ``--arch arm64`` runs and writes, for --dry-run; ``installs``: the install list's
    lines for this flavour (image/build)."""
    parts = layout()
    out = [
        "# image/build --arch arm64: plan (nothing run)",
        "## mmdebstrap",
        shlex.join(mmdebstrap_command("BASE.tar")),
        "## essential hook (update-initramfs deferred)",
        ESSENTIAL_HOOK,
        "## customize hook (update-initramfs run once)",
        CUSTOMIZE_HOOK,
        "## wheels (manylinux aarch64, cp311)",
        *[shlex.join(c) for c in wheel_commands("WHEELS", "WHEELS/vci_gateway-*.whl")],
        "## /etc/default/raspi-firmware (appended)",
        firmware_defaults().strip(),
        "## /boot/firmware/config.txt",
        expected_config_txt().rstrip(),
        "## /boot/firmware/cmdline.txt",
        expected_cmdline_txt(),
        *[
            line
            for bootname, (boot, _) in SLOTS.items()
            for line in (
                f"## cmdline.txt of slot {bootname} (partition {partition(boot).number})",
                slot_cmdline_txt(bootname),
            )
        ],
        "## autoboot.txt (partition 1)",
        autoboot_txt().rstrip(),
        "## vci-slots.txt (partition 1)",
        SLOT_STATE.rstrip(),
        "## device tree (the CAN HAT for Debian's kernel)",
        *[f"install {src} {dst} {mode:04o}" for src, dst, mode in DEVICE_TREE],
        "## /etc/fstab",
        fstab().rstrip(),
        "## files (systemd/install.txt for arm64)",
        *installs,
        f"## sfdisk {image_name()}",
        sfdisk_script(parts).rstrip(),
        "## partitions",
        *[
            f"{p.number} {p.name} PARTUUID={p.partuuid} LABEL={p.fs_label or '-'} "
            f"start={p.start_mib}MiB size={p.size_mib}MiB"
            for p in parts
        ],
        f"## bundle (image/bundle --image OUT): compatible {COMPATIBLE}",
        "image.boot boot.vfat (slot A's boot partition), image.rootfs rootfs.img",
    ]
    return "\n".join(out) + "\n"


# ---- the build (root, network) ----

Log = Callable[[str], None]


def _run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def build_base(cache: Path, log: Log) -> Path:
    tar = cache / f"base-{SUITE}-{ARCH}-{base_key()}.tar"
    if tar.exists():
        log(f"base root cached: {tar}")
        return tar
    t0 = time.monotonic()
    tmp = tar.with_suffix(".part.tar")
    _run(mmdebstrap_command(str(tmp)))
    tmp.rename(tar)
    log(f"phase base (mmdebstrap, qemu-user): {time.monotonic() - t0:.0f} s: {tar}")
    for old in cache.glob(f"base-{SUITE}-{ARCH}-*.tar"):
        if old != tar:
            old.unlink()
    return tar


def build_wheels(dest: Path, log: Log) -> None:
    t0 = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    first, download = wheel_commands(str(dest), "")
    _run(first, stdout=subprocess.DEVNULL)
    project = next(dest.glob("vci_gateway-*.whl"))
    cut = download.index("")
    _run([*download[:cut], str(project), *download[cut + 1 :]], stdout=subprocess.DEVNULL)
    log(f"phase wheels: {time.monotonic() - t0:.0f} s: {len(list(dest.glob('*.whl')))} wheels")


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/proc (the firmware hook's ischroot reads /proc/1/root) and /dev for the chroot steps."""
    done: list[Path] = []
    try:
        for args, target in (
            (["-t", "proc", "proc"], root / "proc"),
            (["--bind", "/dev"], root / "dev"),
        ):
            _run(["mount", *args, str(target)])
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def install_pi_wheels(root: Path, wheels: Path) -> None:
    """PI_WHEELS into the venv image/build's customize step made (its wheelhouse is gone)."""
    shutil.copytree(wheels, root / "tmp/wheelhouse")
    try:
        _run(["chroot", str(root), "/opt/vci/venv/bin/pip", "install", "--quiet", "--no-index",
              "--find-links", "/tmp/wheelhouse", *PI_WHEELS])  # fmt: skip
    finally:
        shutil.rmtree(root / "tmp/wheelhouse")


def configure_boot(root: Path) -> None:
    """Our settings for raspi-firmware's hook, the hook run again (cheap: copies and writes),
    and what it wrote checked against plan(): the dry run CI checks is what the card gets."""
    default = root / "etc/default/raspi-firmware"
    default.write_text(default.read_text() + firmware_defaults())
    (root / "etc/default/raspi-firmware-custom").write_text(config_lines())
    (root / "etc/fstab").write_text(fstab())
    (root / "boot/autoboot").mkdir(parents=True, exist_ok=True)  # partition 1 (fstab())
    for src, dst, mode in DEVICE_TREE:
        target = root / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / src, target)
        target.chmod(mode)
    _run(
        ["chroot", str(root), "env", "DEB_MAINT_PARAMS=configure",
         "/etc/kernel/postinst.d/z50-raspi-firmware"],
    )  # fmt: skip
    _run(["chroot", str(root), DEVICE_TREE[1][1]])
    for dtb, node, prop, value in DTB_CHECKS:
        got = subprocess.run(
            ["chroot", str(root), "fdtget", f"/boot/firmware/{dtb}", node, prop],
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if got != value:
            raise SystemExit(f"image/build: {dtb} {node} {prop} is {got!r}, not {value!r}")
    firmware = root / "boot/firmware"
    kernel = sorted((root / "boot").glob("vmlinuz-*"))[-1].name
    initrd = sorted((root / "boot").glob("initrd.img-*"))[-1].name
    config = (firmware / "config.txt").read_text()
    cmdline = (firmware / "cmdline.txt").read_text()
    wanted = [ln for ln in expected_config_txt(kernel, initrd).splitlines() if ln.strip()]
    missing = [ln for ln in wanted if ln not in config.splitlines()]
    if missing or cmdline.split() != expected_cmdline_txt().split():
        raise SystemExit(
            f"image/build: raspi-firmware wrote other boot files than planned (image/pi.py): "
            f"config.txt lacks {missing}; cmdline.txt is {cmdline.strip()!r}"
        )
    for name in (kernel, initrd, "bootcode.bin", "start4.elf", "bcm2711-rpi-4-b.dtb"):
        if not (firmware / name).exists():
            raise SystemExit(f"image/build: /boot/firmware has no {name} (raspi-firmware hook)")


def tree_size_mib(path: Path) -> int:
    out = subprocess.run(["du", "-sbx", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) // MIB


def make_data(root: Path, out: Path, work: Path) -> None:
    """The data partition: the same as the amd64 disk's (image/disk.py), at this card's size."""
    sys.path.insert(0, str(Path(__file__).parent))
    import disk  # image/disk.py (image/ is no package)

    disk.make_data(root, out, work, partition("data").size_mib)


def make_fat(out: Path, part: Partition, files: list[Path]) -> None:
    """A FAT32 file system image of the partition's size holding ``files`` (mcopy, no mount)."""
    volume_id = f"{int(DISK_ID, 16) + part.number:08x}"
    label = ["-n", part.fs_label] if part.fs_label else []
    _run(["mkfs.vfat", "-F", "32", *label, "-i", volume_id, "-C", str(out),
          str(part.size_mib * 1024)], stdout=subprocess.DEVNULL)  # fmt: skip
    if files:
        _run(["mcopy", "-s", "-p", "-m", "-i", str(out), *map(str, files), "::"])


def make_sd_image(root: Path, out: Path, log: Log) -> list[Partition]:
    """The card image: each file system made as a file, then put at its place in the table.
    Beside it the update's two images (what image/bundle puts in a bundle): boot.vfat (slot A's
    boot partition) and rootfs.img (slot A's root)."""
    parts = layout()
    slot_a = partition("root-a")
    used = tree_size_mib(root)
    if used + 256 > slot_a.size_mib:
        raise SystemExit(f"image/build: the root ({used} MiB) leaves too little room in a slot")
    firmware = root / "boot/firmware"
    with tempfile.TemporaryDirectory(prefix="vci-sd-", dir=out.parent) as tmp:
        work = Path(tmp)
        boot_tree = work / "boot"
        shutil.move(firmware, boot_tree)
        firmware.mkdir()  # the mount point stays in the root (nothing is mounted there)
        (boot_tree / "cmdline.txt").write_text(slot_cmdline_txt("A") + "\n")
        auto_tree = work / "autoboot"
        auto_tree.mkdir()
        (auto_tree / "autoboot.txt").write_text(autoboot_txt())
        (auto_tree / "vci-slots.txt").write_text(SLOT_STATE)
        # the Pi 3 has no boot EEPROM: its ROM starts bootcode.bin from the first FAT, which
        # then reads autoboot.txt; the firmware takes a partition as a boot source only with
        # a config.txt (as pantavisor's rpi-bootsel does). The kernel's own are on 2 and 3.
        shutil.copy2(boot_tree / "bootcode.bin", auto_tree / "bootcode.bin")
        (auto_tree / "config.txt").write_text("# the slots' config.txt: partitions 2 and 3\n")
        images = {
            "autoboot": work / "autoboot.vfat",
            "boot-a": out.parent / "boot.vfat",
            "boot-b": work / "boot-b.vfat",
            "root-a": out.parent / "rootfs.img",
            "data": work / "data.ext4",
        }
        make_fat(images["autoboot"], partition("autoboot"), sorted(auto_tree.iterdir()))
        make_fat(images["boot-a"], partition("boot-a"), sorted(boot_tree.iterdir()))
        make_fat(images["boot-b"], partition("boot-b"), [])  # empty until an update
        _run(["mkfs.ext4", "-q", "-F", "-L", slot_a.fs_label, "-d", str(root),
              str(images["root-a"]), f"{slot_a.size_mib}M"])  # fmt: skip
        make_data(root, images["data"], work)
        total = parts[-1].start_mib + parts[-1].size_mib + 1
        out.unlink(missing_ok=True)
        with out.open("wb") as f:
            f.truncate(total * MIB)
        _run(["sfdisk", "--quiet", str(out)], input=sfdisk_script(parts).encode())
        for name, img in images.items():
            _run(["dd", f"if={img}", f"of={out}", "bs=1M", f"seek={partition(name).start_mib}",
                  "conv=notrunc,sparse", "status=none"])  # fmt: skip
        shutil.copy2(boot_tree / "config.txt", out.parent / "config.txt")
        shutil.copy2(boot_tree / "cmdline.txt", out.parent / "cmdline.txt")
    size = out.stat()
    log(f"image {out.name}: {size.st_size // MIB} MiB, {size.st_blocks * 512 // MIB} MiB in use")
    return parts


def build(
    cache: Path, customize: Callable[[Path, Path, bool], None], log: Log, release: str = ""
) -> Path:
    """The whole arm64 build; ``customize`` is image/build's shared step (venv, units, the
    files of the install list for arm64); ``release`` the version it wrote into the image. The
    base is cached; the card image is made again every time (a few minutes, against the
    base's)."""
    t_start = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    base = build_base(cache, log)
    out = cache / f"{ARCH}-box"
    manifest = out / "manifest.json"
    with tempfile.TemporaryDirectory(prefix="vci-image-", dir=cache) as tmp:
        work = Path(tmp)
        build_wheels(work / "wheels", log)
        t0 = time.monotonic()
        root = work / "root"
        root.mkdir()
        _run(["tar", "-xf", str(base), "-C", str(root), "--numeric-owner"])
        customize(root, work / "wheels", False)
        with chroot_mounts(root):
            install_pi_wheels(root, work / "wheels")
            configure_boot(root)
        log(f"phase customize (venv, units, boot files, qemu-user): {time.monotonic() - t0:.0f} s")
        t0 = time.monotonic()
        staging = work / "out"
        staging.mkdir()
        kernel = sorted((root / "boot").glob("vmlinuz-*"))[-1].name.removeprefix("vmlinuz-")
        parts = make_sd_image(root, staging / image_name(), log)
        log(f"phase sd image: {time.monotonic() - t0:.0f} s")
        manifest_data = {
            "arch": ARCH,
            "image": image_name(),
            "kernel_version": kernel,
            # what image/bundle puts in a bundle for this box
            "rootfs": "rootfs.img",
            "boot": "boot.vfat",
            "compatible": COMPATIBLE,
            "version": release or version(),
            "slot_mb": SLOT_MIB,
            "partitions": [
                {"name": p.name, "partuuid": p.partuuid, "label": p.fs_label,
                 "start_mib": p.start_mib, "size_mib": p.size_mib}
                for p in parts
            ],
        }  # fmt: skip
        (staging / "manifest.json").write_text(json.dumps(manifest_data, indent=2))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    log(f"total: {time.monotonic() - t_start:.0f} s; image {out / image_name()}")
    return manifest
