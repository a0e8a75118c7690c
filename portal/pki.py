"""A small PKI for the MQTT broker: a CA, the broker's server certificate, client certificates for
portal users and the bridge, the boxes' certificates signed from their own CSRs (a box's key is
made on the box and never seen here; portal/enrolment.py) and the certificate revocation list
``crl.pem`` that the broker (mosquitto's crlfile) and the WebSocket bridge check. For tests and a
first installation; a fleet uses its own CA. Keys are written with mode 0600; nothing here is
committed."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
    hosts: tuple[str, ...] = (),
    days: int = 365,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                + [_san(h) for h in hosts]
            ),
            critical=False,
        )
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_ca(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("VCI test CA", key, None, key, ca=True, days=3650)
    _write_key(directory / "ca.key", key)
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_crl(directory, [])


def _ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return ca_cert, ca_key


def sign_csr(directory: Path, csr: x509.CertificateSigningRequest, name: str) -> x509.Certificate:
    """A box's client certificate for the public key of ``csr`` (checked by the caller), common
    name ``name``: nothing else of the CSR is copied into it."""
    ca_cert, ca_key = _ca(directory)
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=BOX_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


BOX_DAYS = 5 * 365
"""a box's certificate is valid this long (the broker's clock checks it; revocation ends it early)"""
CRL_DAYS = 3650
"""the revocation list's nextUpdate: OpenSSL refuses every client once it has passed, so it is
far ahead; each revocation signs a new list"""


def revoked_serials(directory: Path) -> list[int]:
    path = directory / "crl.pem"
    if not path.exists():
        return []
    return [r.serial_number for r in x509.load_pem_x509_crl(path.read_bytes())]


def write_crl(directory: Path, serials: list[int]) -> Path:
    """``crl.pem``: the CA's signed list of revoked certificate serial numbers (atomically: the
    broker may read it at any time)."""
    ca_cert, ca_key = _ca(directory)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
    )
    for serial in sorted(set(serials)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    path = directory / "crl.pem"
    tmp = directory / "crl.pem.tmp"
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)
    return path


def revoke(directory: Path, serial: int) -> Path:
    """Add ``serial`` to the revocation list."""
    return write_crl(directory, [*revoked_serials(directory), serial])


def is_revoked(directory: Path, cert: x509.Certificate) -> bool:
    """Whether the CA's current list (its signature checked) names ``cert``; a list that is
    missing or not signed by the CA counts as naming every certificate (fail closed)."""
    path = directory / "crl.pem"
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
        ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    except (OSError, ValueError):
        return True
    if not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        return True
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def issue(
    directory: Path, name: str, *, server: bool = False, hosts: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """``<name>.pem`` and ``<name>.key`` signed by the CA in ``directory``; a server certificate
    names localhost, 127.0.0.1 and ``hosts``."""
    ca_cert, ca_key = _ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(name, key, ca_cert, ca_key, server=server, hosts=hosts)
    _write_key(directory / f"{name}.key", key)
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / f"{name}.pem", directory / f"{name}.key"
