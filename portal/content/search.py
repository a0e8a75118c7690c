"""Full-text search over the current content's instructions, wiring diagrams, bulletins and
parts, filtered to one vehicle's type code, ranked, with snippets; the same answer shape from
both databases:

- SQLite: the FTS5 table ``info_search`` (porter stemming) over title, body and the type codes,
  ranked by bm25 with the title weighted 5:1 over the body, snippets by FTS5's ``snippet()``.
- PostgreSQL: the English tsvector of title (weight A) and body (weight B) and the type codes
  (weight D), a stored generated
  column ``info_search_tsv`` (Alembic revision 0007 writes its expression) with
  the GIN index ``info_search_pg``, ranked by ``ts_rank_cd``, snippets by ``ts_headline`` for
  the rows shown only.

The user's words are reduced to word characters and searched for together (AND); no query
syntax of either engine reaches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from portal.content.format import TYPE_CODE
from portal.content.store import ALL_VEHICLES
from portal.content.vehicle import normal_dtc

MARK, END = "\x02", "\x03"
"""the snippet's hit markers (control characters never stored in searched text)"""
MAX_WORDS = 12


@dataclass(frozen=True)
class Hit:
    kind: str
    ref: str
    title: str
    snippet: str
    """the body around the hits, each hit between :data:`MARK` and :data:`END`"""
    rank: float
    """larger is better"""


SAE_DTC = re.compile(r"\b[PCBU][0-3][0-9A-F]{3}-[0-9A-F]{2}\b", re.IGNORECASE)
"""a DTC in its display form (P12A1-00) is searched for as the content stores it (12A100)"""


def words(query: str) -> list[str]:
    return [w for w in re.findall(r"\w+", query.lower()) if len(w) < 64][:MAX_WORDS]


def search(session: Session, query: str, type_code: str | None = None,
           limit: int = 20) -> list[Hit]:  # fmt: skip
    """The best ``limit`` hits for ``query`` (for the vehicle with ``type_code``, when given)."""
    terms = words(SAE_DTC.sub(lambda m: normal_dtc(m.group(0)) or "", query))
    if not terms:
        return []
    code = type_code.lower() if type_code and TYPE_CODE.match(type_code) else None
    if type_code and code is None:
        return []
    params: dict[str, object] = {"limit": limit}
    if session.get_bind().dialect.name == "sqlite":
        # the vehicle is a column filter of the same MATCH: FTS5 ranks (ORDER BY rank, its fast
        # path: bm25 title 5 : body 1, set by the migration) only what applies to the vehicle
        match = "{title body} : (" + " ".join(f'"{t}"' for t in terms) + ")"
        if code:
            match += f' AND vehicles : ("{code}" OR "{ALL_VEHICLES}")'
        params["match"] = match
        rows = session.execute(text(
            "SELECT d.kind, d.ref, d.title, best.snip, best.score FROM (SELECT rowid AS id, "
            f"snippet(info_search, 1, '{MARK}', '{END}', '...', 16) AS snip, rank AS score "
            "FROM info_search WHERE info_search MATCH :match ORDER BY rank LIMIT :limit) AS best "
            "JOIN info_documents d ON d.id = best.id ORDER BY best.score"
        ), params)  # fmt: skip
        return [Hit(k, r, t, s, -score) for k, r, t, s, score in rows]
    params["words"] = " ".join(terms)
    params["vehicle"] = f"{code} | {ALL_VEHICLES}" if code else ALL_VEHICLES
    # the vehicle's type code (weight D) is matched in the same tsvector, through the GIN index;
    # the rank counts the words only
    vehicle = "&& to_tsquery('simple', :vehicle)" if code else ""
    rows = session.execute(text(
        "SELECT kind, ref, title, ts_headline('english', body, q, "
        f"'StartSel={MARK}, StopSel={END}, MaxWords=24, MinWords=8, FragmentDelimiter=...'), "
        "score FROM (SELECT d.kind, d.ref, d.title, d.body, q, "
        "ts_rank_cd(d.info_search_tsv, q) AS score "
        "FROM info_documents d, plainto_tsquery('english', :words) q "
        f"WHERE d.info_search_tsv @@ (q {vehicle}) ORDER BY score DESC LIMIT :limit) AS best "
        "ORDER BY score DESC"
    ), params)  # fmt: skip
    return [Hit(k, r, t, s, float(score)) for k, r, t, s, score in rows]
