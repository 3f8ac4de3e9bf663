"""The store's item writes: each article in one transaction together with its source link,
its matches and its story, alone (``add_item``) or many in one transaction (``Batch``);
the look-ups that tell a new entry from a stored one, and re-tagging stored items.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from tracker.core.errors import StorageError
from tracker.core.text import text_hash
from tracker.core.types import Article, Match
from tracker.core.urls import outlet_host
from tracker.store.base import StoreBase, _rollback, utcnow
from tracker.store.models import Item, ItemSource, RuleMatch
from tracker.store.storydb import StoryPlacement, place_item

#: texts at least this long are identified by their normalized hash too (shorter ones, such as
#: a one-line feed summary, can repeat across different articles)
MIN_DUPLICATE_TEXT = 500


class ItemStore(StoreBase):
    """Items, their sources and their matches."""

    def lookup(self, feed_id: int, urls: Iterable[str], guids: Iterable[str]) -> tuple[dict[str, int], set[str]]:
        """Stored items among these canonical entry URLs (by item URL or by a source's entry
        URL), and the GUIDs this feed already delivered."""
        urls, guids = list(set(urls)), list(set(guids))
        found: dict[str, int] = {}
        seen_guids: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(urls, 500):
                found.update((u, i) for u, i in conn.execute(select(Item.url, Item.id).where(Item.url.in_(chunk))))
                rows = conn.execute(
                    select(ItemSource.entry_url, ItemSource.item_id).where(ItemSource.entry_url.in_(chunk))
                )
                for url, item_id in rows:
                    if url is not None:
                        found.setdefault(url, item_id)
            for chunk in _chunks(guids, 500):
                seen_guids |= {
                    g
                    for g in conn.execute(
                        select(ItemSource.guid).where(ItemSource.feed_id == feed_id, ItemSource.guid.in_(chunk))
                    ).scalars()
                    if g is not None
                }
        return found, seen_guids

    def item_id(self, url: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(Item.id).where(Item.url == url)).scalar()

    def link_source(self, item: int | str, feed_id: int, entry_url: str | None, guid: str | None) -> bool:
        """Record that ``feed_id`` also carried a stored item (by id or URL); True if new."""
        for attempt in self._writes():
            with attempt as conn:
                item_id = (
                    item if isinstance(item, int) else conn.execute(select(Item.id).where(Item.url == item)).scalar()
                )
                if item_id is None:
                    return False
                return self._link(conn, item_id, feed_id, entry_url, guid)
        raise AssertionError("unreachable: _writes ends only after a committed attempt")

    def _link(self, conn: Connection, item_id: int, feed_id: int, entry_url: str | None, guid: str | None) -> bool:
        result = conn.execute(
            self._statement("insert_source"),
            {"item_id": item_id, "feed_id": feed_id, "entry_url": entry_url, "guid": guid, "seen_at": utcnow()},
        )
        return bool(result.rowcount)

    def add_item(
        self,
        article: Article,
        matches: Sequence[Match],
        *,
        feed_id: int | None,
        entry_url: str | None = None,
        guid: str | None = None,
        raw_html: bytes | None = None,
        story: StoryPlacement | None = None,
    ) -> tuple[int, bool]:
        """Store an article with its matches, source and story in one transaction.

        Returns (item id, created). An article whose canonical URL is already stored, or
        whose (long enough) text is, is not written again; only the new source is linked.
        ``story`` places the new item in a story (``tracker.pipeline.grouping`` decides which);
        without it the item waits for ``StoryGrouper.catch_up``.
        """
        for attempt in self._writes():
            with attempt as conn:
                item_id, created, _ = self._add_item(
                    conn,
                    article,
                    matches,
                    feed_id=feed_id,
                    entry_url=entry_url,
                    guid=guid,
                    raw_html=raw_html,
                    story=lambda: story,
                )
                return item_id, created
        raise AssertionError("unreachable: _writes ends only after a committed attempt")

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """One write transaction for many articles (``Batch.add_item``), committed when the block
        ends, rolled back (nothing written) when it raises. On SQLite it takes the write lock at
        once (BEGIN IMMEDIATE), waiting for another writer up to the busy timeout, so no statement
        inside fails for a lock. The caller keeps what it added until the commit, and on an error
        stores it again item by item (``add_item`` retries on locks)."""
        with self.engine.connect() as conn:
            try:
                if self.engine.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    yield Batch(self, conn)
                    conn.exec_driver_sql("COMMIT")
                else:
                    with conn.begin():
                        yield Batch(self, conn)
            except OperationalError as exc:
                _rollback(conn)
                raise StorageError(f"database error: {exc.orig}") from exc
            except BaseException:
                _rollback(conn)
                raise

    def _add_item(
        self,
        conn: Connection,
        article: Article,
        matches: Sequence[Match],
        *,
        feed_id: int | None,
        entry_url: str | None,
        guid: str | None,
        raw_html: bytes | None,
        story: Callable[[], StoryPlacement | None],
    ) -> tuple[int, bool, int | None]:
        """``add_item`` within ``conn``'s transaction; ``story`` is asked only for a new item.
        Returns (item id, created, the story it was placed in or None)."""
        now = utcnow()
        digest = text_hash(article.text)
        existing = conn.execute(self._statement("item_by_url"), {"b_url": article.url}).scalar()
        if existing is None and len(article.text) >= MIN_DUPLICATE_TEXT:
            # The same article under another URL (a syndicated copy, a mirror): one item.
            existing = conn.execute(self._statement("item_by_hash"), {"b_hash": digest}).scalar()
        if existing is not None:
            if feed_id is not None:
                self._link(conn, existing, feed_id, entry_url, guid)
            return existing, False, None
        item_id = conn.execute(
            self._statement("insert_item"),
            {
                "url": article.url,
                "guid": guid,
                "title": article.title,
                "author": article.author,
                "published_at": article.published,
                "site_name": article.site_name,
                "language": article.language,
                "text": article.text,
                "text_source": article.text_source.value,
                "text_hash": digest,
                "raw_html": zlib.compress(raw_html, 6) if raw_html else None,
                "final_url": article.final_url,
                "host": outlet_host(article.url),
                "fetched_at": now,
                "entities": _entities({"term": e.term, "text": e.text} for m in matches for e in m.evidence),
            },
        ).scalar()
        if item_id is None:
            # Another writer stored it between our check and insert: link instead.
            existing = conn.execute(self._statement("item_by_url"), {"b_url": article.url}).scalar_one()
            if feed_id is not None:
                self._link(conn, existing, feed_id, entry_url, guid)
            return existing, False, None
        if feed_id is not None:
            self._link(conn, item_id, feed_id, entry_url, guid)
        self._insert_matches(conn, item_id, matches, now, article.published or now)
        placement = story()
        placed = place_item(conn, item_id, placement) if placement is not None else None
        return item_id, True, placed

    def _insert_matches(
        self, conn: Connection, item_id: int, matches: Sequence[Match], now: datetime, item_at: datetime | None
    ) -> None:
        if matches:
            rows = [_match_row(item_id, m, now, item_at) for m in matches]
            conn.execute(self._statement("insert_matches"), rows)

    # -- re-tagging ------------------------------------------------------------------------

    def replace_matches(self, rule_ids: Sequence[str], results: Mapping[int, Sequence[Match]]) -> int:
        """For these items, replace the matches of ``rule_ids`` with ``results`` (one transaction);
        returns how many (item, rule) tags changed."""
        now = utcnow()
        changed = 0
        with self._begin() as conn:
            for item_id, matches in results.items():
                before = set(
                    conn.execute(
                        select(RuleMatch.rule_id).where(RuleMatch.item_id == item_id, RuleMatch.rule_id.in_(rule_ids))
                    ).scalars()
                )
                conn.execute(delete(RuleMatch).where(RuleMatch.item_id == item_id, RuleMatch.rule_id.in_(rule_ids)))
                item_at = conn.execute(
                    select(func.coalesce(Item.published_at, Item.fetched_at)).where(Item.id == item_id)
                ).scalar()
                self._insert_matches(conn, item_id, matches, now, item_at)
                changed += len(before ^ {m.rule for m in matches})
                evidence = conn.execute(select(RuleMatch.evidence).where(RuleMatch.item_id == item_id)).scalars()
                found = [e for raw in evidence for e in json.loads(raw or "[]")]
                conn.execute(update(Item).where(Item.id == item_id).values(entities=_entities(found)))
        return changed


class Batch:
    """Articles written in one transaction (``Store.batch``)."""

    def __init__(self, store: ItemStore, conn: Connection) -> None:
        self._store = store
        self._conn = conn

    def add_item(
        self,
        article: Article,
        matches: Sequence[Match],
        *,
        feed_id: int | None,
        entry_url: str | None = None,
        guid: str | None = None,
        raw_html: bytes | None = None,
        story: Callable[[], StoryPlacement | None] = lambda: None,
    ) -> tuple[int, bool, int | None]:
        """As ``Store.add_item``, in the batch's transaction; ``story`` is called only for a new
        item, right before it is placed (so a story index sees the batch's earlier items).
        Returns (item id, created, the story it was placed in or None)."""
        return self._store._add_item(
            self._conn,
            article,
            matches,
            feed_id=feed_id,
            entry_url=entry_url,
            guid=guid,
            raw_html=raw_html,
            story=story,
        )

    def link_source(self, item_id: int, feed_id: int, entry_url: str | None, guid: str | None) -> bool:
        return self._store._link(self._conn, item_id, feed_id, entry_url, guid)


def _entities(evidence: Iterable[Mapping[str, Any]]) -> str | None:
    """The catalogue entities among match evidence ("@ford" as "Ford"): "ford: Ford; byd: BYD"."""
    names: dict[str, set[str]] = {}
    for e in evidence:
        term = str(e.get("term", ""))
        if term.startswith("@"):
            names.setdefault(term[1:].rstrip("+"), set()).add(str(e.get("text", "")))
    if not names:
        return None
    return "; ".join(f"{eid}: {', '.join(sorted(n for n in texts if n))}" for eid, texts in sorted(names.items()))


def _evidence_rows(m: Match) -> list[dict[str, Any]]:
    """The evidence of a match as stored; a confirmation by the topic model is one more entry
    (``field`` "model": its probability and the words that weighed most), shown by ``tracker explain``."""
    rows: list[dict[str, Any]] = [
        {"term": e.term, "text": e.text, "field": e.field, "start": e.start, "end": e.end} for e in m.evidence
    ]
    if m.model is not None:
        rows.append(
            {
                "term": "model",
                "text": ", ".join(m.model_words),
                "field": "model",
                "start": 0,
                "end": 0,
                "probability": m.model,
            }
        )
    return rows


def _match_row(item_id: int, m: Match, now: datetime, item_at: datetime | None) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "rule_id": m.rule,
        "score": m.score,
        "terms": json.dumps(list(m.terms), ensure_ascii=False),
        "snippet": "\n".join(m.snippets),
        "rule_hash": m.rule_hash,
        "evidence": json.dumps(_evidence_rows(m), ensure_ascii=False),
        "matched_at": now,
        "item_at": item_at,
    }


def _chunks(seq: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
