"""Flash packages: one signed file with a manifest and the image (docs/flash-package.md).

A package is a zip archive of ``manifest.json``, the image (Intel HEX, Motorola S-record or raw
binary, read with bincopy) and ``signature`` (the publisher's key id and an Ed25519 signature
over the manifest's bytes). The manifest holds the SHA-256 of the image file and of every
segment, so the signature covers the data. Reading is bounded (entries, sizes, compression ratio)
and every failure is a :class:`PackageError` that says what is wrong. Nothing is sent to an ECU
before a package has passed :func:`read_package`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import bincopy
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py import strict_json
from firmware_py.errors import PackageError
from firmware_py.i18n import N_

FORMAT = 1
MAX_PACKAGE = 256 * 1024 * 1024
MAX_IMAGE = 64 * 1024 * 1024
MAX_MANIFEST = 64 * 1024
MAX_ENTRIES = 8
MAX_RATIO = 200  # refuse zip entries that inflate more than this (zip bombs)
IMAGE_FORMATS = {"ihex": "image.hex", "srec": "image.srec", "bin": "image.bin"}


@dataclass(frozen=True)
class Segment:
    address: int
    data: bytes

    @property
    def length(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class SequenceParams:
    erase_routine: int = 0xFF00
    check_routine: int = 0x0202
    dependency_routine: int = 0xFF01
    security_level: int = 0x11
    max_block_length: int | None = None
    """Upper bound for TransferData blocks (SID + counter + data); None: the ECU's own limit."""


@dataclass(frozen=True)
class FlashPackage:
    ecu_name: str
    ecu_address: int
    hw_number: str | None
    sw_versions: tuple[str, ...]
    """software versions the ECU may have before (empty: any)"""
    version: str
    segments: tuple[Segment, ...]
    sequence: SequenceParams
    publisher: str
    sha256: str
    """of the whole package file: names it in the journal"""

    @property
    def size(self) -> int:
        return sum(s.length for s in self.segments)


def _image_bytes(segments: list[tuple[int, bytes]], image_format: str) -> bytes:
    binfile = bincopy.BinFile()
    for address, data in segments:
        binfile.add_binary(data, address=address)
    if image_format == "ihex":
        return binfile.as_ihex().encode()
    if image_format == "srec":
        return binfile.as_srec().encode()
    if len(segments) != 1:
        raise PackageError(N_("a raw binary image holds exactly one segment"))
    return segments[0][1]


def build_package(
    *,
    ecu_name: str,
    ecu_address: int,
    version: str,
    segments: list[tuple[int, bytes]],
    key: Ed25519PrivateKey,
    kid: str,
    image_format: str = "ihex",
    hw_number: str | None = None,
    sw_versions: tuple[str, ...] = (),
    sequence: SequenceParams = SequenceParams(),
) -> bytes:
    """A signed package (the bytes of the zip file)."""
    if image_format not in IMAGE_FORMATS:
        raise PackageError(
            N_("image format must be one of {value}"), values={"value": ", ".join(IMAGE_FORMATS)}
        )
    if not segments:
        raise PackageError(N_("a package needs at least one segment"))
    image = _image_bytes(segments, image_format)
    manifest = {
        "format": FORMAT,
        "ecu": {"name": ecu_name, "address": ecu_address},
        "expects": {"hw_number": hw_number, "sw_versions": list(sw_versions)},
        "version": version,
        "image": {
            "file": IMAGE_FORMATS[image_format],
            "format": image_format,
            "sha256": hashlib.sha256(image).hexdigest(),
        },
        "segments": [
            {"address": a, "length": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for a, d in segments
        ],
        "sequence": sequence.__dict__,
        "publisher": kid,
        "created": int(time.time()),
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    signature = f"{kid}\n{base64.b64encode(key.sign(manifest_bytes)).decode()}\n".encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest_bytes)
        z.writestr(IMAGE_FORMATS[image_format], image)
        z.writestr("signature", signature)
    return out.getvalue()


def _read_entry(z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise PackageError(N_("the package has no {name}"), values={"name": name}) from None
    if info.file_size > limit or (
        info.compress_size and info.file_size / info.compress_size > MAX_RATIO
    ):
        raise PackageError(
            N_("{name} in the package is too large or too compressed (possible zip bomb)"),
            values={"name": name},
        )
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise PackageError(
            N_("{name} in the package is larger than it says"), values={"name": name}
        )
    return data


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise PackageError(N_("the package manifest is invalid: {what}"), values={"what": what})


def read_package(raw: bytes | BinaryIO, trusted: Mapping[str, Ed25519PublicKey]) -> FlashPackage:
    """Verify and read a package: signature by a trusted publisher, image hash, segment hashes.
    ``raw`` is the file's bytes or the open file (read as needed, not held whole in memory)."""
    size = len(raw) if isinstance(raw, bytes | bytearray) else raw.seek(0, io.SEEK_END)
    if size > MAX_PACKAGE:
        raise PackageError(N_("the package file is too large"))
    try:
        z = zipfile.ZipFile(io.BytesIO(raw) if isinstance(raw, bytes | bytearray) else raw)
        names = z.namelist()
    except (zipfile.BadZipFile, ValueError) as err:
        raise PackageError(
            N_("this is not a flash package (not a valid archive: {err})"),
            values={"err": err},
            hint=N_("Download the package again"),
        ) from err
    with z:
        _require(len(names) <= MAX_ENTRIES, "too many files")
        try:
            manifest_bytes = _read_entry(z, "manifest.json", MAX_MANIFEST)
            signature_text = _read_entry(z, "signature", 4096).decode("ascii")
        except (zipfile.BadZipFile, UnicodeDecodeError, OSError, EOFError) as err:
            raise PackageError(
                N_("the package is damaged: {err}"),
                values={"err": err},
                hint=N_("Download the package again"),
            ) from err
        try:
            kid, sig_b64 = signature_text.split()
            signature = base64.b64decode(sig_b64, validate=True)
        except (ValueError, TypeError) as err:
            raise PackageError(N_("the package's signature is malformed")) from err
        key = trusted.get(kid)
        if key is None:
            raise PackageError(
                N_("the package is signed by publisher key {kid}, which this box does not trust"),
                values={"kid": repr(kid)},
                hint=N_(
                    "Install the publisher's public key, or get the package from a trusted publisher"
                ),
            )
        try:
            key.verify(signature, manifest_bytes)
        except InvalidSignature as err:
            raise PackageError(
                N_("the package's signature does not match its manifest: the package was changed"),
                hint=N_("Download the package again; do not flash it"),
            ) from err
        try:
            # strict: a duplicate key would let two readers see two manifests under one signature
            m: Any = strict_json.loads(manifest_bytes, max_bytes=MAX_MANIFEST)
            _require(m.get("format") == FORMAT, "unsupported format")
            image_name = m["image"]["file"]
            image_format = m["image"]["format"]
            _require(
                image_format in IMAGE_FORMATS and image_name == IMAGE_FORMATS[image_format],
                "image file",
            )
            try:
                image = _read_entry(z, image_name, MAX_IMAGE)
            except (zipfile.BadZipFile, OSError, EOFError) as err:  # CRC errors land here
                raise PackageError(
                    N_("the package's image is damaged: {err}"),
                    values={"err": err},
                    hint=N_("Download the package again"),
                ) from err
            if hashlib.sha256(image).hexdigest() != m["image"]["sha256"]:
                raise PackageError(
                    N_("the image does not match the signed manifest (SHA-256 differs)"),
                    hint=N_("Download the package again"),
                )
            segments = _parse_image(image, image_format, m["segments"])
            seq = SequenceParams(**m["sequence"])
            return FlashPackage(
                ecu_name=str(m["ecu"]["name"]),
                ecu_address=int(m["ecu"]["address"]),
                hw_number=m["expects"]["hw_number"],
                sw_versions=tuple(m["expects"]["sw_versions"]),
                version=str(m["version"]),
                segments=segments,
                sequence=seq,
                publisher=kid,
                sha256=_sha256(raw),
            )
        except (KeyError, TypeError, ValueError, strict_json.StrictJsonError) as err:
            if isinstance(err, PackageError):
                raise
            raise PackageError(
                N_("the package manifest is invalid: {err}"), values={"err": repr(err)}
            ) from err


def _sha256(raw: bytes | BinaryIO) -> str:
    if isinstance(raw, bytes | bytearray):
        return hashlib.sha256(raw).hexdigest()
    raw.seek(0)
    digest = hashlib.sha256()
    while chunk := raw.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _parse_image(
    image: bytes, image_format: str, declared: list[dict[str, Any]]
) -> tuple[Segment, ...]:
    if image_format == "bin":
        _require(len(declared) == 1, "a raw binary image holds one segment")
        parsed = [(int(declared[0]["address"]), image)]
    else:
        binfile = bincopy.BinFile()
        try:
            text = image.decode("ascii")
            binfile.add_ihex(text) if image_format == "ihex" else binfile.add_srec(text)
        except (bincopy.Error, UnicodeDecodeError, ValueError) as err:
            raise PackageError(
                N_("the image is not valid {image_format}: {err}"),
                values={"image_format": image_format, "err": err},
            ) from err
        parsed = [(s.minimum_address, bytes(s.data)) for s in binfile.segments]
    _require(len(parsed) == len(declared), "segments differ from the image")
    segments: list[Segment] = []
    for (address, data), d in zip(parsed, declared, strict=True):
        seg = Segment(address, data)
        if address != d["address"] or seg.length != d["length"] or seg.sha256 != d["sha256"]:
            raise PackageError(
                N_("segment at 0x{address} does not match the signed manifest"),
                values={"address": format(address, "08X")},
            )
        segments.append(seg)
    return tuple(segments)


def read_package_file(path: Path, max_bytes: int = MAX_PACKAGE) -> bytes:
    """The bytes of a package file: a regular file (not a device, FIFO or directory: opened
    without blocking and checked before reading) of at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise PackageError(
            N_("cannot read package {path}: {strerror}"),
            values={"path": path, "strerror": err.strerror},
        ) from err
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PackageError(
                N_("{path} is not a package file"),
                values={"path": path},
                hint=N_("Name a .vcipkg file"),
            )
        raise PackageError(
            N_("{path} has {st_size} bytes, more than the {max_bytes} a package may have"),
            values={"path": path, "st_size": info.st_size, "max_bytes": max_bytes},
        )
    with os.fdopen(fd, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PackageError(
            N_("{path} grew beyond {max_bytes} bytes while it was read"),
            values={"path": path, "max_bytes": max_bytes},
        )
    return raw


def load_package_file(
    path: Path, trusted: Mapping[str, Ed25519PublicKey], max_bytes: int = MAX_PACKAGE
) -> FlashPackage:
    return read_package(read_package_file(path, max_bytes), trusted)
