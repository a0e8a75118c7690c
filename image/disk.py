"""The box's disk layout (amd64 flavour), written into a disk image file without a running system.

GPT (sfdisk on the file), each partition written at its offset (no loop device, no mount):
  1  vci-esp     EFI system partition (FAT, mkfs.vfat + mcopy): EFI/BOOT/BOOTX64.EFI, GRUB made
                 by grub-mkstandalone with image/grub.cfg inside (RAUC's A/B scheme), and
                 EFI/BOOT/grubenv, the slots' state (ORDER, A_OK/A_TRY, B_OK/B_TRY)
  2  vci-root-a  root slot A (ext4, read-only when running): the image's root file system
  3  vci-root-b  root slot B: empty until the first update writes it (B_OK=0 until then)
  4  vci-data    the data partition (ext4) mounted at /data: vci/ (bind-mounted at
                 /var/lib/vci: the gateway's state, keys, flash journal), journal/ (the
                 systemd journal), rauc/ (RAUC's slot status); updates never touch it
The Raspberry Pi flavour has the same data partition (make_data) and two slots too, each a boot
partition and a root, switched by the firmware's tryboot (image/pi.py, docs/update.md). Used by
image/build.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ESP_MB = 32
SLOT_MB = 1536
"""one root slot; the root file system is about 800 MiB (the check in image/build keeps room)"""
DATA_MB = SLOT_MB + 512
"""the data partition: the state and the journal, and a portal-offered update bundle, which is
downloaded here before RAUC installs it (docs/update.md): up to a whole slot's image, so a slot
plus room for the rest (256 MiB could not take one bundle of the image itself)"""
ALIGN_MB = 1
"""first partition at 1 MiB; the GPT backup header takes the last 33 sectors (1 MiB kept)"""
GRUB_MODULES = (
    "part_gpt fat ext2 normal linux loadenv test echo serial terminal configfile search "
    "search_fs_file sleep regexp reboot"
)
GRUBENV_INITIAL = {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}

REPO = Path(__file__).resolve().parent.parent


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def layout() -> list[tuple[str, int, int, str]]:
    """(name, start MiB, size MiB, GPT type) of each partition."""
    parts = []
    start = ALIGN_MB
    for name, size, kind in (
        ("vci-esp", ESP_MB, "U"),
        ("vci-root-a", SLOT_MB, "L"),
        ("vci-root-b", SLOT_MB, "L"),
        ("vci-data", DATA_MB, "L"),
    ):
        parts.append((name, start, size, kind))
        start += size
    return parts


def make_esp(out: Path, work: Path) -> None:
    """The EFI system partition's FAT image with GRUB and its environment."""
    grub = work / "BOOTX64.EFI"
    run(
        ["grub-mkstandalone", "--format=x86_64-efi", f"--output={grub}",
         f"--modules={GRUB_MODULES}", "--locales=", "--fonts=", "--themes=",
         f"boot/grub/grub.cfg={REPO / 'image/grub.cfg'}"],
    )  # fmt: skip
    env = work / "grubenv"
    env.unlink(missing_ok=True)
    run(["grub-editenv", str(env), "create"])
    run(["grub-editenv", str(env), "set", *(f"{k}={v}" for k, v in GRUBENV_INITIAL.items())])
    out.unlink(missing_ok=True)
    run(["mkfs.vfat", "-n", "VCI-ESP", "-C", str(out), str(ESP_MB * 1024)],
        stdout=subprocess.DEVNULL)  # fmt: skip
    run(["mmd", "-i", str(out), "::EFI", "::EFI/BOOT"])
    run(["mcopy", "-i", str(out), str(grub), str(env), "::EFI/BOOT/"])


def make_data(root: Path, out: Path, work: Path, size_mb: int = DATA_MB) -> None:
    """The data partition's ext4 image: vci/ owned by the gateway's user, journal/, rauc/ (the
    Pi's card has the same one, image/pi.py)."""
    ids = {
        line.split(":")[0]: int(line.split(":")[2])
        for name in ("etc/passwd", "etc/group")
        for line in (root / name).read_text().splitlines()
        if line.count(":") >= 3
    }
    skel = work / "data"
    if skel.exists():
        shutil.rmtree(skel)
    (skel / "vci").mkdir(parents=True, mode=0o700)
    (skel / "journal").mkdir(mode=0o2755)
    (skel / "rauc").mkdir(mode=0o700)
    import os

    os.chown(skel / "vci", ids["vci"], ids["vci"])
    os.chmod(skel / "vci", 0o700)
    os.chown(skel / "journal", 0, ids.get("systemd-journal", 0))
    os.chmod(skel / "journal", 0o2755)
    run(["mkfs.ext4", "-q", "-F", "-L", "vci-data", "-d", str(skel), str(out), f"{size_mb}M"])


def write_at(src: Path, disk: Path, start_mb: int) -> None:
    run(["dd", f"if={src}", f"of={disk}", "bs=1M", f"seek={start_mb}", "conv=notrunc,sparse",
         "status=none"])  # fmt: skip


def make_disk(root: Path, rootfs: Path, out: Path, work: Path) -> None:
    """``out``: the whole disk (sparse file), slot A holding ``rootfs``."""
    work.mkdir(parents=True, exist_ok=True)
    parts = layout()
    total_mb = parts[-1][1] + parts[-1][2] + ALIGN_MB
    out.unlink(missing_ok=True)
    with out.open("wb") as f:
        f.truncate(total_mb * 2**20)
    script = "label: gpt\n" + "".join(
        f"start={start}MiB, size={size}MiB, type={kind}, name={name}\n"
        for name, start, size, kind in parts
    )
    run(["sfdisk", "--quiet", str(out)], input=script.encode())
    esp, data = work / "esp.img", work / "data.img"
    make_esp(esp, work)
    make_data(root, data, work)
    by_name = {name: start for name, start, _, _ in parts}
    write_at(esp, out, by_name["vci-esp"])
    write_at(rootfs, out, by_name["vci-root-a"])
    write_at(data, out, by_name["vci-data"])
