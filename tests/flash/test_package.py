"""Flash packages: build and read back in every image format; every kind of damage or untrusted
origin is refused with its reason before anything could reach an ECU."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_py.errors import PackageError
from firmware_py.keys import load_public_keys
from firmware_py.uds.flash.package import build_package, read_package
from tests.flash.conftest import EGS_REGION, image, sha


@pytest.mark.parametrize("fmt", ["ihex", "srec", "bin"])
def test_round_trip(publisher, fmt: str) -> None:
    data = image("12.05.00", 70_000)
    path = publisher.package(
        f"egs.{fmt}.vcipkg",
        "EGS",
        0x18,
        "12.05.00",
        data,
        fmt=fmt,
        expects=("12.04.00",),
        hw="8699100",
    )
    package = read_package(path.read_bytes(), load_public_keys(publisher.trust))
    assert (
        package.ecu_name == "EGS"
        and package.version == "12.05.00"
        and package.sw_versions == ("12.04.00",)
    )
    assert [(s.address, s.data) for s in package.segments] == [(EGS_REGION, data)]
    assert package.segments[0].sha256 == sha(data)


def rewrite(raw: bytes, name: str, change) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, change(data) if info.filename == name else data)
    return out.getvalue()


def flip(data: bytes, at: int = 100) -> bytes:
    b = bytearray(data)
    b[at % len(b)] ^= 0x01
    return bytes(b)


@pytest.fixture
def good(publisher):
    path = publisher.package("egs.vcipkg", "EGS", 0x18, "12.05.00", image("12.05.00", 20_000))
    return path.read_bytes(), load_public_keys(publisher.trust)


def test_a_flipped_bit_in_the_image(good) -> None:
    raw, trusted = good
    with pytest.raises(PackageError, match="does not match the signed manifest"):
        read_package(
            rewrite(
                raw,
                "image.hex",
                lambda d: d[:200] + (b"0" if d[200:201] != b"0" else b"1") + d[201:],
            ),
            trusted,
        )


def test_a_flipped_bit_in_the_manifest(good) -> None:
    raw, trusted = good
    with pytest.raises(PackageError, match="signature does not match"):
        read_package(
            rewrite(raw, "manifest.json", lambda d: d.replace(b"12.05.00", b"12.05.01")), trusted
        )


def test_a_flipped_bit_in_the_signature(good) -> None:
    raw, trusted = good

    def damage(sig: bytes) -> bytes:
        kid, b64 = sig.split()
        import base64

        return kid + b"\n" + base64.b64encode(flip(base64.b64decode(b64), 5)) + b"\n"

    with pytest.raises(PackageError, match="signature does not match"):
        read_package(rewrite(raw, "signature", damage), trusted)


def test_an_unknown_publisher(good) -> None:
    raw, _ = good
    with pytest.raises(PackageError, match="does not trust"):
        read_package(raw, {"someone-else": Ed25519PrivateKey.generate().public_key()})


def test_a_corrupted_file_on_disk(good) -> None:
    raw, trusted = good
    with pytest.raises(PackageError):
        read_package(raw[: len(raw) // 2], trusted)
    with pytest.raises(PackageError):
        read_package(flip(raw, len(raw) // 2), trusted)
    with pytest.raises(PackageError, match="not a flash package"):
        read_package(b"MZ this is not a zip", trusted)


def test_a_zip_bomb_is_refused(publisher) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", b" " * (10 * 1024 * 1024))
        z.writestr("signature", b"test-publisher AAAA")
    with pytest.raises(PackageError, match="too large or too compressed"):
        read_package(out.getvalue(), load_public_keys(publisher.trust))


def test_segments_must_match_the_manifest(publisher) -> None:
    from firmware_py.keys import load_private_key

    kid, key = load_private_key(publisher.key_file)
    raw = build_package(
        ecu_name="EGS",
        ecu_address=0x18,
        version="1.0.0",
        segments=[(EGS_REGION, b"\x01" * 100)],
        key=key,
        kid=kid,
    )
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(raw)).read("manifest.json"))
    assert manifest["segments"][0]["length"] == 100 and manifest["image"]["format"] == "ihex"


def test_only_regular_files_of_bounded_size_are_read_as_packages(publisher, tmp_path) -> None:
    """A FIFO (which would block the reader), a device (/dev/zero: endless), a directory and an
    oversized file are refused before anything is read; the same file of allowed size is read."""
    import os
    import threading

    from firmware_py.uds.flash.package import load_package_file

    trusted = load_public_keys(publisher.trust)
    fifo = tmp_path / "pipe.vcipkg"
    os.mkfifo(fifo)
    refused: list[str] = []

    def read_fifo() -> None:
        try:
            load_package_file(fifo, trusted)
        except PackageError as err:
            refused.append(str(err))

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert "not a package file" in refused[0]
    for path in (Path("/dev/zero"), tmp_path):
        with pytest.raises(PackageError, match="not a package file"):
            load_package_file(path, trusted)
    package = publisher.package("egs.vcipkg", "EGS", 0x18, "12.05.00", image("12.05.00", 4096))
    with pytest.raises(PackageError, match="more than the 1000 a package may have"):
        load_package_file(package, trusted, max_bytes=1000)
    assert load_package_file(package, trusted).version == "12.05.00"


def test_vci_flash_refuses_a_device_before_it_reads_it(flash_box) -> None:
    proc = flash_box.vci("flash", "/dev/zero", timeout=30)
    assert proc.returncode != 0
    assert "not a package file" in proc.stderr


@pytest.mark.parametrize(
    ("change", "words"),
    [
        # two versions in one signed manifest: a reader that takes the first and one that takes
        # the last would flash different things under the same signature
        (lambda m: m.replace(b'"version":', b'"version": "99.0.0", "version":'), "appears twice"),
        (lambda m: m.replace(b'"address": 24', b'"address": NaN'), "not a JSON number"),
    ],
)
def test_a_signed_manifest_that_is_not_strict_json(publisher, change, words) -> None:
    import base64

    from firmware_py.keys import load_private_key

    kid, key = load_private_key(publisher.key_file)
    raw = publisher.package("egs.vcipkg", "EGS", 0x18, "12.05.00", image("12.05.00", 2_000))
    manifest = change(zipfile.ZipFile(io.BytesIO(raw.read_bytes())).read("manifest.json"))
    signature = f"{kid}\n{base64.b64encode(key.sign(manifest)).decode()}\n".encode()
    resigned = rewrite(
        rewrite(raw.read_bytes(), "manifest.json", lambda _: manifest),
        "signature",
        lambda _: signature,
    )
    with pytest.raises(PackageError, match=words):
        read_package(resigned, load_public_keys(publisher.trust))
