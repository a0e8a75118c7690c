"""The portal's package store (docs/flash-package.md, "Packages from the portal"): signed flash
packages the operator uploads, offered to boxes in remote sessions.

- An upload is kept only if its publisher's signature verifies with the publisher keys the boxes
  trust (``read_package``: signature, image and segment hashes); the box checks it again.
- The file lies under the store's directory named by its SHA-256 (no blobs in the database); a
  :class:`~portal.db.models.StoredPackage` row says what it holds (ECU, versions, size).
- Boxes fetch it from ``vci-portal serve`` at ``/packages/<sha256>.vcipkg?t=<token>``: the token
  is signed by the portal's ticket key for one box and one package, and expires. A box has no
  client certificate on the portal's HTTP(S) side (its mTLS identity is the broker's), so the
  URL itself is the credential: signed (not guessable, not transferable to another package) and
  short-lived (an URL seen in a log is soon worthless). The offer carrying it (package_offer.py)
  travels on the box's own, authenticated MQTT topic.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import PackageError, TicketError
from firmware_py.gateway import package_offer
from firmware_py.gateway.ticket_token import sign, verify
from firmware_py.i18n import N_
from firmware_py.uds.flash.package import MAX_PACKAGE, read_package
from portal.db.models import StoredPackage

TOKEN_PREFIX = "vkd1"
TOKEN_LIFETIME = 6 * 3600
"""seconds a download URL serves (a slow link resumes within it; a new offer makes a new one)"""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class PackageInfo:
    sha256: str
    name: str
    ecu: str
    ecu_address: int
    version: str
    sw_versions: tuple[str, ...]
    publisher: str
    size: int

    @classmethod
    def of(cls, row: StoredPackage) -> PackageInfo:
        return cls(
            row.sha256, row.name, row.ecu, row.ecu_address, row.version,
            tuple(json.loads(row.sw_versions)), row.publisher, row.size,
        )  # fmt: skip


class PackageStore:
    """The store's files under ``directory`` and their rows; ``publisher_keys``: the keys the
    boxes trust; ``key``/``kid``: the portal's ticket key (download tokens and offers; without
    it the store only takes and lists packages: the operator's command line)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        directory: Path,
        publisher_keys: Mapping[str, Ed25519PublicKey],
        kid: str | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.factory = factory
        self.directory = Path(directory)
        self.publisher_keys = dict(publisher_keys)
        self.kid, self.key = kid, key
        self.directory.mkdir(parents=True, exist_ok=True)

    # -- upload and listing ------------------------------------------------------------------
    def add(self, upload: BinaryIO, name: str, now: float | None = None) -> PackageInfo:
        """Keep an uploaded package if its signature verifies; :class:`PackageError` if not
        (nothing is kept). ``upload`` is read to its end; the same package again is one row."""
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=self.directory)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                size = 0
                for block in iter(lambda: upload.read(1 << 20), b""):
                    size += len(block)
                    if size > MAX_PACKAGE:
                        raise PackageError(
                            N_("the package is larger than {value} MiB; refused"),
                            values={"value": MAX_PACKAGE // 2**20},
                        )
                    out.write(block)
            with tmp.open("rb") as f:
                pkg = read_package(f, self.publisher_keys)
            safe = _SAFE.sub("_", Path(name).name).removesuffix(".vcipkg")[:64] or "package"
            if not safe[0].isalnum():
                safe = "p" + safe[:63]
            with self.factory.begin() as db:
                row = db.scalar(select(StoredPackage).where(StoredPackage.sha256 == pkg.sha256))
                if row is None or not self.path_of(pkg.sha256).is_file():  # or its file lost
                    os.replace(tmp, self.path_of(pkg.sha256))
                if row is None:
                    row = StoredPackage(
                        sha256=pkg.sha256, name=safe, ecu=pkg.ecu_name,
                        ecu_address=pkg.ecu_address, version=pkg.version,
                        sw_versions=json.dumps(list(pkg.sw_versions)), publisher=pkg.publisher,
                        size=size, uploaded_at=int(time.time() if now is None else now),
                    )  # fmt: skip
                    db.add(row)
                    db.flush()
                return PackageInfo.of(row)
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, ecus: Mapping[str, int] | None = None) -> list[PackageInfo]:
        """The packages kept; with ``ecus`` (name -> address, the car's identified ECUs) only
        those for one of them."""
        with self.factory() as db:
            rows = db.scalars(select(StoredPackage).order_by(StoredPackage.ecu, StoredPackage.name))
            found = [PackageInfo.of(r) for r in rows]
        if ecus is None:
            return found
        return [p for p in found if ecus.get(p.ecu) == p.ecu_address]

    def get(self, sha256: str) -> PackageInfo | None:
        if not _SHA256.match(sha256):
            return None
        with self.factory() as db:
            row = db.scalar(select(StoredPackage).where(StoredPackage.sha256 == sha256))
            return None if row is None else PackageInfo.of(row)

    def path_of(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise PackageError(N_("not a package of the store"))
        return self.directory / f"{sha256}.vcipkg"

    # -- download tokens and offers ----------------------------------------------------------
    def _signing(self) -> tuple[str, Ed25519PrivateKey]:
        if self.kid is None or self.key is None:
            raise PackageError(N_("this package store was opened without the portal's ticket key"))
        return self.kid, self.key

    def token(self, device: str, sha256: str, exp: int) -> str:
        kid, key = self._signing()
        return sign(TOKEN_PREFIX, {"device": device, "sha256": sha256, "exp": exp, "kid": kid}, key)

    def check_token(self, token: str, sha256: str, now: float | None = None) -> str:
        """The box a download token was made for, if it is for ``sha256`` and has not expired;
        :class:`TicketError` if not."""
        kid, key = self._signing()
        payload = verify(TOKEN_PREFIX, token, {kid: key.public_key()})
        if payload.get("sha256") != sha256 or not isinstance(payload.get("device"), str):
            raise TicketError(N_("the download URL is for another package"))
        exp = payload.get("exp")
        if not isinstance(exp, int) or exp < (time.time() if now is None else now):
            raise TicketError(N_("the download URL has expired"))
        return str(payload["device"])

    def offer(self, device: str, sha256: str, base_url: str, now: float | None = None) -> str:
        """A signed ``package.offer`` for one box: where it downloads the package, until when."""
        info = self.get(sha256)
        if info is None:
            raise PackageError(N_("the package store has no such package"))
        at = time.time() if now is None else now
        exp = int(at) + TOKEN_LIFETIME
        url = f"{base_url.rstrip('/')}/packages/{sha256}.vcipkg?t={self.token(device, sha256, exp)}"
        kid, key = self._signing()
        return package_offer.sign_offer(
            key, kid, device=device, name=info.name, url=url, size=info.size,
            sha256=sha256, exp=exp, now=at,
        )  # fmt: skip
