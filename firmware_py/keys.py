"""Ed25519 key files shared by the box's checks (portal keys for tickets, publisher keys for
flash packages): a directory holds one ``<key id>.pub`` PEM file per trusted key."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_py.errors import ConfigError


def load_public_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Every ``<key id>.pub`` PEM file in ``directory`` (none if it does not exist)."""
    keys: dict[str, Ed25519PublicKey] = {}
    if not directory.is_dir():
        return keys
    for path in sorted(directory.glob("*.pub")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (ValueError, OSError) as err:
            raise ConfigError(f"key file {path} is unreadable: {err}") from err
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"key file {path} is not an Ed25519 public key")
        keys[path.stem] = key
    return keys


def load_private_key(path: Path) -> tuple[str, Ed25519PrivateKey]:
    """A PEM private key file; its key id is the file name without extension."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, OSError, TypeError) as err:
        raise ConfigError(f"cannot read private key {path}: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return path.stem, key
