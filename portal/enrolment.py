"""Boxes enrolled by the portal, in SQLite: the boxes' waiting enrolment requests, the claims a
workshop makes with a box's device id and label code, the certificates the portal's CA signed and
their revocation (docs/claiming.md). No I/O here but the database and the PKI directory; the
HTTPS endpoint is portal/enrol_server.py, the command line ``vci-portal box``.

A box sends ``{device, csr, proof}``: its CSR (common name = its device id) and an HMAC keyed by
its label code over the device id and the CSR (firmware_py.identity.enrol_proof). The code itself
never travels. Anyone who knows a device id can send a request for it, so the portal keeps a few
requests per device and, when the workshop claims the box with the code printed on its label,
signs the one request whose proof that code opens: a request from someone who does not know the
code is never signed, and cannot push the box's own out (each box's request is kept by its key,
and the box sends it again at every poll). A box is claimed once: a second claim is refused, and
so is a claim after a revocation. Wrong codes are counted per box and lock its claims for a while.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from firmware_py.errors import EnrolmentError
from firmware_py.identity import DEVICE_ID_PATTERN, common_name, enrol_proof, label_key
from portal import pki

MAX_CSR = 4096
"""characters of a CSR in PEM (a P-256 CSR has about 400)"""
REQUESTS_PER_BOX = 8
"""waiting requests kept per device id (the most recently seen); the box's own is sent again at
every poll, so requests of others cannot keep it out (one who floods a device id with requests
can delay its claim until the box's next poll, never take it)"""
MAX_WAITING = 100_000
"""waiting requests in all; then new ones are refused until some are claimed or expire"""
REQUEST_TTL = 30 * 86400.0
"""a request not seen again for this long is dropped"""
CLAIM_FAILURES = 5
CLAIM_LOCK = 3600.0
"""after CLAIM_FAILURES wrong label codes within CLAIM_LOCK seconds, the box's claims are refused
until the oldest of them is that old (an online guesser gets 5 tries an hour of 2^37 codes)"""


def key_fingerprint(public: Any) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class BoxRecord:
    device: str
    state: str
    """``claimed`` or ``revoked``"""
    serial: int
    claimed: float
    revoked: float | None


def check_request(device: Any, csr_pem: Any, proof: Any) -> x509.CertificateSigningRequest:
    """The request's fields, checked: refused with what is wrong (never with what is right)."""
    if not isinstance(device, str) or not DEVICE_ID_PATTERN.fullmatch(device):
        raise EnrolmentError("device is not a device id")
    if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR:
        raise EnrolmentError(f"csr is not a PEM text of at most {MAX_CSR} characters")
    if not isinstance(proof, str) or not re.fullmatch(r"[0-9a-f]{64}", proof):
        raise EnrolmentError("proof is not 64 lower-case hex digits")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as err:
        raise EnrolmentError("csr is not a certificate signing request") from err
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise EnrolmentError("csr: the key is not an EC P-256 key (what boxes make)")
    if not csr.is_signature_valid:
        raise EnrolmentError("csr: its signature does not verify")
    if common_name(csr.subject) != device:
        raise EnrolmentError(
            "csr: its common name is not the device id",
            hint="A box asks for a certificate in its own name only",
        )
    return csr


class Enrolment:
    """The portal's enrolment records in ``path``, certificates signed by the CA in ``pki_dir``."""

    def __init__(self, path: Path, pki_dir: Path) -> None:
        self.pki_dir = pki_dir
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS boxes (device TEXT PRIMARY KEY, state TEXT NOT NULL, "
            "certificate TEXT NOT NULL, serial TEXT NOT NULL, key_fp TEXT NOT NULL, "
            "claimed REAL NOT NULL, revoked REAL);"
            "CREATE TABLE IF NOT EXISTS requests (device TEXT NOT NULL, key_fp TEXT NOT NULL, "
            "csr TEXT NOT NULL, proof TEXT NOT NULL, first_seen REAL NOT NULL, "
            "last_seen REAL NOT NULL, PRIMARY KEY (device, key_fp, proof));"
            "CREATE TABLE IF NOT EXISTS claim_failures (device TEXT NOT NULL, at REAL NOT NULL);"
        )

    def close(self) -> None:
        self.db.close()

    # -- the box's side ---------------------------------------------------------------------
    def request(
        self, device: Any, csr_pem: Any, proof: Any, now: float | None = None
    ) -> dict[str, str]:
        """One enrolment request (sent again at every poll): ``{"state": "pending"}`` until the
        box is claimed, then ``{"state": "issued", "certificate": PEM}`` for the key it was
        claimed with. Raises :class:`EnrolmentError` (with the HTTP status) otherwise."""
        now = time.time() if now is None else now
        csr = check_request(device, csr_pem, proof)
        fp = key_fingerprint(csr.public_key())
        row = self.db.execute(
            "SELECT state, certificate, key_fp FROM boxes WHERE device = ?", (device,)
        ).fetchone()
        if row is not None:
            state, certificate, claimed_fp = row
            if state == "revoked":
                raise EnrolmentError(
                    f"box {device} is revoked", hint="Ask the portal's operator", status=403
                )
            if claimed_fp != fp:
                raise EnrolmentError(
                    f"box {device} is claimed with another key",
                    hint="A box that lost its key is revoked and enrolled anew by the portal",
                    status=409,
                )
            return {"state": "issued", "certificate": certificate}
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM requests WHERE last_seen < ?", (now - REQUEST_TTL,))
            # kept by key and proof: someone who replays the box's CSR with a wrong proof adds a
            # request of their own and changes nothing of the box's
            seen = self.db.execute(
                "UPDATE requests SET last_seen = ? WHERE device = ? AND key_fp = ? AND proof = ?",
                (now, device, fp, proof),
            ).rowcount
            if not seen:
                (waiting,) = self.db.execute("SELECT count(*) FROM requests").fetchone()
                if waiting >= MAX_WAITING:
                    raise EnrolmentError(
                        "the portal has too many waiting requests", hint="Try later", status=503
                    )
                self.db.execute(
                    "INSERT INTO requests VALUES (?,?,?,?,?,?)",
                    (device, fp, csr_pem, proof, now, now),
                )
                self.db.execute(
                    "DELETE FROM requests WHERE device = ? AND rowid NOT IN (SELECT rowid FROM "
                    "requests WHERE device = ? ORDER BY last_seen DESC LIMIT ?)",
                    (device, device, REQUESTS_PER_BOX),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return {"state": "pending"}

    # -- the workshop's side ----------------------------------------------------------------
    def claim(self, device: str, code: str, now: float | None = None) -> x509.Certificate:
        """Sign the box's certificate when ``code`` is its label code; the box gets it at its
        next poll."""
        now = time.time() if now is None else now
        if not DEVICE_ID_PATTERN.fullmatch(device):
            raise EnrolmentError(f"{device[:80]!r} is not a device id")
        self.db.execute("BEGIN IMMEDIATE")  # one claim at a time: a second one sees the first
        try:
            cert = self._claim(device, code, now)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return cert

    def _claim(self, device: str, code: str, now: float) -> x509.Certificate:
        row = self.db.execute(
            "SELECT state, claimed FROM boxes WHERE device = ?", (device,)
        ).fetchone()
        if row is not None:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row[1]))
            raise EnrolmentError(
                f"box {device} is already {row[0]} (claimed {when})",
                hint="A box is claimed once; if it changed hands, its workshop asks the portal",
                status=409,
            )
        failures = [
            at
            for (at,) in self.db.execute(
                "SELECT at FROM claim_failures WHERE device = ? AND at > ? ORDER BY at",
                (device, now - CLAIM_LOCK),
            )
        ]
        if len(failures) >= CLAIM_FAILURES:
            wait = failures[-CLAIM_FAILURES] + CLAIM_LOCK - now
            raise EnrolmentError(
                f"too many wrong label codes for box {device}",
                hint=f"Check the code on the box's label and try again in {wait / 60:.0f} min",
                status=429,
            )
        requests = self.db.execute(
            "SELECT csr, proof FROM requests WHERE device = ?", (device,)
        ).fetchall()
        if not requests:
            raise EnrolmentError(
                f"box {device} has not asked to be enrolled",
                hint="Connect the box to the network and power it (it asks by itself); check "
                "the device id on its label, then claim again",
                status=404,
            )
        key = label_key(device, code)
        for csr_pem, proof in requests:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            der = csr.public_bytes(serialization.Encoding.DER)
            if hmac.compare_digest(enrol_proof(key, device, der), proof):
                cert = pki.sign_csr(self.pki_dir, csr, device)
                self.db.execute(
                    "INSERT INTO boxes VALUES (?,?,?,?,?,?,NULL)",
                    (
                        device,
                        "claimed",
                        cert.public_bytes(serialization.Encoding.PEM).decode(),
                        str(cert.serial_number),
                        key_fingerprint(csr.public_key()),
                        now,
                    ),
                )
                self.db.execute("DELETE FROM requests WHERE device = ?", (device,))
                self.db.execute("DELETE FROM claim_failures WHERE device = ?", (device,))
                return cert
        # kept even though the claim fails: a failed claim's count must outlive its refusal
        self.db.execute("INSERT INTO claim_failures VALUES (?, ?)", (device, now))
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")
        raise EnrolmentError(
            f"the label code does not match box {device}",
            hint="Type the code from the box's own label (letters and digits, case does not "
            "matter)",
            status=403,
        )

    def revoke(self, device: str, now: float | None = None) -> int:
        """Revoke the box's certificate (added to the CA's list crl.pem); returns its serial.
        The broker refuses the box once it has read the list again (SIGHUP)."""
        now = time.time() if now is None else now
        row = self.db.execute(
            "SELECT state, serial FROM boxes WHERE device = ?", (device,)
        ).fetchone()
        if row is None:
            raise EnrolmentError(f"box {device} is not claimed", status=404)
        serial = int(row[1])
        pki.revoke(self.pki_dir, serial)  # again for a revoked box: the list is made anew
        self.db.execute(
            "UPDATE boxes SET state = 'revoked', revoked = coalesce(revoked, ?) WHERE device = ?",
            (now, device),
        )
        return serial

    def boxes(self) -> list[BoxRecord]:
        return [
            BoxRecord(device, state, int(serial), claimed, revoked)
            for device, state, serial, claimed, revoked in self.db.execute(
                "SELECT device, state, serial, claimed, revoked FROM boxes ORDER BY device"
            )
        ]

    def waiting(self) -> list[tuple[str, float]]:
        """Devices with waiting requests, and when each last asked."""
        return list(
            self.db.execute(
                "SELECT device, max(last_seen) FROM requests GROUP BY device ORDER BY device"
            )
        )
