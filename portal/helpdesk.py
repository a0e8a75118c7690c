"""The portal's Technical Help Desk (docs/helpdesk.md): the requests boxes send through their
outbox (``helpdesk.request``, naming each attachment's size and SHA-256, and its attachments as
``helpdesk.chunk`` records), put together here; and the help desk's answers.

A request is complete when every chunk of every attachment is here and each attachment's SHA-256
agrees; only then is the request acknowledged to its box (which consumes the box's Help Desk
ticket then, never on a failed send). Chunks are kept by (box, request, attachment, index): a
chunk sent again after an outage is kept once."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS helpdesk_requests (
        box TEXT NOT NULL, id TEXT NOT NULL, vin TEXT, question TEXT, contact TEXT, body TEXT,
        received REAL, complete INTEGER NOT NULL DEFAULT 0, problem TEXT, answer TEXT,
        answered_at REAL, answered_by TEXT, PRIMARY KEY (box, id))""",
    """CREATE TABLE IF NOT EXISTS helpdesk_chunks (
        box TEXT NOT NULL, request TEXT NOT NULL, attachment TEXT NOT NULL, idx INTEGER NOT NULL,
        data BLOB NOT NULL, PRIMARY KEY (box, request, attachment, idx))""",
)


class HelpDeskError(ValueError):
    pass


class HelpDesk:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        for statement in SCHEMA:
            db.execute(statement)

    # -- from the boxes ---------------------------------------------------------------------------
    def add_request(self, box: str, body: dict[str, Any]) -> None:
        rid = str(body.get("request", ""))[:64]
        self.db.execute(
            "INSERT OR IGNORE INTO helpdesk_requests(box, id, vin, question, contact, body, received)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                box,
                rid,
                str(body.get("vin") or "")[:17] or None,
                str(body.get("question", ""))[:4000],
                str(body.get("contact", ""))[:200],
                json.dumps(body),
                time.time(),
            ),
        )

    def add_chunk(self, box: str, body: dict[str, Any]) -> None:
        import base64
        import binascii

        try:
            data = base64.b64decode(str(body.get("data", "")), validate=True)
            index = int(body["index"])
        except (binascii.Error, KeyError, TypeError, ValueError):
            return  # not a chunk: nothing to keep (the request stays incomplete, and says so)
        self.db.execute(
            "INSERT OR IGNORE INTO helpdesk_chunks VALUES (?,?,?,?,?)",
            (
                box,
                str(body.get("request", ""))[:64],
                str(body.get("attachment", ""))[:200],
                index,
                data,
            ),
        )

    def complete(self, box: str, rid: str) -> bool:
        """Whether the request is here whole (every attachment's chunks, SHA-256 equal); marks it."""
        row = self.db.execute(
            "SELECT body, complete FROM helpdesk_requests WHERE box = ? AND id = ?", (box, rid)
        ).fetchone()
        if row is None:
            return False
        if row[1]:
            return True
        problems = []
        for att in json.loads(row[0]).get("attachments") or []:
            have = self.db.execute(
                "SELECT COUNT(*) FROM helpdesk_chunks WHERE box = ? AND request = ? AND attachment = ?",
                (box, rid, att.get("name")),
            ).fetchone()[0]
            if have < int(att.get("chunks", 0)):
                return False  # more chunks are on the way
            digest = hashlib.sha256(self._data(box, rid, str(att.get("name")))).hexdigest()
            if digest != att.get("sha256"):
                problems.append(f"{att.get('name')}: SHA-256 {digest} is not the box's")
        if problems:
            self.db.execute(
                "UPDATE helpdesk_requests SET problem = ? WHERE box = ? AND id = ?",
                ("; ".join(problems), box, rid),
            )
            return False
        self.db.execute(
            "UPDATE helpdesk_requests SET complete = 1, problem = NULL WHERE box = ? AND id = ?",
            (box, rid),
        )
        return True

    def _data(self, box: str, rid: str, name: str) -> bytes:
        rows = self.db.execute(
            "SELECT data FROM helpdesk_chunks WHERE box = ? AND request = ? AND attachment = ?"
            " ORDER BY idx",
            (box, rid, name),
        )
        return b"".join(r[0] for r in rows)

    # -- for the help desk ------------------------------------------------------------------------
    def requests(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT box, id, vin, question, contact, received, complete, problem, answer"
            " FROM helpdesk_requests ORDER BY received DESC"
        ).fetchall()
        keys = ("box", "id", "vin", "question", "contact", "received", "complete", "problem",
                "answer")  # fmt: skip
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def _find(self, rid: str) -> tuple[str, dict[str, Any], sqlite3.Row | tuple[Any, ...]]:
        rows = self.db.execute(
            "SELECT box, body, complete, problem, answer, answered_at, answered_by, received"
            " FROM helpdesk_requests WHERE id = ?",
            (rid,),
        ).fetchall()
        if not rows:
            raise HelpDeskError(f"no help-desk request {rid!r}")
        return rows[0][0], json.loads(rows[0][1]), rows[0]

    def show(self, rid: str) -> dict[str, Any]:
        box, body, row = self._find(rid)
        out = {
            **body,
            "box": box,
            "complete": bool(row[2]),
            "problem": row[3],
            "answer": row[4],
            "answered_at": row[5],
            "answered_by": row[6],
            "received": row[7],
        }
        if row[2]:
            bundle = self.attachment(rid, "bundle.json")
            out["bundle"] = json.loads(bundle) if bundle else None
        return out

    def attachment(self, rid: str, name: str) -> bytes:
        box, body, row = self._find(rid)
        if not row[2]:
            raise HelpDeskError(f"request {rid} has not arrived whole yet")
        if name not in [a.get("name") for a in body.get("attachments") or []]:
            raise HelpDeskError(f"request {rid} has no attachment {name!r}")
        return self._data(box, rid, name)

    def answer(self, rid: str, text: str, who: str) -> str:
        """Keep the answer; returns the box to send it to."""
        box, _, row = self._find(rid)
        self.db.execute(
            "UPDATE helpdesk_requests SET answer = ?, answered_at = ?, answered_by = ? WHERE id = ?",
            (text, time.time(), who, rid),
        )
        return box
