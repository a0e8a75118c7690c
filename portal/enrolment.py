"""Boxes enrolled by the portal, in the portal's database (SQLite or PostgreSQL, portal/db/: the
tables enrolled_boxes, enrolment_requests, claim_refusals): the boxes' waiting enrolment requests,
the claims a workshop makes with a box's device id and label code, the certificates the portal's
CA signed and their revocation (docs/claiming.md). No I/O here but the database and the PKI
directory; the HTTPS endpoint is portal/enrol_server.py, the command line ``vci-portal box``, the
web pages portal/web/box_pages.py. Several portal processes on one database share these records.

A box sends ``{device, csr, proof}``: its CSR (common name = its device id) and an HMAC keyed by
its label code over the device id and the CSR (firmware_py.identity.enrol_proof). The code itself
never travels. Anyone who knows a device id can send a request for it, so the portal keeps a few
requests per device and, when the workshop claims the box with the code printed on its label,
signs the one request whose proof that code opens: a request from someone who does not know the
code is never signed, and cannot push the box's own out (each box's request is kept by its key,
and the box sends it again at every poll). A box is claimed once: a second claim is refused, and
so is a claim after a revocation. Wrong codes are counted per box and lock its claims for a while;
refused claims of any box are counted per claiming workshop too, so that one who tries device ids
gets a few guesses in all, not five per box.

A claim and what the caller records with it (portal/boxes.py: which workshop owns the box) are one
database transaction: the certificate is signed in memory, and the box can fetch it only from the
row that transaction writes, so a claim whose record fails leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import EnrolmentError
from firmware_py.i18n import N_
from firmware_py.identity import DEVICE_ID_PATTERN, common_name, enrol_proof, label_key
from portal import pki
from portal.db.engine import open_database, write_transaction
from portal.db.models import ClaimRefusal, EnrolledBox, EnrolmentRequest, Workshop, WorkshopBox

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
WORKSHOP_REFUSALS = 10
"""after this many refused claims (any box: wrong code, not asked, claimed already) within
CLAIM_LOCK seconds, a workshop's claims are refused until the oldest of them is that old"""


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
    claimed: int
    revoked: int | None


def check_request(device: Any, csr_pem: Any, proof: Any) -> x509.CertificateSigningRequest:
    """The request's fields, checked: refused with what is wrong (never with what is right)."""
    if not isinstance(device, str) or not DEVICE_ID_PATTERN.fullmatch(device):
        raise EnrolmentError(N_("device is not a device id"))
    if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR:
        raise EnrolmentError(
            N_("csr is not a PEM text of at most {max_csr} characters"), values={"max_csr": MAX_CSR}
        )
    if not isinstance(proof, str) or not re.fullmatch(r"[0-9a-f]{64}", proof):
        raise EnrolmentError(N_("proof is not 64 lower-case hex digits"))
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as err:
        raise EnrolmentError(N_("csr is not a certificate signing request")) from err
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise EnrolmentError(N_("csr: the key is not an EC P-256 key (what boxes make)"))
    if not csr.is_signature_valid:
        raise EnrolmentError(N_("csr: its signature does not verify"))
    if common_name(csr.subject) != device:
        raise EnrolmentError(
            N_("csr: its common name is not the device id"),
            hint=N_("A box asks for a certificate in its own name only"),
        )
    return csr


class Enrolment:
    """The portal's enrolment records in the database ``database`` (a session factory, a
    database URL, or the path of an SQLite file), certificates signed by the CA in ``pki_dir``."""

    def __init__(self, database: sessionmaker[Session] | str | Path, pki_dir: Path) -> None:
        self.pki_dir = pki_dir
        self._engine: Any = None
        if isinstance(database, sessionmaker):
            self.factory = database
        else:
            url = str(database)
            if "://" not in url:
                url = f"sqlite:///{Path(url).absolute()}"
            self._engine, self.factory = open_database(url)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- the box's side ---------------------------------------------------------------------
    def request(
        self, device: Any, csr_pem: Any, proof: Any, now: float | None = None
    ) -> dict[str, str]:
        """One enrolment request (sent again at every poll): ``{"state": "pending"}`` until the
        box is claimed, then ``{"state": "issued", "certificate": PEM}`` for the key it was
        claimed with. Raises :class:`EnrolmentError` (with the HTTP status) otherwise."""
        t = int(time.time() if now is None else now)
        csr = check_request(device, csr_pem, proof)
        fp = key_fingerprint(csr.public_key())
        with self.factory() as session:
            box = session.get(EnrolledBox, device)
            if box is not None:
                return _issued(box, device, fp)
        with write_transaction(self.factory) as session:
            session.execute(
                delete(EnrolmentRequest).where(EnrolmentRequest.last_seen < t - REQUEST_TTL)
            )
            # kept by key and proof: someone who replays the box's CSR with a wrong proof adds a
            # request of their own and changes nothing of the box's
            seen = session.execute(
                update(EnrolmentRequest)
                .where(EnrolmentRequest.device == device, EnrolmentRequest.key_fp == fp,
                       EnrolmentRequest.proof == proof)
                .values(last_seen=t)
            ).rowcount  # type: ignore[attr-defined]  # fmt: skip
            if not seen:
                waiting = session.scalar(select(func.count()).select_from(EnrolmentRequest))
                if (waiting or 0) >= MAX_WAITING:
                    raise EnrolmentError(
                        N_("the portal has too many waiting requests"),
                        hint=N_("Try later"),
                        status=503,
                    )
                session.add(EnrolmentRequest(device=device, key_fp=fp, csr=csr_pem, proof=proof,
                                             first_seen=t, last_seen=t))  # fmt: skip
                session.flush()
                keep = (
                    select(EnrolmentRequest.id)
                    .where(EnrolmentRequest.device == device)
                    .order_by(EnrolmentRequest.last_seen.desc(), EnrolmentRequest.id.desc())
                    .limit(REQUESTS_PER_BOX)
                )
                session.execute(
                    delete(EnrolmentRequest).where(
                        EnrolmentRequest.device == device,
                        EnrolmentRequest.id.not_in(list(session.scalars(keep))),
                    )
                )
        return {"state": "pending"}

    # -- the workshop's side ----------------------------------------------------------------
    def claim(
        self,
        device: str,
        code: str,
        now: float | None = None,
        *,
        workshop_id: int | None = None,
        then: Callable[[Session, x509.Certificate], object] | None = None,
    ) -> x509.Certificate:
        """Sign the box's certificate when ``code`` is its label code; the box gets it at its
        next poll. ``workshop_id``: the claiming workshop, whose refused claims are counted;
        ``then`` records the claim in the same transaction (if it raises, nothing is claimed).
        A refusal is counted (committed) before it is raised."""
        t = int(time.time() if now is None else now)
        refused: EnrolmentError | None = None
        if not DEVICE_ID_PATTERN.fullmatch(device):
            malformed = EnrolmentError(f"{device[:80]!r} is not a device id")
            if workshop_id is None:
                raise malformed
            refused, device = malformed, "-"  # counted against the workshop all the same
        try:
            with write_transaction(self.factory) as session:
                if workshop_id is not None:
                    # one claim of a workshop at a time (PostgreSQL; SQLite: one writer anyway)
                    session.scalar(
                        select(Workshop.id).where(Workshop.id == workshop_id).with_for_update()
                    )
                    _check_workshop(session, workshop_id, t)
                # refusals older than the lock count for nothing: forgotten
                session.execute(delete(ClaimRefusal).where(ClaimRefusal.at <= t - CLAIM_LOCK))
                if refused is None:
                    try:
                        cert = self._claim(session, device, code, t)
                    except _Refused as err:
                        refused = err.error
                        session.add(ClaimRefusal(device=device, workshop_id=workshop_id,
                                                 wrong_code=err.wrong_code, at=t))  # fmt: skip
                    else:
                        if then is not None:
                            then(session, cert)
                elif workshop_id is not None:
                    session.add(ClaimRefusal(device=device, workshop_id=workshop_id,
                                             wrong_code=False, at=t))  # fmt: skip
        except IntegrityError as err:  # claimed at the same moment by another portal process
            raise EnrolmentError(
                N_("box {device} is already claimed"),
                values={"device": device},
                hint=N_("A box is claimed once"),
                status=409,
            ) from err
        if refused is not None:
            raise refused
        return cert

    def _claim(self, session: Session, device: str, code: str, t: int) -> x509.Certificate:
        # the box's requests, locked: one claim of a box at a time (PostgreSQL)
        requests = session.execute(
            select(EnrolmentRequest.csr, EnrolmentRequest.proof)
            .where(EnrolmentRequest.device == device)
            .order_by(EnrolmentRequest.id)
            .with_for_update()
        ).all()
        box = session.get(EnrolledBox, device)
        if box is not None:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(box.claimed_at))
            message = (N_("box {device} is already revoked (claimed {when})")
                       if box.state == "revoked"
                       else N_("box {device} is already claimed (claimed {when})"))  # fmt: skip
            raise _Refused(EnrolmentError(
                message, values={"device": device, "when": when},
                hint=N_("A box is claimed once; if it changed hands, its workshop asks the portal"),
                status=409,
            ))  # fmt: skip
        failures = list(
            session.scalars(
                select(ClaimRefusal.at)
                .where(ClaimRefusal.device == device, ClaimRefusal.wrong_code.is_(True),
                       ClaimRefusal.at > t - CLAIM_LOCK)
                .order_by(ClaimRefusal.at)
            )
        )  # fmt: skip
        if len(failures) >= CLAIM_FAILURES:
            wait = failures[-CLAIM_FAILURES] + CLAIM_LOCK - t
            raise EnrolmentError(  # not counted again: a locked box stays locked as long
                N_("too many wrong label codes for box {device}"),
                values={"device": device},
                hint=N_("Check the code on the box's label and try again in {value} min"),
                hint_values={"value": format(wait / 60, ".0f")},
                status=429,
            )
        if not requests:
            raise _Refused(EnrolmentError(
                f"box {device} has not asked to be enrolled",
                hint="Connect the box to the network and power it (it asks by itself); check "
                "the device id on its label, then claim again",
                status=404,
            ))  # fmt: skip
        key = label_key(device, code)
        for csr_pem, proof in requests:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            der = csr.public_bytes(serialization.Encoding.DER)
            if hmac.compare_digest(enrol_proof(key, device, der), proof):
                cert = pki.sign_csr(self.pki_dir, csr, device)
                session.add(EnrolledBox(
                    device=device, state="claimed",
                    certificate=cert.public_bytes(serialization.Encoding.PEM).decode(),
                    serial=str(cert.serial_number), key_fp=key_fingerprint(csr.public_key()),
                    claimed_at=t,
                ))  # fmt: skip
                session.execute(delete(EnrolmentRequest).where(EnrolmentRequest.device == device))
                session.execute(
                    delete(ClaimRefusal).where(
                        ClaimRefusal.device == device, ClaimRefusal.wrong_code.is_(True)
                    )
                )
                session.flush()  # a box claimed at the same moment fails here, not later
                return cert
        raise _Refused(EnrolmentError(
            f"the label code does not match box {device}",
            hint="Type the code from the box's own label (letters and digits, case does not "
            "matter)",
            status=403,
        ), wrong_code=True)  # fmt: skip

    def revoke(
        self,
        device: str,
        now: float | None = None,
        *,
        then: Callable[[Session], object] | None = None,
    ) -> int:
        """Revoke the box's certificate (added to the CA's list crl.pem); returns its serial.
        The broker refuses the box once it has read the list again (SIGHUP). ``then`` records
        the revocation in the same transaction. The list is written before the transaction
        commits: if the commit fails, the certificate is revoked all the same (fail closed)."""
        t = int(time.time() if now is None else now)
        with write_transaction(self.factory) as session:
            box = session.scalar(
                select(EnrolledBox).where(EnrolledBox.device == device).with_for_update()
            )
            if box is None:
                raise EnrolmentError(
                    N_("box {device} is not claimed"), values={"device": device}, status=404
                )
            box.state = "revoked"
            box.revoked_at = box.revoked_at or t
            # the workshop's pages show it revoked, whoever revoked it (pages or command line)
            session.execute(
                update(WorkshopBox)
                .where(WorkshopBox.device == device, WorkshopBox.revoked_at.is_(None))
                .values(revoked_at=box.revoked_at)
            )
            if then is not None:
                then(session)
            session.flush()
            revoked = session.scalars(
                select(EnrolledBox.serial).where(EnrolledBox.state == "revoked")
            )
            # again for a revoked box: the list is made anew, with every revoked box of the
            # database (another portal process may have revoked one) and what the list held
            pki.write_crl(
                self.pki_dir, [*pki.revoked_serials(self.pki_dir), *(int(s) for s in revoked)]
            )
            return int(box.serial)

    def boxes(self) -> list[BoxRecord]:
        with self.factory() as session:
            return [
                BoxRecord(b.device, b.state, int(b.serial), b.claimed_at, b.revoked_at)
                for b in session.scalars(select(EnrolledBox).order_by(EnrolledBox.device))
            ]

    def waiting(self) -> list[tuple[str, int]]:
        """Devices with waiting requests, and when each last asked."""
        with self.factory() as session:
            rows = session.execute(
                select(EnrolmentRequest.device, func.max(EnrolmentRequest.last_seen))
                .group_by(EnrolmentRequest.device)
                .order_by(EnrolmentRequest.device)
            )
            return [(device, int(seen)) for device, seen in rows]


class _Refused(Exception):
    """A refused claim, counted (per box when it was a wrong code, per workshop always)."""

    def __init__(self, error: EnrolmentError, wrong_code: bool = False) -> None:
        super().__init__(str(error))
        self.error, self.wrong_code = error, wrong_code


def _check_workshop(session: Session, workshop_id: int, t: int) -> None:
    refusals = list(
        session.scalars(
            select(ClaimRefusal.at)
            .where(ClaimRefusal.workshop_id == workshop_id, ClaimRefusal.at > t - CLAIM_LOCK)
            .order_by(ClaimRefusal.at)
        )
    )
    if len(refusals) >= WORKSHOP_REFUSALS:
        wait = refusals[-WORKSHOP_REFUSALS] + CLAIM_LOCK - t
        raise EnrolmentError(
            N_("too many refused claims from this workshop"),
            hint=N_(
                "Check the device ids and codes on the boxes' labels and try again in {value} min"
            ),
            hint_values={"value": format(wait / 60, ".0f")},
            status=429,
        )


def _issued(box: EnrolledBox, device: str, fp: str) -> dict[str, str]:
    if box.state == "revoked":
        raise EnrolmentError(
            N_("box {device} is revoked"),
            values={"device": device},
            hint=N_("Ask the portal's operator"),
            status=403,
        )
    if box.key_fp != fp:
        raise EnrolmentError(
            N_("box {device} is claimed with another key"),
            values={"device": device},
            hint=N_("A box that lost its key is revoked and enrolled anew by the portal"),
            status=409,
        )
    return {"state": "issued", "certificate": box.certificate}
