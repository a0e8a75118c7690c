"""Pairing of tablets with the box, and their sessions.

A tablet proves it is at the box: it asks to pair, and within ``window`` seconds either the box's
button is pressed (gpiozero; on a PC ``vci pair --approve``) or the code printed on the box's label
is typed in. Then it gets a long-lived session token (sent as an HttpOnly, SameSite=Strict cookie)
and a CSRF token for requests that change anything.

Pure logic over the SQLite store: every method takes ``now`` (trusted time, seconds) and the
asking client's address. Secrets are stored only as SHA-256 hashes; a token is shown once, to the
tablet that asked.

Nobody else on the Wi-Fi can jam pairing (docs/web.md, "Pairing"):

- one pending request per client address: a new request from the same address replaces the
  older one, so an address cannot fill the box; the table is bounded by dropping the oldest;
- the button approves the one request whose tablet is still waiting for the answer (polling).
  When several tablets wait, the press cannot tell which one the person holds: nobody is approved
  and nobody is refused; every waiting tablet is told to type the label code instead;
- wrong label codes are limited per client address (``max_code_attempts`` per ``lockout``
  seconds); another address's wrong codes never lock a tablet out. A wrong code that cannot be
  recorded (full disk) still counts (kept in memory) and the attempt is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from firmware_py.errors import StorageError, VciError
from firmware_py.gateway.store import Store
from firmware_py.i18n import N_

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
    """CREATE TABLE IF NOT EXISTS pairing_code_failures (at REAL NOT NULL, client TEXT NOT NULL)""",
)
#: a tablet counts as waiting for the button while it asked for its answer this recently
STILL_POLLING = 5.0
#: wrong-code records kept in memory per client address (older ones no longer matter)
MAX_FAILURES_KEPT = 64


class PairingError(VciError):
    code = "pairing_refused"


@dataclass
class PendingPairing:
    id: str
    name: str
    claim_hash: str
    created: float
    client: str = ""
    short_code: str = ""
    last_poll: float = float("-inf")
    """when its tablet last asked for the answer (a request nobody waits for is not approved)"""
    use_code: bool = False
    """the button was pressed while several tablets waited: this one must type the label code"""
    approved_how: str | None = None


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
        max_pending: int = 256,
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
        self._failures: dict[str, list[float]] = {}
        rows = store.connection().execute(
            "SELECT client, at FROM pairing_code_failures ORDER BY at"
        )
        for row in rows:
            self._failures.setdefault(row["client"], []).append(row["at"])

    # -- asking ------------------------------------------------------------------------
    def request(self, name: str, now: float, client: str = "") -> tuple[str, str]:
        """A tablet at address ``client`` asks to pair. Returns (request id, claim secret); only
        the holder of the claim secret can collect the session once the request is approved. A
        client's earlier request is replaced; when the table is full the oldest request goes."""
        self._expire(now)
        name = (name or "tablet").strip()[:40] or "tablet"
        for rid, p in list(self._pending.items()):
            if p.client == client:
                del self._pending[rid]
        while len(self._pending) >= self.max_pending:
            oldest = min(self._pending.values(), key=lambda p: p.created)
            del self._pending[oldest.id]
        rid, claim = secrets.token_urlsafe(9), secrets.token_urlsafe(24)
        self._pending[rid] = PendingPairing(
            rid, name, _hash(claim), now, client, f"{secrets.randbelow(10000):04d}"
        )
        return rid, claim

    def pending(self, rid: str) -> PendingPairing | None:
        """Request ``rid`` as it stands (its short code: the 4 digits its tablet shows, so that
        the person at the box sees which tablet was paired; whether it must use the label code)."""
        return self._pending.get(rid)

    def _expire(self, now: float) -> None:
        for rid, p in list(self._pending.items()):
            if now - p.created > self.window + 300:  # keep a while to say "expired"
                del self._pending[rid]

    def _live(self, rid: str, now: float) -> PendingPairing:
        p = self._pending.get(rid)
        if p is None:
            raise PairingError(N_("unknown pairing request"), hint=N_("Start pairing again"))
        if p.approved_how is None and now - p.created > self.window:
            raise PairingError(
                N_("the pairing request expired after {seconds} s"),
                values={"seconds": f"{self.window:.0f}"},
                hint=N_("Start pairing again and press the box's button within a minute"),
            )
        return p

    # -- approving ---------------------------------------------------------------------
    def press_button(self, now: float) -> str:
        """The box's button was pressed: approve the one request whose tablet is still waiting.
        Returns its name (and short code). Several waiting tablets: nobody is approved or refused,
        each is told to use the label code."""
        live = [
            p
            for p in self._pending.values()
            if p.approved_how is None
            and now - p.created <= self.window
            and now - p.last_poll <= STILL_POLLING
        ]
        if not live:
            raise PairingError(
                N_("no tablet is waiting to pair"),
                hint=N_("Open the page on the tablet and tap Pair first"),
            )
        if len(live) > 1:
            for p in live:
                p.use_code = True
            raise PairingError(
                N_("{count} tablets are waiting to pair; the button cannot tell which is yours"),
                values={"count": len(live)},
                hint=N_("Type the code from the box's label on your tablet"),
            )
        live[0].approved_how = "button"
        return f"{live[0].name} ({live[0].short_code})"

    def enter_code(self, rid: str, code: str, now: float, client: str = "") -> None:
        """The label code was typed in on the tablet that made request ``rid``."""
        self._check_lockout(client, now)
        p = self._live(rid, now)
        if not hmac.compare_digest(
            code.strip().upper().encode(), self._label_code.upper().encode()
        ):
            kept = self._failures.setdefault(client, [])
            kept.append(now)
            del kept[:-MAX_FAILURES_KEPT]
            try:
                with self.store.transaction() as db:
                    db.execute(
                        "INSERT INTO pairing_code_failures(at, client) VALUES (?, ?)",
                        (now, client),
                    )
            except StorageError as err:  # counted above all the same: a full disk is no bypass
                raise PairingError(
                    N_("wrong code (and the box could not record it: its storage is full)"),
                    hint=N_("Free space on the box; type the code printed on the box's label"),
                ) from err
            raise PairingError(
                N_("wrong code"), hint=N_("Type the code printed on the box's label")
            )
        p.approved_how = "code"

    def _check_lockout(self, client: str, now: float) -> None:
        fails = sum(1 for at in self._failures.get(client, ()) if at > now - self.lockout)
        if fails >= self.max_code_attempts:
            raise PairingError(
                N_("too many wrong codes"),
                hint=N_(
                    "Pairing by code is locked for {minutes} minutes on this tablet; "
                    "use the box's button"
                ),
                hint_values={"minutes": f"{self.lockout / 60:.0f}"},
            )

    # -- collecting the session ----------------------------------------------------------
    def collect(self, rid: str, claim: str, now: float) -> tuple[str, Tablet] | None:
        """The asking tablet collects its session: (session token, tablet) once approved, ``None``
        while still waiting. Raises when refused or expired."""
        p = self._live(rid, now)
        if not hmac.compare_digest(_hash(claim), p.claim_hash):
            raise PairingError(N_("this pairing request belongs to another tablet"))
        p.last_poll = max(p.last_poll, now)
        if p.approved_how is None:
            return None
        token = secrets.token_urlsafe(32)
        tablet = Tablet(
            secrets.token_hex(6), p.name, secrets.token_urlsafe(24), now, now, p.approved_how
        )
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO tablets(id, name, token_hash, csrf, paired_at, last_seen, how) VALUES (?,?,?,?,?,?,?)",
                (tablet.id, tablet.name, _hash(token), tablet.csrf, now, now, tablet.how),
            )  # a StorageError (full disk) leaves the request approved: collect again later
        del self._pending[rid]
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
