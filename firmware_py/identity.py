"""The box's own identity, made on the box at first boot and kept in the state directory (the data
partition: it survives updates and is never part of the image; docs/claiming.md).

Owns, under ``<state>/identity/``: ``device-id`` (the id tickets, the Wi-Fi name and the broker
certificate are bound to), ``box.key`` (an EC P-256 private key, mode 0600, made here and never
sent anywhere), ``box.csr`` (the certificate signing request for the broker client certificate,
common name = device id) and ``box.pem`` (the certificate once the portal has signed it). Also
the proof of the label code that goes with an enrolment request (:func:`enrol_proof`), which the
portal checks with the same function.

The device id is the Raspberry Pi's board serial (``pi-<serial>``); on other machines (the CI's
VM, a PC) a short app-specific form of /etc/machine-id (``vci-<12 hex>``; machine-id(5) asks not
to show the id itself). It is written once: an image whose machine-id is made anew at every boot
(a read-only root) keeps its first one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware_py.errors import ConfigError

DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""what a device id may be: it names MQTT topics and a certificate (no ``/``, ``+``, ``#``)"""
MACHINE_ID_APP = b"vci-device-id"
"""the application id the machine-id is hashed with (like sd_id128_get_machine_app_specific)"""
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
"""the label code's key derivation: 16 MiB and about 0.1 s on a Raspberry Pi per guess"""


def identity_dir(state_dir: Path) -> Path:
    return state_dir / "identity"


def derived_device_id(
    cpuinfo: Path = Path("/proc/cpuinfo"), machine_id: Path = Path("/etc/machine-id")
) -> str | None:
    """The id this machine's hardware gives: the Raspberry Pi's serial, else a short form of the
    machine-id; ``None`` when neither is there."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("Serial") and ":" in line:
                serial = line.split(":", 1)[1].strip().lstrip("0").lower()
                if serial:
                    return "pi-" + serial
    except OSError:
        pass
    try:
        text = machine_id.read_text().strip().lower()
    except OSError:
        return None
    if not re.fullmatch(r"[0-9a-f]{32}", text):
        return None  # empty ("uninitialized" in an image) or not a machine-id
    app = hmac.new(bytes.fromhex(text), MACHINE_ID_APP, hashlib.sha256).hexdigest()
    return "vci-" + app[:12]


def stored_device_id(state_dir: Path) -> str | None:
    try:
        text = (identity_dir(state_dir) / "device-id").read_text().strip()
    except OSError:
        return None
    return text or None


def check_device_id(device: str) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(device):
        raise ConfigError(
            f"the device id {device[:80]!r} is not usable",
            hint="A device id has 1-64 letters, digits, '.', '_' or '-' and starts with a letter "
            "or digit; set [device] id",
        )
    return device


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` (``mode``) atomically: a power cut leaves the old or the new."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def private_key(state_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The box's private key: read, or made (EC P-256) when there is none. Never logged."""
    path = identity_dir(state_dir) / "box.key"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{path} is not an EC private key", hint="Delete it and re-enrol")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return key


def make_identity(state_dir: Path, device: str) -> x509.CertificateSigningRequest:
    """First boot's part: the device id file, the key and the CSR for ``device`` (kept when they
    exist; a CSR for another common name, after the id was changed in the configuration, is made
    again with the same key). Returns the CSR."""
    check_device_id(device)
    directory = identity_dir(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stored_device_id(state_dir) != device:
        write_private(directory / "device-id", (device + "\n").encode(), 0o644)
    key = private_key(state_dir)
    csr_path = directory / "box.csr"
    if csr_path.exists():
        csr = x509.load_pem_x509_csr(csr_path.read_bytes())
        if common_name(csr.subject) == device and csr.public_key() == key.public_key():
            return csr
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)]))
        .sign(key, hashes.SHA256())
    )
    write_private(csr_path, csr.public_bytes(serialization.Encoding.PEM), 0o644)
    return csr


def common_name(name: x509.Name) -> str | None:
    """The one common name of ``name``; ``None`` when it has none or several."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(values) != 1 or not isinstance(values[0].value, str):
        return None
    return values[0].value


def normalise_label_code(code: str) -> str:
    """The label code as printed, whatever case or separators someone typed."""
    return re.sub(r"[\s-]", "", code).upper()


def label_key(device: str, code: str) -> bytes:
    """The key a label code gives for one box (scrypt: a stolen enrolment request costs a guesser
    0.1 s and 16 MiB per try)."""
    return hashlib.scrypt(
        normalise_label_code(code).encode(),
        salt=b"vci-enrol\0" + device.encode(),
        dklen=32,
        **SCRYPT,
    )


def enrol_proof(key: bytes, device: str, csr_der: bytes) -> str:
    """HMAC-SHA256 under :func:`label_key` over the device id and the CSR: proves that whoever
    sent the CSR knows the label code, without the code travelling, and binds it to this CSR."""
    message = device.encode() + b"\0" + csr_der
    return hmac.new(key, message, hashlib.sha256).hexdigest()
