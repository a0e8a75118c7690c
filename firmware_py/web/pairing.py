"""Pairing of tablets with the box, and their sessions.

A tablet proves it is at the box: it asks to pair, and within ``window`` seconds either the box's
button is pressed (gpiozero; on a PC ``vci pair --approve``) or the code printed on the box's label
is typed in. Then it gets a long-lived session token (sent as an HttpOnly, SameSite=Strict cookie)
and a CSRF token for requests that change anything.

Pure logic over the SQLite store: every method takes ``now`` (trusted time, seconds). Secrets are
stored only as SHA-256 hashes; a token is shown once, to the tablet that asked.

Abuse limits: the button approves only when exactly one request is pending (two tablets asking at
once could be a neighbour on the Wi-Fi: both are refused and must ask again); wrong label codes are
limited to ``max_code_attempts`` per ``lockout`` seconds for the whole box (attackers can change
address, the box cannot tell them apart); pending requests are limited too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from firmware_py.errors import VciError
from firmware_py.gateway.store import Store

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tablets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        csrf TEXT NOT NULL,
        paired_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        how TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS pairing_failures (at REAL NOT NULL)""",
)


class PairingError(VciError):
    code = "pairing_refused"


@dataclass
class PendingPairing:
    id: str
    name: str
    claim_hash: str
    created: float
    approved_how: str | None = None
    refused: str | None = None


@dataclass(frozen=True)
class Tablet:
    id: str
    name: str
    csrf: str
    paired_at: float
    last_seen: float
    how: str

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "paired_at": self.paired_at,
            "last_seen": self.last_seen,
            "how": self.how,
        }


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Pairing:
    def __init__(
        self,
        store: Store,
        label_code: str,
        *,
        window: float = 60.0,
        max_code_attempts: int = 5,
        lockout: float = 600.0,
        session_lifetime: float = 90 * 86400.0,
        max_pending: int = 8,
    ) -> None:
        if len(label_code) < 6:
            raise ValueError("the label code must have at least 6 characters")
        self.store = store
        self._label_code = label_code
        self.window = window
        self.max_code_attempts = max_code_attempts
        self.lockout = lockout
        self.session_lifetime = session_lifetime
        self.max_pending = max_pending
        self._pending: dict[str, PendingPairing] = {}
        store.ensure_schema("pairing", SCHEMA)

    # -- asking ------------------------------------------------------------------------
    def request(self, name: str, now: float) -> tuple[str, str]:
        """A tablet asks to pair. Returns (request id, claim secret); only the holder of the claim
        secret can collect the session once the request is approved."""
        self._expire(now)
        name = (name or "tablet").strip()[:40] or "tablet"
        if len(self._pending) >= self.max_pending:
            raise PairingError(
                "too many pairing requests are waiting", hint="Try again in a minute"
            )
        rid, claim = secrets.token_urlsafe(9), secrets.token_urlsafe(24)
        self._pending[rid] = PendingPairing(rid, name, _hash(claim), now)
        return rid, claim

    def _expire(self, now: float) -> None:
        for rid, p in list(self._pending.items()):
            if now - p.created > self.window + 300:  # keep a while to say "expired"
                del self._pending[rid]

    def _live(self, rid: str, now: float) -> PendingPairing:
        p = self._pending.get(rid)
        if p is None:
            raise PairingError("unknown pairing request", hint="Start pairing again")
        if p.refused:
            raise PairingError(p.refused, hint="Start pairing again")
        if p.approved_how is None and now - p.created > self.window:
            raise PairingError(
                f"the pairing request expired after {self.window:.0f} s",
                hint="Start pairing again and press the box's button within a minute",
            )
        return p

    def pending_count(self, now: float) -> int:
        return sum(
            1
            for p in self._pending.values()
            if p.approved_how is None and not p.refused and now - p.created <= self.window
        )

    # -- approving ---------------------------------------------------------------------
    def press_button(self, now: float) -> str:
        """The box's button was pressed: approve the one pending request. Returns its name."""
        live = [
            p
            for p in self._pending.values()
            if p.approved_how is None and not p.refused and now - p.created <= self.window
        ]
        if not live:
            raise PairingError(
                "no tablet is waiting to pair",
                hint="Open the page on the tablet and tap Pair first",
            )
        if len(live) > 1:
            for p in live:
                p.refused = "two tablets asked to pair at the same time; both were refused"
            raise PairingError(live[0].refused or "", hint="Pair one tablet at a time")
        live[0].approved_how = "button"
        return live[0].name

    def enter_code(self, rid: str, code: str, now: float) -> None:
        """The label code was typed in on the tablet that made request ``rid``."""
        self._check_lockout(now)
        p = self._live(rid, now)
        if not hmac.compare_digest(
            code.strip().upper().encode(), self._label_code.upper().encode()
        ):
            with self.store.transaction() as db:
                db.execute("INSERT INTO pairing_failures(at) VALUES (?)", (now,))
            raise PairingError("wrong code", hint="Type the code printed on the box's label")
        p.approved_how = "code"

    def _check_lockout(self, now: float) -> None:
        db = self.store.connection()
        (fails,) = db.execute(
            "SELECT COUNT(*) FROM pairing_failures WHERE at > ?", (now - self.lockout,)
        ).fetchone()
        if fails >= self.max_code_attempts:
            raise PairingError(
                "too many wrong codes",
                hint=f"Pairing by code is locked for {self.lockout / 60:.0f} minutes; use the box's button",
            )

    # -- collecting the session ----------------------------------------------------------
    def collect(self, rid: str, claim: str, now: float) -> tuple[str, Tablet] | None:
        """The asking tablet collects its session: (session token, tablet) once approved, ``None``
        while still waiting. Raises when refused or expired."""
        p = self._live(rid, now)
        if not hmac.compare_digest(_hash(claim), p.claim_hash):
            raise PairingError("this pairing request belongs to another tablet")
        if p.approved_how is None:
            return None
        del self._pending[rid]
        token = secrets.token_urlsafe(32)
        tablet = Tablet(
            secrets.token_hex(6), p.name, secrets.token_urlsafe(24), now, now, p.approved_how
        )
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO tablets(id, name, token_hash, csrf, paired_at, last_seen, how) VALUES (?,?,?,?,?,?,?)",
                (tablet.id, tablet.name, _hash(token), tablet.csrf, now, now, tablet.how),
            )
        return token, tablet

    # -- sessions ------------------------------------------------------------------------
    def authenticate(self, token: str | None, now: float) -> Tablet | None:
        """The tablet for a session token, or ``None`` (unknown, unpaired, expired)."""
        if not token or len(token) > 200:
            return None
        db = self.store.connection()
        row = db.execute("SELECT * FROM tablets WHERE token_hash = ?", (_hash(token),)).fetchone()
        if row is None or now - row["last_seen"] > self.session_lifetime:
            return None
        if now - row["last_seen"] > 60:
            with self.store.transaction() as tx:
                tx.execute("UPDATE tablets SET last_seen = ? WHERE id = ?", (now, row["id"]))
        return Tablet(
            row["id"],
            row["name"],
            row["csrf"],
            row["paired_at"],
            max(now, row["last_seen"]),
            row["how"],
        )

    def tablets(self) -> list[Tablet]:
        rows = (
            self.store.connection().execute("SELECT * FROM tablets ORDER BY paired_at").fetchall()
        )
        return [
            Tablet(r["id"], r["name"], r["csrf"], r["paired_at"], r["last_seen"], r["how"])
            for r in rows
        ]

    def unpair(self, tablet_id: str) -> bool:
        with self.store.transaction() as db:
            return db.execute("DELETE FROM tablets WHERE id = ?", (tablet_id,)).rowcount > 0
