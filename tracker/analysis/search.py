"""Full-text search over stored items: SQLite FTS5, or PostgreSQL's full-text search.

The index covers each item's title, text and the catalogue entities its matches found
(migration 0006). On SQLite it is an FTS5 table kept in step by triggers on every write;
the query language is FTS5's: words (stemmed), "phrases", AND / OR / NOT, prefix*, and
NEAR(a b, 5). On PostgreSQL it is a GIN index over ``to_tsvector('english', ...)`` and the
query is read by ``websearch_to_tsquery``: words, "phrases", OR, and -exclusions.

Ranked by relevance (BM25, a title hit weighing most) or by date; each hit carries a
snippet with the matched words marked.

A query has at most ``MAX_SEARCH_TERMS`` terms and ``MAX_SEARCH_CHARS`` characters (rules/README.md,
"Limits"); a longer one is refused before the database sees it, with BadQueryError (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from tracker.core.errors import BadQueryError
from tracker.store.database import Store
from tracker.store.models import UTCDateTime

MARK = ("[", "]")  #: how matched words are marked in snippets (plain text, for every output)
#: Terms (words, also those of phrases and prefixes; not the operators AND, OR, NOT, NEAR) in one query.
MAX_SEARCH_TERMS = 64
#: Characters in one query.
MAX_SEARCH_CHARS = 1_000
_WORD = re.compile(r"[^\W_]+")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})

_PG_DOCUMENT = (
    "to_tsvector('english', coalesce(i.title, '') || ' ' || coalesce(i.text, '') || ' ' || coalesce(i.entities, ''))"
)


@dataclass(frozen=True, slots=True)
class Hit:
    item_id: int
    title: str
    url: str
    outlet: str | None  #: the site name the page declares, else its host (as in every listing)
    at: datetime | None  #: published, else fetched (UTC)
    topics: str  #: the rules that tag it, comma-separated
    snippet: str  #: a passage with the matched words between MARK
    score: float  #: higher is more relevant

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "url": self.url,
            "outlet": self.outlet,
            "at": self.at.isoformat() if self.at else None,
            "topics": [t.strip() for t in self.topics.split(",") if t.strip()],
            "snippet": self.snippet,
            "score": round(self.score, 4),
        }


def search(
    store: Store,
    query: str,
    *,
    rule: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    limit: int = 20,
    by_date: bool = False,
) -> list[Hit]:
    """Items matching ``query``, best first (or newest first with ``by_date``); ``limit`` 0: all."""
    check_query(query)
    dialect = store.engine.dialect.name
    filters, params = _filters(rule, since, until, source)
    params.update(q=query, n=limit if limit > 0 else -1 if store.engine.dialect.name == "sqlite" else None)
    if dialect == "sqlite":
        sql = f"""
            SELECT i.id, i.title, i.url, coalesce(i.site_name, i.host), coalesce(i.published_at, i.fetched_at) AS at,
                   -bm25(items_fts, 5.0, 1.0, 2.0) AS score,
                   snippet(items_fts, 1, '{MARK[0]}', '{MARK[1]}', '…', 24) AS snip,
                   (SELECT group_concat(m.rule_id, ', ') FROM matches m WHERE m.item_id = i.id) AS topics
            FROM items_fts JOIN items i ON i.id = items_fts.rowid
            WHERE items_fts MATCH :q {filters}
            ORDER BY {"at DESC" if by_date else "score DESC"}, i.id DESC
            LIMIT :n"""
    elif dialect == "postgresql":
        sql = f"""
            SELECT i.id, i.title, i.url, coalesce(i.site_name, i.host), coalesce(i.published_at, i.fetched_at) AS at,
                   ts_rank_cd({_PG_DOCUMENT}, websearch_to_tsquery('english', :q)) AS score,
                   ts_headline('english', i.text, websearch_to_tsquery('english', :q),
                               'StartSel={MARK[0]}, StopSel={MARK[1]}, MaxWords=30, MinWords=12') AS snip,
                   (SELECT string_agg(m.rule_id, ', ' ORDER BY m.rule_id) FROM matches m
                     WHERE m.item_id = i.id) AS topics
            FROM items i
            WHERE {_PG_DOCUMENT} @@ websearch_to_tsquery('english', :q) {filters}
            ORDER BY {"at DESC" if by_date else "score DESC"}, i.id DESC
            LIMIT :n"""
    else:
        raise BadQueryError(f"search: not available on {dialect}")
    statement = (
        text(sql)
        .bindparams(*(bindparam(k, type_=UTCDateTime) for k in ("since", "until") if k in params))
        .columns(at=UTCDateTime)
    )
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(statement, params).all()
    except (OperationalError, ProgrammingError) as exc:
        message = str(exc.orig).splitlines()[0]
        if dialect == "sqlite" and not any(s in message for s in ("no such table", "locked", "unable to open")):
            hint = '; put words with hyphens or colons in "double quotes"' if "column" in message else ""
            raise BadQueryError(f"search: {query!r} is not a valid query ({message}){hint}") from exc
        raise
    return [
        Hit(
            item_id=r[0],
            title=r[1],
            url=r[2],
            outlet=r[3],
            at=r[4],
            topics=r[7] or "",
            snippet=" ".join((r[6] or "").split()),
            score=float(r[5] or 0.0),
        )
        for r in rows
    ]


def check_query(query: str) -> None:
    """BadQueryError for an empty query or one beyond the limits (the message never repeats a long query)."""
    if not query.strip():
        raise BadQueryError("search: the query is empty")
    terms = sum(1 for w in _WORD.findall(query) if w not in _OPERATORS)
    if terms > MAX_SEARCH_TERMS:
        raise BadQueryError(
            f"search: the query has {terms:,} terms, more than the limit of {MAX_SEARCH_TERMS}; search for fewer"
        )
    if len(query) > MAX_SEARCH_CHARS:
        raise BadQueryError(
            f"search: the query is {len(query):,} characters long, more than the limit of {MAX_SEARCH_CHARS:,}"
        )


def _filters(
    rule: str | None, since: datetime | None, until: datetime | None, source: str | None
) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if rule:
        clauses.append("EXISTS (SELECT 1 FROM matches m WHERE m.item_id = i.id AND m.rule_id = :rule)")
        params["rule"] = rule
    if since:
        clauses.append("coalesce(i.published_at, i.fetched_at) >= :since")
        params["since"] = since
    if until:
        clauses.append("coalesce(i.published_at, i.fetched_at) < :until")
        params["until"] = until
    if source:
        # An outlet (host, without www.) or the name of a configured feed.
        clauses.append(
            "(i.host = :source OR EXISTS (SELECT 1 FROM item_sources s JOIN feeds f ON f.id = s.feed_id "
            "WHERE s.item_id = i.id AND f.name = :source))"
        )
        params["source"] = source.removeprefix("www.")
    return "".join(f" AND {c}" for c in clauses), params
