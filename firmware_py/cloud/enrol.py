"""Enrolment: how the box gets its broker certificate (docs/claiming.md). While it has none, it
sends the portal's enrolment endpoint (``[cloud] enrol_url``, TLS checked against the portal's CA
``[cloud] ca_file`` only) its device id, its CSR and a proof that it knows its label code
(firmware_py/identity.py), and asks again every ``enrol_interval`` seconds until the workshop has
claimed it; then it checks the certificate it gets (the portal's CA signed it, for its own key
and device id) and keeps it as ``identity/box.pem``. :func:`link_when_enrolled` then starts the
portal link in the running gateway, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from firmware_py import strict_json
from firmware_py.config import Config, device_id
from firmware_py.errors import EnrolmentError
from firmware_py.identity import (
    common_name,
    enrol_proof,
    label_key,
    make_identity,
    private_key,
    write_private,
)

log = logging.getLogger(__name__)
MAX_ANSWER = 16 * 1024
TIMEOUT = 30.0


@dataclass(frozen=True)
class EnrolState:
    state: str
    """``enrolled`` (the certificate is in place), ``pending`` (waiting to be claimed),
    ``off`` (no enrol_url), or ``refused``"""
    detail: str = ""


def certificate_status(cfg: Config) -> str | None:
    """Why the configured certificate cannot be used, or ``None`` when it can (it exists, the
    portal's CA signed it, it is for the box's key and device id)."""
    try:
        cert = x509.load_pem_x509_certificate(cfg.cloud.cert_file.read_bytes())
    except FileNotFoundError:
        return "no certificate yet"
    except (OSError, ValueError) as err:
        return f"the certificate {cfg.cloud.cert_file} is unreadable: {err}"
    return _check_certificate(cfg, cert)


def _check_certificate(cfg: Config, cert: x509.Certificate) -> str | None:
    try:
        ca = x509.load_pem_x509_certificate(cfg.cloud.ca_file.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature) as err:
        return f"not signed by the portal's CA {cfg.cloud.ca_file} ({type(err).__name__})"
    try:
        key = serialization.load_pem_private_key(cfg.cloud.key_file.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        return f"the key {cfg.cloud.key_file} is unreadable: {err}"
    if cert.public_key() != key.public_key():
        return "the certificate is not for this box's key"
    if common_name(cert.subject) != device_id(cfg):
        return f"the certificate names {common_name(cert.subject)!r}, not {device_id(cfg)!r}"
    return None


class Enroller:
    """One box's enrolment requests to ``cfg.cloud.enrol_url``."""

    def __init__(self, cfg: Config, label_code: str) -> None:
        self.cfg = cfg
        self.state_dir = cfg.storage.state_dir
        self.device = device_id(cfg)
        csr = make_identity(self.state_dir, self.device)
        der = csr.public_bytes(serialization.Encoding.DER)
        self.body = json.dumps(
            {
                "device": self.device,
                "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                "proof": enrol_proof(label_key(self.device, label_code), self.device, der),
            }
        ).encode()

    def _ssl(self) -> ssl.SSLContext:
        # the portal's CA only, not the system's: the workshop's network cannot stand in for it
        return ssl.create_default_context(cafile=str(self.cfg.cloud.ca_file))

    async def once(self) -> EnrolState:
        """Send the request once; keep the certificate when it comes. Raises
        :class:`EnrolmentError` when the portal refuses or cannot be reached."""
        if not self.cfg.cloud.enrol_url:
            return EnrolState("off", "no [cloud] enrol_url")
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session,
                session.post(
                    self.cfg.cloud.enrol_url,
                    data=self.body,
                    headers={"Content-Type": "application/json"},
                    ssl=self._ssl(),
                ) as response,
            ):
                status = response.status
                raw = b""
                async for chunk in response.content.iter_chunked(4096):
                    raw += chunk
                    if len(raw) > MAX_ANSWER:
                        break  # strict_json refuses it as too large
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as err:
            raise EnrolmentError(
                f"the portal's enrolment endpoint {self.cfg.cloud.enrol_url} is not reachable: "
                f"{err}",
                hint="Check the box's network and [cloud] enrol_url and ca_file",
            ) from err
        try:
            answer = strict_json.obj(strict_json.loads(raw, max_bytes=MAX_ANSWER), "the answer")
        except strict_json.StrictJsonError as err:
            raise EnrolmentError(f"the portal's answer ({status}) is not usable: {err}") from err
        if status >= 400:
            raise EnrolmentError(
                f"the portal refused the enrolment: {str(answer.get('message'))[:200]}",
                hint=str(answer.get("hint") or "Ask the portal's operator")[:200],
                status=status,
            )
        if answer.get("state") == "pending":
            return EnrolState("pending", "waiting for the workshop to claim the box")
        if answer.get("state") != "issued" or not isinstance(answer.get("certificate"), str):
            raise EnrolmentError(f"the portal's answer has no known state: {answer.get('state')!r}")
        return self._keep(answer["certificate"])

    def _keep(self, pem: str) -> EnrolState:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError as err:
            raise EnrolmentError("the portal sent no certificate") from err
        private_key(self.state_dir)  # the key is there (make_identity made it)
        problem = _check_certificate(self.cfg, cert)
        if problem is not None:
            raise EnrolmentError(f"the certificate from the portal is not usable: {problem}")
        write_private(
            self.cfg.cloud.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644
        )
        log.info("enrolled: certificate for %s kept in %s", self.device, self.cfg.cloud.cert_file)
        return EnrolState("enrolled", str(self.cfg.cloud.cert_file))

    async def until_enrolled(self) -> None:
        """Ask every ``enrol_interval`` seconds (longer after refusals, up to ten times) until
        the certificate is in place."""
        interval = self.cfg.cloud.enrol_interval
        delay = interval
        while True:
            try:
                state = await self.once()
                if state.state == "enrolled":
                    return
                delay = interval
                log.info("enrolment: %s", state.detail)
            except EnrolmentError as err:
                delay = min(delay * 2, interval * 10)
                log.warning("enrolment: %s", err)
            await asyncio.sleep(delay)


async def link_when_enrolled(cfg: Config, label_code: str, link: Any) -> None:
    """Start the portal ``link`` at once when the box has its certificate; else enrol first (in
    the background of the running gateway) and start it when the certificate has come. What
    goes wrong is logged; the gateway goes on serving the local page."""
    try:
        problem = certificate_status(cfg)
        if problem is not None:
            if not cfg.cloud.enrol_url and not cfg.cloud.cert_file.exists():
                log.warning(
                    "no portal link: the box has no certificate (%s); set [cloud] enrol_url to "
                    "enrol (docs/claiming.md)",
                    cfg.cloud.cert_file,
                )
                return
            if not cfg.cloud.enrol_url:
                # a certificate put in place by hand (a fleet's own CA, with intermediates):
                # the link tries it as before; the broker decides
                log.warning(
                    "portal link: %s (%s); without [cloud] enrol_url the box does not enrol",
                    problem,
                    cfg.cloud.cert_file,
                )
                await link.start()
                return
            log.info("not enrolled yet (%s): asking the portal at %s", problem, cfg.cloud.enrol_url)
            await Enroller(cfg, label_code).until_enrolled()
        await link.start()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the portal link could not start")


def identity_summary(cfg: Config) -> dict[str, Any]:
    """What ``vci enrol status`` shows."""
    state_dir = cfg.storage.state_dir
    problem = certificate_status(cfg)
    summary: dict[str, Any] = {
        "device": device_id(cfg),
        "key": str(cfg.cloud.key_file) if Path(cfg.cloud.key_file).exists() else None,
        "csr": str(state_dir / "identity" / "box.csr"),
        "certificate": str(cfg.cloud.cert_file),
        "enrolled": problem is None,
        "enrol_url": cfg.cloud.enrol_url or None,
    }
    if problem is not None:
        summary["why_not"] = problem
    else:
        cert = x509.load_pem_x509_certificate(cfg.cloud.cert_file.read_bytes())
        summary["serial"] = f"{cert.serial_number:x}"
        summary["valid_until"] = cert.not_valid_after_utc.isoformat()
    return summary
