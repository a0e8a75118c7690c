"""The box's cache of repair information (docs/content-format.md, "On the box"): for each car it
identified under a ticket with ``repair_information``, the portal's subset for that car (its
instructions, open campaigns and part groups), so the tablet can show them without the portal.

Bounded: the cached subsets together stay under ``max_bytes``; the car fetched longest ago is
evicted first. Versioned: each subset carries the portal's content version; a car is *stale*
when its version differs from the newest version the box has heard from the portal, and is then
asked for again the next time the car is identified.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from firmware_py.errors import InfoCacheError
from firmware_py.i18n import N_
from firmware_py.uds.fault_memory import normal_dtc

FILE = "info_cache.sqlite"
"""the cache's file in the box's state directory"""
MAX_PIECES = 4096
"""pieces of one car's subset (each under the protocol's 64 KiB message)"""


class InfoCache:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS info_cache (vin TEXT PRIMARY KEY, version TEXT NOT NULL, "
            "fetched REAL NOT NULL, size INTEGER NOT NULL, body TEXT NOT NULL)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS info_cache_meta (key TEXT PRIMARY KEY, value TEXT)"
        )

    def heard(self, version: str) -> None:
        """The portal's current content version, as its latest answer carried it."""
        self.db.execute("INSERT OR REPLACE INTO info_cache_meta VALUES ('version', ?)", (version,))

    def latest(self) -> str | None:
        row = self.db.execute("SELECT value FROM info_cache_meta WHERE key = 'version'").fetchone()
        return row[0] if row else None

    def stale(self, vin: str) -> bool:
        """True when ``vin`` must be asked for: not cached, or cached from an older version."""
        row = self.db.execute("SELECT version FROM info_cache WHERE vin = ?", (vin,)).fetchone()
        return row is None or (self.latest() not in (None, row[0]))

    def put(self, subset: dict[str, Any], now: float | None = None) -> list[str]:
        """Keep the portal's ``subset`` for its VIN; returns the VINs evicted to make room."""
        vin, version = subset.get("vin"), subset.get("content_version")
        if not isinstance(vin, str) or not isinstance(version, str):
            raise InfoCacheError(N_("the portal's answer names no VIN or content version"))
        body = json.dumps(subset, separators=(",", ":"))
        size = len(body.encode())
        if size > self.max_bytes:
            raise InfoCacheError(
                N_(
                    "the repair information for {vin} ({size} bytes) is larger than the cache ({max_bytes} bytes)"
                ),
                values={"vin": vin, "size": size, "max_bytes": self.max_bytes},
                hint=N_("Raise [storage] info_cache_bytes in the box's configuration"),
            )
        evicted: list[str] = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM info_cache WHERE vin = ?", (vin,))
            rows = self.db.execute("SELECT vin, size FROM info_cache ORDER BY fetched").fetchall()
            total = sum(s for _, s in rows) + size
            for old, old_size in rows:
                if total <= self.max_bytes:
                    break
                self.db.execute("DELETE FROM info_cache WHERE vin = ?", (old,))
                evicted.append(old)
                total -= old_size
            self.db.execute(
                "INSERT INTO info_cache VALUES (?,?,?,?,?)",
                (vin, version, time.time() if now is None else now, size, body),
            )
        self.heard(version)  # the answer carries the portal's current content version
        return evicted

    def forget(self, vin: str) -> int:
        """Delete ``vin``'s subset so that no byte of it stays in the file (a customer's erasure,
        firmware_py/gateway/privacy.py); returns the rows deleted."""
        self.db.execute("PRAGMA secure_delete = ON")
        deleted = self.db.execute("DELETE FROM info_cache WHERE vin = ?", (vin,)).rowcount
        self.db.execute("VACUUM")
        return deleted

    def get(self, vin: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM info_cache WHERE vin = ?", (vin,)).fetchone()
        return json.loads(row[0]) if row else None

    def vins(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT vin FROM info_cache ORDER BY fetched")]

    def for_dtc(self, vin: str, code: str) -> dict[str, Any] | None:
        """What the tablet shows for one fault code of a cached car: its instructions and the
        car's campaigns; None when the car is not cached."""
        subset = self.get(vin)
        if subset is None:
            return None
        code = normal_dtc(code) or code  # the display form (P12A1-00) the tablet shows, too
        refs = set(subset["dtcs"].get(code, []))
        return {
            "vin": vin,
            "dtc": code,
            "content_version": subset["content_version"],
            "instructions": [i for i in subset["instructions"] if i["id"] in refs],
            "campaigns": [c for c in subset["campaigns"] if c["status"] == "open"],
        }


class InfoPieces:
    """Puts a subset together from the portal's ``info.piece`` messages (in any order, a piece
    sent twice taken once) and keeps it in the cache when the last one has come. One car at a
    time: a piece of another car or version drops what was collected."""

    def __init__(self, cache: InfoCache) -> None:
        self.cache = cache
        self._key: tuple[str, str, int] | None = None
        self._parts: dict[int, str] = {}

    def take(self, body: dict[str, Any]) -> dict[str, Any]:
        vin, version = body.get("vin"), body.get("content_version")
        index, count, data = body.get("index"), body.get("count"), body.get("data")
        if not (isinstance(vin, str) and isinstance(version, str) and isinstance(data, str)
                and isinstance(index, int) and isinstance(count, int)
                and 0 <= index < count <= MAX_PIECES):  # fmt: skip
            raise InfoCacheError(
                N_("info.piece: vin, content_version, index < count, data expected")
            )
        key = (vin, version, count)
        if key != self._key:
            self._key, self._parts = key, {}
        self._parts[index] = data
        answer: dict[str, Any] = {"vin": vin, "content_version": version, "index": index,
                                  "count": count, "complete": False, "evicted": []}  # fmt: skip
        if len(self._parts) < count:
            return answer
        text = "".join(self._parts[i] for i in range(count))
        self._key, self._parts = None, {}
        try:
            subset = json.loads(text)
        except ValueError as err:
            raise InfoCacheError(
                N_("the repair information for {vin} is not JSON: {err}"),
                values={"vin": vin, "err": err},
            ) from err
        if not isinstance(subset, dict) or subset.get("vin") != vin:
            raise InfoCacheError(
                N_("the repair information sent for {vin} is for another car"), values={"vin": vin}
            )
        return {**answer, "complete": True, "evicted": self.cache.put(subset)}
