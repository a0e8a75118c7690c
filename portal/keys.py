"""The portal's Ed25519 signing keys: ``<kid>.key`` (private, PEM, mode 0600) and ``<kid>.pub``
(public, PEM: copy it to each box's ``[security] portal_keys_dir``). Several keys may live in one
directory so that keys can rotate; the newest signs unless a kid is named."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def generate(directory: Path, kid: str | None = None) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    kid = kid or time.strftime("portal-%Y%m%d-%H%M%S")
    if not kid.replace("-", "").replace("_", "").isalnum():
        raise ValueError("a key id is letters, digits, '-' and '_'")
    key = Ed25519PrivateKey.generate()
    private = directory / f"{kid}.key"
    if private.exists():
        raise FileExistsError(f"{private} exists; choose another key id")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    (directory / f"{kid}.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return kid


def load_signing_key(directory: Path, kid: str | None = None) -> tuple[str, Ed25519PrivateKey]:
    if kid is None:
        candidates = sorted(directory.glob("*.key"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise FileNotFoundError(
                f"no signing key in {directory}; run: vci-portal keys generate --out {directory}"
            )
        path = candidates[-1]
    else:
        path = directory / f"{kid}.key"
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return path.stem, key
