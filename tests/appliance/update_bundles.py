"""Update bundles for the VM's update tests, made from the test image with image/bundle.

Each bundle's root file system is a sparse copy of the image's root slot with a few files
changed in place by ``debugfs -w`` (no mount): its release version, and for the unhealthy one
a gateway that exits at once and a short health-check bound. ``other.raucb`` is the good
bundle re-signed (``rauc resign``) by a signer under another CA than the box's keyring.
All are put on a "USB stick" (an ext4 image made with ``mkfs.ext4 -d``) the VM gets as
/dev/vdb.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOOD_VERSION = "0.2.0-test"
UNHEALTHY_VERSION = "0.3.0-unhealthy"
OFFERED_VERSION = "999.1.0"
"""the release the portal test offers: numeric (an offer's version is, docs/update.md) and newer
than any the image is built as"""
UNHEALTHY_HEALTH_TIMEOUT = 60
"""seconds the unhealthy release's health check waits before it falls back"""


def _run(cmd: list[str], **kw: object) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return str(result.stdout)


def variant_rootfs(image_dir: Path, out: Path, version: str, files: dict[str, str]) -> Path:
    """A copy of the image's root slot with /etc/vci/release saying ``version`` and ``files``
    ({absolute path: content}) written in; their directories are made when missing."""
    info = json.loads((image_dir / "manifest.json").read_text())
    _run(["cp", "--sparse=always", str(image_dir / info["rootfs"]), str(out)])
    files = {"/etc/vci/release": f"{version}\n", **files}
    staging = out.with_suffix(".files")
    staging.mkdir(exist_ok=True)
    script = []
    for n, (path, content) in enumerate(files.items()):
        local = staging / f"f{n}"
        local.write_text(content)
        local.chmod(0o644)
        parent, name = path.rsplit("/", 1)
        script += [f"mkdir {parent}", f"cd {parent}", f"rm {name}", f"write {local} {name}"]
    cmdfile = staging / "debugfs.cmd"
    cmdfile.write_text("\n".join(script) + "\n")
    # debugfs goes on past a failed line (mkdir of a directory that exists, rm of a file that
    # does not); what counts is checked below by reading the files back
    subprocess.run(["debugfs", "-w", "-f", str(cmdfile), str(out)], capture_output=True)
    for path, content in files.items():
        assert _run(["debugfs", "-R", f"cat {path}", str(out)]) == content, path
    return out


def make_bundle(image_dir: Path, keys: Path, rootfs: Path, version: str, out: Path) -> Path:
    _run(
        [sys.executable, str(REPO / "image/bundle"), "--fast", "--image", str(image_dir),
         "--rootfs", str(rootfs), "--version", version, "--cert", str(keys / "release.pem"),
         "--key", str(keys / "release.key"), "--keyring", str(keys / "ca.pem"),
         "-o", str(out)],
    )  # fmt: skip
    return out


def make_offered_bundle(image_dir: Path, keys: Path, work: Path) -> Path:
    """A good bundle of release OFFERED_VERSION (the portal's offer, test_vm_portal.py)."""
    root = variant_rootfs(image_dir, work / "offered.ext4", OFFERED_VERSION, {})
    bundle = make_bundle(image_dir, keys, root, OFFERED_VERSION, work / "offered.raucb")
    root.unlink()
    return bundle


def make_stick(image_dir: Path, keys: Path, work: Path) -> tuple[Path, dict[str, int]]:
    """The "USB stick" with good.raucb, unhealthy.raucb and other.raucb: its image file and
    the bundles' sizes in bytes."""
    files = work / "stick"
    files.mkdir(parents=True, exist_ok=True)
    good_root = variant_rootfs(image_dir, work / "good.ext4", GOOD_VERSION, {})
    make_bundle(image_dir, keys, good_root, GOOD_VERSION, files / "good.raucb")
    good_root.unlink()
    bad_root = variant_rootfs(
        image_dir,
        work / "unhealthy.ext4",
        UNHEALTHY_VERSION,
        {
            "/etc/systemd/system/vci-gateway.service.d/test-unhealthy.conf": (
                "[Service]\nExecStart=\nExecStart=/bin/false\n"
            ),
            "/etc/systemd/system/vci-health.service.d/test-bound.conf": (
                f"[Service]\nEnvironment=VCI_HEALTH_TIMEOUT={UNHEALTHY_HEALTH_TIMEOUT}\n"
            ),
        },
    )
    make_bundle(image_dir, keys, bad_root, UNHEALTHY_VERSION, files / "unhealthy.raucb")
    bad_root.unlink()
    _run(
        ["rauc", "resign", f"--cert={keys / 'other.pem'}", f"--key={keys / 'other.key'}",
         f"--keyring={keys / 'ca.pem'}", f"--signing-keyring={keys / 'other-ca.pem'}",
         str(files / "good.raucb"), str(files / "other.raucb")],
    )  # fmt: skip
    sizes = {f.name: f.stat().st_size for f in files.iterdir()}
    size_mb = sum(sizes.values()) // 2**20 + 64
    stick = work / "stick.img"
    _run(["mkfs.ext4", "-q", "-F", "-L", "VCI-USB", "-d", str(files), str(stick), f"{size_mb}M"])
    for f in files.iterdir():
        f.unlink()
    return stick, sizes
