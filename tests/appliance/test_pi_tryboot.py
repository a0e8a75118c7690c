"""The Raspberry Pi's A/B switch: RAUC's custom boot-loader backend on the firmware's tryboot
(image/pi-boot/vci-rauc-tryboot), run on the host against a temporary directory standing in for
the autoboot FAT partition, the slots' boot partitions and /proc/device-tree/chosen/bootloader
(the backend's VCI_TRYBOOT_* variables, for tests only).

A "boot" here is what the firmware would leave behind: a new boot id, and the device tree's
``partition`` and ``tryboot`` cells: the partition ``[tryboot]`` names when the reboot asked
for tryboot, ``[all]``'s otherwise (the flag is one-shot). What cannot be shown without a Pi:
that the firmware does this, and that the kernel passes ``0 tryboot`` on (docs/update.md).

The last test drives the backend with the real ``rauc`` (Debian's 1.8) on a private D-Bus:
a signed bundle installed into file-backed slots, the trial and the commit by ``rauc status
mark-good``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKEND = ROOT / "image/pi-boot/vci-rauc-tryboot"
SYSTEM_CONF = ROOT / "image/rauc/system-rpi.conf"
AUTOBOOT_A = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
CMDLINE_A = "console=ttyS1,115200 root=PARTUUID=56434931-05 ro rootwait rauc.slot=A panic=10\n"


class Card:
    """The files the backend reads and writes, and the boots the firmware would make."""

    def __init__(self, base: Path, conf: Path = SYSTEM_CONF) -> None:
        self.auto = base / "autoboot"
        self.dt = base / "dt"
        self.boots = base / "boots"
        for d in (self.auto, self.dt, self.boots / "p2", self.boots / "p3"):
            d.mkdir(parents=True)
        (self.auto / "autoboot.txt").write_text(AUTOBOOT_A)
        (self.auto / "vci-slots.txt").write_text("A=good\nB=bad\n")
        (self.boots / "p2" / "cmdline.txt").write_text(CMDLINE_A)
        (self.boots / "p3" / "cmdline.txt").write_text(CMDLINE_A)  # a bundle's boot image
        self.vcio = base / "vcio"
        self.vcio.touch()  # a Raspberry Pi kernel (it passes "0 tryboot" to the firmware)
        self.boot_id = base / "boot_id"
        self.boot_count = 0
        self.env = {
            **os.environ,
            "VCI_TRYBOOT_AUTOBOOT_DIR": str(self.auto),
            "VCI_TRYBOOT_DT_DIR": str(self.dt),
            "VCI_TRYBOOT_BOOT_ID": str(self.boot_id),
            "VCI_TRYBOOT_SYSTEM_CONF": str(conf),
            "VCI_TRYBOOT_BOOT_DIRS": str(self.boots),
            "VCI_TRYBOOT_VCIO": str(self.vcio),
        }
        self.boot(tryboot=False)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(BACKEND), *args],
            env=self.env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    def out(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def autoboot(self) -> tuple[int, int]:
        lines = (self.auto / "autoboot.txt").read_text().splitlines()
        values = [int(ln.split("=")[1]) for ln in lines if ln.startswith("boot_partition=")]
        assert len(values) == 2 and "tryboot_a_b=1" in lines
        return values[0], values[1]

    def boot(self, tryboot: bool) -> int:
        """What the firmware does at a (re)boot: [tryboot]'s partition when asked, else
        [all]'s; the flag is used up. Returns the partition it booted."""
        primary, trial = self.autoboot()
        partition = trial if tryboot else primary
        (self.dt / "partition").write_bytes(partition.to_bytes(4, "big"))
        (self.dt / "tryboot").write_bytes(int(tryboot).to_bytes(4, "big"))
        self.boot_count += 1
        self.boot_id.write_text(f"boot-{self.boot_count}\n")
        return partition

    def reboot(self) -> int:
        """``vci update install --reboot``: tryboot exactly when the backend asks for it."""
        return self.boot(tryboot=self.out("reboot-argument") == "0 tryboot")


@pytest.fixture
def card(tmp_path: Path) -> Card:
    return Card(tmp_path)


def test_a_fresh_card_boots_a_which_is_good(card: Card) -> None:
    assert card.out("get-primary") == "A"
    assert card.out("get-current") == "A"
    assert card.out("get-state", "A") == "good"
    assert card.out("get-state", "B") == "bad"
    assert card.out("reboot-argument") == ""  # nothing armed: a plain reboot
    assert card.reboot() == 2


def test_set_state_round_trips_without_moving_the_primary(card: Card) -> None:
    card.out("set-state", "B", "good")
    assert card.out("get-state", "B") == "good"
    card.out("set-state", "B", "bad")
    assert card.out("get-state", "B") == "bad"
    card.out("set-primary", "A")  # already primary: nothing armed
    assert card.out("get-primary") == "A" and card.out("reboot-argument") == ""
    assert card.autoboot() == (2, 3)


def test_set_primary_arms_a_one_time_trial_and_writes_the_slots_root(card: Card) -> None:
    card.out("set-state", "B", "bad")  # as RAUC does before writing the slot
    card.out("set-primary", "B")
    assert card.out("get-primary") == "B"  # what vci update install reports
    assert card.out("reboot-argument") == "0 tryboot"
    assert card.autoboot() == (2, 3)  # [all] is still A: any other reset comes back to A
    cmdline = (card.boots / "p3" / "cmdline.txt").read_text().split()
    assert "root=PARTUUID=56434931-06" in cmdline and "rauc.slot=B" in cmdline
    assert "ro" in cmdline and not any(w.startswith("root=PARTUUID=56434931-05") for w in cmdline)
    assert (card.boots / "p2" / "cmdline.txt").read_text() == CMDLINE_A  # A's untouched


def test_a_trial_never_marked_good_falls_back_to_a(card: Card) -> None:
    card.out("set-state", "B", "bad")
    card.out("set-primary", "B")
    assert card.reboot() == 3  # the trial boot
    assert card.out("get-current") == "B" and card.out("get-primary") == "B"
    # the health check never ran mark-good (or the watchdog reset the box): a plain reboot
    assert card.out("reboot-argument") == ""
    assert card.reboot() == 2
    assert card.out("get-current") == "A"
    assert card.out("get-primary") == "A"
    assert card.out("get-state", "B") == "bad"
    assert card.out("get-state", "A") == "good"
    assert card.reboot() == 2  # and stays there


def test_mark_good_during_the_trial_commits_b(card: Card) -> None:
    card.out("set-state", "B", "bad")
    card.out("set-primary", "B")
    assert card.reboot() == 3
    card.out("set-state", "B", "good")  # rauc status mark-good booted
    assert card.autoboot() == (3, 2)
    assert card.out("get-primary") == "B"
    assert card.reboot() == 3  # a plain reboot now starts B
    assert card.out("get-current") == "B" and card.out("get-primary") == "B"
    assert card.out("get-state", "B") == "good" and card.out("get-state", "A") == "good"
    # the next update goes to A the same way
    card.out("set-state", "A", "bad")
    card.out("set-primary", "A")
    assert card.reboot() == 2
    card.out("set-state", "A", "good")
    assert card.autoboot() == (2, 3)


def test_mark_bad_during_the_trial_returns_to_a_at_the_plain_reboot(card: Card) -> None:
    card.out("set-state", "B", "bad")
    card.out("set-primary", "B")
    assert card.reboot() == 3
    card.out("set-state", "B", "bad")  # vci update health --fallback: mark-bad, then reboot
    assert card.out("reboot-argument") == ""
    assert card.reboot() == 2
    assert card.out("get-primary") == "A" and card.out("get-state", "B") == "bad"


def test_mark_good_outside_a_trial_does_not_switch(card: Card) -> None:
    card.out("set-state", "B", "bad")
    card.out("set-primary", "B")
    card.out("set-state", "B", "good")  # mark-good other, before any reboot: no commit
    assert card.autoboot() == (2, 3)


def test_a_kernel_that_cannot_arm_tryboot_is_refused(card: Card) -> None:
    """Debian's arm64 kernel reboots without setting the firmware's flag: an armed trial would
    never happen, so the installation fails instead of pretending."""
    card.vcio.unlink()
    done = card.run("set-primary", "B")
    assert done.returncode == 1
    assert "cannot arm the firmware's tryboot flag" in done.stderr
    assert card.autoboot() == (2, 3) and card.out("get-primary") == "A"


def test_a_boot_partition_without_cmdline_is_refused(card: Card) -> None:
    (card.boots / "p3" / "cmdline.txt").unlink()  # a bundle without the boot image
    done = card.run("set-primary", "B")
    assert done.returncode == 1 and "no readable cmdline.txt" in done.stderr
    assert card.out("reboot-argument") == ""


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n",  # no tryboot_a_b=1
        "[all]\ntryboot_a_b=1\nboot_partition=2\n",  # no [tryboot]
        "[all]\ntryboot_a_b=1\nboot_partition=two\n[tryboot]\nboot_partition=3\n",
        "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\ngarbage line\n",
        "\x00\x00\x00",
    ],
)
def test_a_malformed_autoboot_txt_is_a_clear_error(card: Card, text: str) -> None:
    (card.auto / "autoboot.txt").write_text(text)
    for args in (["get-primary"], ["set-primary", "B"], ["set-state", "B", "good"]):
        done = card.run(*args)
        assert done.returncode == 1, args
        assert "autoboot.txt" in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""


def test_a_boot_partition_outside_system_conf_is_a_clear_error(card: Card) -> None:
    (card.auto / "autoboot.txt").write_text(AUTOBOOT_A.replace("=2", "=7"))
    done = card.run("get-primary")
    assert done.returncode == 1 and "boot partition 7 belongs to no slot" in done.stderr


def test_wrong_arguments_are_a_usage_error(card: Card) -> None:
    for args in ([], ["get-primary", "A"], ["set-state", "A"], ["frobnicate"]):
        done = card.run(*args)
        assert done.returncode == 2 and "usage:" in done.stderr
    done = card.run("set-state", "A", "maybe")
    assert done.returncode == 1 and "good or bad" in done.stderr
    done = card.run("get-state", "C")
    assert done.returncode == 1 and "no slot with bootname 'C'" in done.stderr


def test_an_interrupted_write_leaves_the_old_files(card: Card) -> None:
    """A power cut after NAME.tmp was written but before the rename: NAME is whole (the old
    content), the left-over is ignored and replaced by the next write."""
    (card.auto / "autoboot.txt.tmp").write_text("[all]\ntryboot_a_b=1\nboot_parti")
    (card.auto / "vci-slots.txt.tmp").write_text("A=go")
    assert card.out("get-primary") == "A" and card.out("get-state", "A") == "good"
    card.out("set-state", "B", "bad")
    card.out("set-primary", "B")
    assert card.reboot() == 3
    card.out("set-state", "B", "good")
    assert card.autoboot() == (3, 2)
    assert sorted(p.name for p in card.auto.iterdir()) == ["autoboot.txt", "vci-slots.txt"]


def test_a_cut_between_the_state_and_autoboot_txt_keeps_the_old_primary(card: Card) -> None:
    """The commit writes vci-slots.txt first: cut before autoboot.txt, the box boots A."""
    card.out("set-state", "B", "bad")
    card.out("set-primary", "B")
    assert card.reboot() == 3
    saved = (card.auto / "autoboot.txt").read_text()
    card.out("set-state", "B", "good")
    (card.auto / "autoboot.txt").write_text(saved)  # as if the second rename never happened
    assert card.reboot() == 2
    assert card.out("get-primary") == "A" and card.out("get-current") == "A"


def test_system_conf_pairs_each_boot_slot_with_its_root() -> None:
    text = SYSTEM_CONF.read_text()
    assert "bootloader=custom" in text and "compatible=vci-gateway-rpi-arm64" in text
    assert "bootloader-custom-backend=/usr/lib/vci/rauc-tryboot" in text
    assert "bundle-formats=-plain" in text and "path=/etc/rauc/keyring.pem" in text
    amd64 = (ROOT / "image/rauc/system.conf").read_text()
    assert "compatible=vci-gateway-amd64" in amd64  # an amd64 bundle is refused on a Pi


# ---- the real RAUC ----


def _can_run_rauc() -> str:
    for tool in ("rauc", "dbus-daemon", "mksquashfs", "mkfs.vfat", "mcopy", "mkfs.ext4", "openssl"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} missing (scripts/test installs rauc, squashfs-tools, mtools)"
    if os.geteuid() != 0:
        return "rauc install mounts the bundle (loop device): root only"
    return ""


class RaucService:
    """``rauc service`` with a test system.conf on a private session bus."""

    def __init__(self, base: Path, card: Card, conf: Path) -> None:
        self.base, self.card, self.conf = base, card, conf
        self.bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.bus.stdout
        address = self.bus.stdout.readline().strip()
        self.env = {
            **card.env,
            "DBUS_SESSION_BUS_ADDRESS": address,
            "DBUS_STARTER_BUS_TYPE": "session",
        }
        self.service: subprocess.Popen[str] | None = None

    def start(self, booted: str) -> None:
        """The service of one boot (RAUC 1.8 takes the booted slot from rauc.slot=)."""
        self.stop()
        self.service = subprocess.Popen(
            ["rauc", f"--conf={self.conf}", f"--override-boot-slot={booted}", "service"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while self.rauc("status").returncode != 0:
            assert time.monotonic() < deadline, "rauc service did not come up"
            assert self.service.poll() is None, "rauc service exited"
            time.sleep(0.1)

    def rauc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["rauc", *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def status(self) -> dict:
        import json

        done = self.rauc("status", "--detailed", "--output-format=json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def stop(self) -> None:
        if self.service and self.service.poll() is None:
            self.service.terminate()
            self.service.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self.bus.terminate()
        self.bus.wait(timeout=10)


@pytest.fixture
def rauc_box(tmp_path: Path) -> Iterator[tuple[Card, RaucService, Path]]:
    """The Pi's system.conf pointed at files: slots, data directory, keyring (a TEST CA)."""
    if reason := _can_run_rauc():
        pytest.skip(reason)
    dev = tmp_path / "dev"
    dev.mkdir()
    for n in ("02", "03", "05", "06"):
        with (dev / f"56434931-{n}").open("wb") as f:
            f.truncate(8 * 2**20)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=VCI TEST release", "-keyout", str(tmp_path / "release.key"), "-out",
         str(tmp_path / "release.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    conf = tmp_path / "system.conf"
    conf.write_text(
        SYSTEM_CONF.read_text()
        .replace("/dev/disk/by-partuuid", str(dev))
        .replace("/data/rauc", str(tmp_path / "data"))
        .replace("/run/rauc", str(tmp_path / "mnt"))
        .replace("/etc/rauc/keyring.pem", str(tmp_path / "release.pem"))
        .replace("/usr/lib/vci/rauc-tryboot", str(BACKEND))
        # no device mapper here for verity bundles: the plain format, signed the same way (CMS)
        .replace("bundle-formats=-plain", "bundle-formats=plain")
    )
    card = Card(tmp_path / "card", conf)
    service = RaucService(tmp_path, card, conf)
    try:
        yield card, service, tmp_path
    finally:
        service.close()


def make_bundle(base: Path, compatible: str, name: str) -> Path:
    content = base / f"content-{name}"
    content.mkdir()
    (content / "cmdline.txt").write_text(CMDLINE_A)
    subprocess.run(["mkfs.vfat", "-C", str(content / "boot.vfat"), "4096"], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["mcopy", "-i", str(content / "boot.vfat"), str(content / "cmdline.txt"),
                    "::"], check=True)  # fmt: skip
    tree = base / f"tree-{name}"
    (tree / "etc/vci").mkdir(parents=True)
    (tree / "etc/vci/release").write_text("0.2.0\n")
    (tree / "etc/noise").write_bytes(os.urandom(200_000))  # mksquashfs wants more than 4 KiB
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(content / "rootfs.ext4"),
                    "4M"], check=True)  # fmt: skip
    (content / "cmdline.txt").unlink()
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={compatible}\nversion=0.2.0\n\n[bundle]\nformat=plain\n\n"
        "[image.boot]\nfilename=boot.vfat\n\n[image.rootfs]\nfilename=rootfs.ext4\n"
    )
    bundle = base / f"{name}.raucb"
    subprocess.run(
        ["rauc", "bundle", f"--cert={base / 'release.pem'}", f"--key={base / 'release.key'}",
         str(content), str(bundle)],
        check=True, capture_output=True,
    )  # fmt: skip
    return bundle


def test_real_rauc_installs_on_trial_and_mark_good_commits(
    rauc_box: tuple[Card, RaucService, Path],
) -> None:
    card, service, base = rauc_box
    service.start("A")
    status = service.status()
    assert status["booted"] == "A" and status["boot_primary"] == "rootfs.0"
    # a bundle for the amd64 box is refused before anything is written
    amd64 = make_bundle(base, "vci-gateway-amd64", "amd64")
    done = service.rauc("install", str(amd64))
    assert done.returncode != 0
    assert service.status()["boot_primary"] == "rootfs.0" and card.autoboot() == (2, 3)
    # ours: written into B's group, B armed for one trial boot
    bundle = make_bundle(base, "vci-gateway-rpi-arm64", "pi")
    done = service.rauc("install", str(bundle))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (base / "dev/56434931-06").read_bytes()[:4096] == (
        base / "content-pi/rootfs.ext4"
    ).read_bytes()[:4096]
    assert service.status()["boot_primary"] == "rootfs.1"
    assert card.out("reboot-argument") == "0 tryboot"
    assert card.autoboot() == (2, 3)
    # the trial boot of B; the health check's mark-good commits it
    assert card.reboot() == 3
    service.start("B")
    done = service.rauc("status", "mark-good", "booted")
    assert done.returncode == 0, done.stderr
    assert card.autoboot() == (3, 2)
    assert card.reboot() == 3
    service.start("B")
    status = service.status()
    assert status["boot_primary"] == "rootfs.1"
    boot = {name: info for entry in status["slots"] for name, info in entry.items()}
    assert boot["rootfs.1"]["boot_status"] == "good" and boot["rootfs.0"]["boot_status"] == "good"


def test_real_rauc_trial_without_mark_good_falls_back(
    rauc_box: tuple[Card, RaucService, Path],
) -> None:
    card, service, base = rauc_box
    service.start("A")
    done = service.rauc("install", str(make_bundle(base, "vci-gateway-rpi-arm64", "pi")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert card.reboot() == 3
    service.start("B")  # the gateway never becomes healthy: no mark-good; the watchdog resets
    assert card.boot(tryboot=False) == 2
    service.start("A")
    status = service.status()
    assert status["booted"] == "A" and status["boot_primary"] == "rootfs.0"
    boot = {name: info for entry in status["slots"] for name, info in entry.items()}
    assert boot["rootfs.1"]["boot_status"] == "bad"


def test_vci_update_install_reboots_with_tryboot_only_when_armed(
    card: Card, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``vci update install --reboot``: ``systemctl reboot '0 tryboot'`` on the Pi once the
    backend armed a trial; a plain reboot otherwise, and always on amd64 (no backend)."""
    from firmware_py.cli.update_commands import reboot_command

    for key, value in card.env.items():
        if key.startswith("VCI_TRYBOOT_"):
            monkeypatch.setenv(key, value)
    assert reboot_command(BACKEND) == ["systemctl", "reboot"]
    card.out("set-state", "B", "bad")
    card.out("set-primary", "B")
    assert reboot_command(BACKEND) == ["systemctl", "reboot", "0 tryboot"]
    assert reboot_command(tmp_path / "no-backend") == ["systemctl", "reboot"]  # amd64


@pytest.mark.skipif(shutil.which("rauc") is None, reason="rauc: scripts/test installs it")
def test_image_bundle_carries_the_pi_boot_partition_with_its_root(tmp_path: Path) -> None:
    """image/bundle on a Pi image's directory: both images of the slot group, the Pi's
    compatible, verity, signed; ``rauc info`` checks the signature against the keyring."""
    import json

    image = tmp_path / "arm64-box"
    image.mkdir()
    subprocess.run(["mkfs.vfat", "-C", str(image / "boot.vfat"), "4096"], check=True,
                   capture_output=True)  # fmt: skip
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "noise").write_bytes(os.urandom(200_000))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image / "rootfs.img"), "4M"],
                   check=True)  # fmt: skip
    (image / "manifest.json").write_text(json.dumps({
        "rootfs": "rootfs.img", "boot": "boot.vfat", "version": "0.2.0",
        "compatible": "vci-gateway-rpi-arm64",
    }))  # fmt: skip
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=VCI TEST release", "-keyout", str(tmp_path / "k.pem"), "-out",
         str(tmp_path / "c.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    out = tmp_path / "pi.raucb"
    subprocess.run(
        [sys.executable, str(ROOT / "image/bundle"), "--image", str(image), "--cert",
         str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem"), "--keyring",
         str(tmp_path / "c.pem"), "--fast", "-o", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    info = subprocess.run(
        ["rauc", "info", f"--keyring={tmp_path / 'c.pem'}", "--output-format=json", str(out)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    data = json.loads(info.stdout)
    assert data["compatible"] == "vci-gateway-rpi-arm64"
    classes = {name for image in data["images"] for name in image}
    assert classes == {"boot", "rootfs"}


def test_a_refused_activation_is_told_in_plain_words(card: Card) -> None:
    """RAUC's message when the backend refuses set-primary (as on Debian's kernel) maps to the
    project's words, not to the generic 'could not install'."""
    from firmware_py.cli.update_commands import explain_rauc_error

    card.vcio.unlink()
    reason = card.run("set-primary", "B").stderr
    message, hint = explain_rauc_error(
        "Installation error: failed to activate slot rootfs.1: custom backend: "
        f"/usr/lib/vci/rauc-tryboot failed with exit code 1\n{reason}"
    )
    assert "tryboot" in message and "docs/update.md" in hint


def test_real_rauc_install_fails_plainly_on_a_kernel_that_cannot_arm_tryboot(
    rauc_box: tuple[Card, RaucService, Path],
) -> None:
    """Debian's kernel: RAUC writes slot B, the backend refuses set-primary, the install fails
    with the message vci update install explains; the box keeps booting A."""
    from firmware_py.cli.update_commands import explain_rauc_error

    card, service, base = rauc_box
    card.vcio.unlink()
    service.start("A")
    done = service.rauc("install", str(make_bundle(base, "vci-gateway-rpi-arm64", "pi")))
    assert done.returncode != 0
    # what vci update install reads: the service's LastError (the client prints it on stdout,
    # after its progress lines) and the client's stderr
    (last_error,) = [ln for ln in done.stdout.splitlines() if ln.startswith("LastError:")]
    assert "failed to activate slot rootfs.1" in last_error, last_error
    message, _ = explain_rauc_error(f"{last_error}\n{done.stderr}")
    assert "could not be made the one to boot" in message
    assert card.out("get-primary") == "A" and card.out("reboot-argument") == ""
    assert card.reboot() == 2
