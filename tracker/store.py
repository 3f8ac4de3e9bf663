"""The store: with ``storydb`` (its story queries), the only module that runs SQL.

``make_engine`` builds the engine (SQLite pragmas in a connect listener: WAL, foreign
keys, busy timeout); ``Store`` is a small data-access object over it. Each article is
written in one transaction together with its source link and its matches, so a crash
leaves no half-written item, and re-running a cycle never duplicates one.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Engine,
    Float,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError

from .errors import StorageError
from .models import Feed, FetchLog, Item, ItemSource, RuleMatch, RuleState, UTCDateTime
from .storydb import StoryPlacement, place_item
from .text import text_hash
from .types import Article, FeedSource, FetchStatus, Match
from .urls import outlet_host

logger = logging.getLogger(__name__)


#: texts at least this long are identified by their normalized hash too (shorter ones, such as
#: a one-line feed summary, can repeat across different articles)
MIN_DUPLICATE_TEXT = 500


def make_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    """Engine for ``url``; creates the directory of a SQLite file and sets its pragmas.
    ``busy_timeout``: seconds SQLite waits for another writer before "database is locked"."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=int(busy_timeout * 1000)))
        return engine
    return create_engine(url, pool_pre_ping=True)


def describe_database_error(exc: BaseException, url: str | None) -> tuple[str, int]:
    """One line for a database that cannot be used, naming which (never its password), and
    the exit code: 2 when the configured thing is not a database at all, else 1."""
    orig = getattr(exc, "orig", None) or exc
    detail = " ".join(str(orig).split()) or type(orig).__name__
    where = "the database"
    backend = ""
    if url:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            where = f"SQLite database {parsed.database}"
        else:
            where = f"{backend} database at {parsed.host or 'localhost'}:{parsed.port or 'default port'}"
            if parsed.database:
                where += f"/{parsed.database}"
    lowered = detail.lower()
    if "file is not a database" in lowered:
        return f"{where}: not an SQLite database (file is not a database); check [database] url", 2
    if "malformed" in lowered or "corrupt" in lowered:
        return f"{where}: the file is corrupt ({detail[:200]}); restore a backup (tracker restore)", 1
    if backend and backend != "sqlite" and ("connect" in lowered or "refused" in lowered or "timeout" in lowered):
        return f"cannot connect to {where}: {detail[:200]}", 1
    return f"{where}: {type(orig).__name__}: {detail[:300]}", 1


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_ms: int = 30000) -> None:
    cur = dbapi_conn.cursor()
    # Several processes opening a brand-new file at once: switching it to WAL can answer
    # "database is locked" at once, without the busy timeout; retry within that timeout.
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_ms:d}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


_FEEDS = cast(Table, Feed.__table__)
_F = _FEEDS.c
_MINE = or_(_F.claimed_by.is_(None), _F.claimed_by == bindparam("b_owner"), bindparam("b_anyone", type_=Boolean))
_COMMON = {
    "last_status": bindparam("b_status"),
    "last_fetched_at": bindparam("b_started", type_=UTCDateTime),
    "next_poll_at": bindparam("b_next", type_=UTCDateTime),
    "failure_score": bindparam("b_score", type_=Float),
    "parked": bindparam("b_parked", type_=Boolean),
    "schedule_reason": bindparam("b_reason"),
    "claimed_by": None,
    "claimed_until": None,
}
_SUCCESS = {
    **_COMMON,
    "last_error": None,
    "consecutive_failures": 0,
    "last_success_at": bindparam("b_started", type_=UTCDateTime),
    "failing_since": None,
    "publish_rate": bindparam("b_rate", type_=Float),
    "etag": bindparam("b_etag"),
    "last_modified": bindparam("b_last_modified"),
}
_ROW = update(_FEEDS).where(_F.id == bindparam("b_id"), _MINE)
#: the feed-row update for each kind of fetch outcome, executed for many rows at once
_FEED_UPDATES = {
    "ok": _ROW.values(
        **_SUCCESS,
        body_hash=bindparam("b_body_hash"),
        bozo_reason=bindparam("b_bozo"),
        title=func.coalesce(bindparam("b_title"), _F.title),
    ),
    "unchanged": _ROW.values(**_SUCCESS),
    "failed": _ROW.values(
        **_COMMON,
        last_error=bindparam("b_error"),
        consecutive_failures=_F.consecutive_failures + 1,
        failing_since=func.coalesce(_F.failing_since, bindparam("b_started", type_=UTCDateTime)),
    ),
}


def _fetch_params(feed: FeedState, outcome: FeedOutcome) -> dict[str, Any]:
    return {
        "b_id": feed.id,
        "b_owner": outcome.owner or "",
        "b_anyone": outcome.owner is None,
        "b_status": outcome.status.value,
        "b_started": outcome.started_at,
        "b_next": outcome.next_poll_at,
        "b_score": outcome.failure_score,
        "b_parked": outcome.parked,
        "b_reason": outcome.schedule_reason or None,
        "b_rate": outcome.publish_rate,
        # A new body brings its own validators (or none); a 304 may renew them, else the old ones stay.
        "b_etag": outcome.etag if outcome.status is FetchStatus.OK else outcome.etag or feed.etag,
        "b_last_modified": (
            outcome.last_modified if outcome.status is FetchStatus.OK else outcome.last_modified or feed.last_modified
        ),
        "b_body_hash": outcome.body_hash,
        "b_bozo": outcome.bozo_reason,
        "b_title": outcome.title or None,
        "b_error": outcome.error,
    }


def _feed_state(r: Any) -> FeedState:
    return FeedState(
        id=r.id,
        url=r.url,
        name=r.name,
        etag=r.etag,
        last_modified=r.last_modified,
        body_hash=r.body_hash,
        consecutive_failures=r.consecutive_failures,
        next_poll_at=r.next_poll_at,
        publish_rate=r.publish_rate,
        failure_score=r.failure_score or 0.0,
        failing_since=r.failing_since,
        last_success_at=r.last_success_at,
        parked=bool(r.parked),
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed row as the pipeline needs it."""

    id: int
    url: str
    name: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    consecutive_failures: int
    next_poll_at: datetime | None
    publish_rate: float | None = None  #: new entries per day (None: not known yet)
    failure_score: float = 0.0
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    parked: bool = False


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What to record on a feed after a fetch."""

    status: FetchStatus
    started_at: datetime
    duration_ms: int
    next_poll_at: datetime
    http_status: int | None = None
    size: int | None = None
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    title: str | None = None
    bozo_reason: str | None = None
    entries: int = 0
    new_items: int = 0
    publish_rate: float | None = None
    failure_score: float = 0.0  #: after this fetch
    parked: bool = False
    schedule_reason: str = ""
    owner: str | None = None  #: the worker whose lease this fetch was done under


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._statements: dict[str, Any] = {}

    def _statement(self, name: str) -> Any:
        """The hot path's statements, built once per store (SQLAlchemy then reuses their compiled
        form and cache key instead of building a statement for every article)."""
        stmt = self._statements.get(name)
        if stmt is None:
            stmt = self._statements[name] = self._build(name)
        return stmt

    def _build(self, name: str) -> Any:
        if name == "item_by_url":
            return select(Item.id).where(Item.url == bindparam("b_url"))
        if name == "item_by_hash":
            return select(Item.id).where(Item.text_hash == bindparam("b_hash")).order_by(Item.id).limit(1)
        if name == "insert_item":
            return self._insert(Item.__table__).on_conflict_do_nothing(index_elements=["url"]).returning(Item.id)
        if name == "insert_source":
            return self._insert(ItemSource.__table__).on_conflict_do_nothing()
        if name == "insert_matches":
            return self._insert(RuleMatch.__table__)
        raise KeyError(name)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _insert(self, table: Any) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql  # only a PostgreSQL store loads its dialect

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    # -- feeds ---------------------------------------------------------------------------

    def sync_feeds(self, sources: Sequence[FeedSource]) -> list[FeedState]:
        """Make the feed table follow the config: add new feeds, rename, (de)activate."""
        now = utcnow()
        wanted = {s.url: s for s in sources}
        for attempt in self._writes():
            with attempt as conn:
                existing = {row.url: row for row in conn.execute(select(Feed.id, Feed.url, Feed.name, Feed.active))}
                for url, src in wanted.items():
                    row = existing.get(url)
                    if row is None:
                        conn.execute(
                            self._insert(Feed.__table__)
                            .values(url=url, name=src.name, active=True, consecutive_failures=0, created_at=now)
                            .on_conflict_do_nothing()
                        )
                    elif row.name != src.name or not row.active:
                        conn.execute(update(Feed).where(Feed.id == row.id).values(name=src.name, active=True))
                gone = [row.id for url, row in existing.items() if url not in wanted and row.active]
                if gone:
                    conn.execute(update(Feed).where(Feed.id.in_(gone)).values(active=False))
        return self.feeds(active_only=True)

    def feeds(self, *, active_only: bool = False, due_at: datetime | None = None) -> list[FeedState]:
        query = select(Feed).order_by(Feed.id)
        if active_only or due_at is not None:
            query = query.where(Feed.active.is_(True))
        if due_at is not None:
            query = query.where((Feed.next_poll_at.is_(None)) | (Feed.next_poll_at <= due_at))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_feed_state(r) for r in rows]

    def claim_due(self, owner: str, now: datetime, lease: timedelta, limit: int = 500) -> list[FeedState]:
        """Lease up to ``limit`` due feeds to ``owner`` until ``now + lease``, soonest due first.

        Feeds leased to another worker are skipped until the lease expires, so a dead
        worker's feeds are taken over. On PostgreSQL the candidate rows are locked with
        ``FOR UPDATE SKIP LOCKED``: concurrent claimers never wait for, or get, the same feed.
        On SQLite the update re-checks the lease under the database's write lock.
        """
        free = (Feed.claimed_until.is_(None)) | (Feed.claimed_until <= now) | (Feed.claimed_by == owner)
        due = (Feed.next_poll_at.is_(None)) | (Feed.next_poll_at <= now)
        for attempt in self._writes():
            with attempt as conn:
                ids = (
                    conn.execute(
                        select(Feed.id)
                        .where(Feed.active.is_(True), due, free)
                        .order_by(Feed.next_poll_at.is_not(None), Feed.next_poll_at, Feed.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return []
                conn.execute(
                    update(Feed)
                    .where(Feed.id.in_(ids), free, due)  # due again: SQLite read the candidates unlocked
                    .values(claimed_by=owner, claimed_until=now + lease)
                    .execution_options(synchronize_session=False)
                )
                mine = select(Feed).where(Feed.id.in_(ids), Feed.claimed_by == owner)
                rows = conn.execute(mine.order_by(Feed.id)).all()
        return [_feed_state(r) for r in rows]

    def release(self, owner: str, feed_ids: Iterable[int] | None = None) -> int:
        """Give up ``owner``'s leases (all, or on ``feed_ids``) so other workers take them now."""
        query = update(Feed).where(Feed.claimed_by == owner)
        if feed_ids is not None:
            ids = list(feed_ids)
            if not ids:
                return 0
            query = query.where(Feed.id.in_(ids))
        for attempt in self._writes():
            with attempt as conn:
                return conn.execute(query.values(claimed_by=None, claimed_until=None)).rowcount or 0
        raise AssertionError("unreachable: _writes ends only after a committed attempt")

    def record_fetch(self, feed: FeedState, outcome: FeedOutcome) -> None:
        """Record the outcome on the feed row and in the fetch log (one transaction)."""
        self.record_fetches([(feed, outcome)])

    def record_fetches(self, outcomes: Sequence[tuple[FeedState, FeedOutcome]]) -> None:
        """Record fetch outcomes on their feed rows and in the fetch log, in one transaction:
        one prepared statement per kind of outcome, executed for the whole batch.

        A feed whose lease expired and was taken over by another worker is that worker's
        now: its row is left alone (the fetch is still logged)."""
        if not outcomes:
            return
        groups: dict[str, list[dict[str, Any]]] = {}
        logs = []
        for feed, outcome in outcomes:
            kind = "failed" if outcome.status.failed else "ok" if outcome.status is FetchStatus.OK else "unchanged"
            groups.setdefault(kind, []).append(_fetch_params(feed, outcome))
            logs.append(
                {
                    "feed_id": feed.id,
                    "started_at": outcome.started_at,
                    "duration_ms": outcome.duration_ms,
                    "status": outcome.status.value,
                    "http_status": outcome.http_status,
                    "bytes": outcome.size,
                    "entries": outcome.entries,
                    "new_items": outcome.new_items,
                    "error": outcome.error,
                }
            )
        for attempt in self._writes():
            with attempt as conn:
                for kind, params in groups.items():
                    conn.execute(_FEED_UPDATES[kind], params)
                conn.execute(insert(cast(Table, FetchLog.__table__)), logs)

    def schedule_summary(self, now: datetime) -> dict[str, Any]:
        """Active feeds due now, parked, and the leases held by workers (owner → feeds)."""
        active = Feed.active.is_(True)
        with self.engine.connect() as conn:
            due = conn.execute(
                select(func.count(Feed.id)).where(active, (Feed.next_poll_at.is_(None)) | (Feed.next_poll_at <= now))
            ).scalar_one()
            parked = conn.execute(select(func.count(Feed.id)).where(active, Feed.parked.is_(True))).scalar_one()
            next_at = conn.execute(select(func.min(Feed.next_poll_at)).where(active)).scalar()
            leases = {
                owner: (n, until)
                for owner, n, until in conn.execute(
                    select(Feed.claimed_by, func.count(Feed.id), func.max(Feed.claimed_until))
                    .where(Feed.claimed_by.is_not(None), Feed.claimed_until > now)
                    .group_by(Feed.claimed_by)
                )
            }
        return {"due": due, "parked": parked, "next_poll_at": next_at, "leases": leases}

    def feed_health(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    Feed.id,
                    Feed.name,
                    Feed.url,
                    Feed.active,
                    Feed.last_status,
                    Feed.last_error,
                    Feed.consecutive_failures,
                    Feed.parked,
                    Feed.publish_rate,
                    Feed.schedule_reason,
                    Feed.claimed_by,
                    Feed.last_success_at,
                    Feed.last_fetched_at,
                    Feed.next_poll_at,
                    select(func.count(ItemSource.id))
                    .where(ItemSource.feed_id == Feed.id)
                    .scalar_subquery()
                    .label("items"),
                ).order_by(Feed.name)
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- items ---------------------------------------------------------------------------

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
        ``story`` places the new item in a story (``tracker.grouping`` decides which);
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

    def rule_states(self) -> dict[str, str]:
        """Rule id → the rule hash every stored item has been tagged with."""
        with self.engine.connect() as conn:
            return {r: h for r, h in conn.execute(select(RuleState.rule_id, RuleState.rule_hash))}

    def set_rule_state(self, rule_id: str, rule_hash: str) -> None:
        stmt = self._insert(RuleState.__table__).values(rule_id=rule_id, rule_hash=rule_hash, updated_at=utcnow())
        with self._begin() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["rule_id"], set_={"rule_hash": rule_hash, "updated_at": utcnow()}
                )
            )

    def adopt_rules(self, rules: Iterable[tuple[str, str]]) -> None:
        """Record (rule id, hash) as applied for rules with no state yet, while no item is stored:
        an empty store has nothing to re-tag. (A rule added to a populated store stays unrecorded,
        so that ``tracker rematch`` applies it to the stored items.)"""
        states = self.rule_states()
        missing = [(r, h) for r, h in rules if r not in states]
        if missing and self.count_items() == 0:
            for rule_id, rule_hash in missing:
                self.set_rule_state(rule_id, rule_hash)

    def count_items(self, since: datetime | None = None) -> int:
        query = select(func.count(Item.id))
        if since is not None:
            query = query.where(Item.fetched_at >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_items(self, since: datetime | None = None, batch: int = 500) -> Iterator[list[tuple[int, str, str]]]:
        """(id, title, text) of stored items in batches, oldest first."""
        last = 0
        while True:
            query = select(Item.id, Item.title, Item.text).where(Item.id > last).order_by(Item.id).limit(batch)
            if since is not None:
                query = query.where(Item.fetched_at >= since)
            with self.engine.connect() as conn:
                rows = [(r.id, r.title, r.text) for r in conn.execute(query)]
            if not rows:
                return
            yield rows
            last = rows[-1][0]

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

    def item_detail(self, item_id: int) -> dict[str, Any] | None:
        """An item with its sources and matches (for ``tracker explain``)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Item).where(Item.id == item_id)).mappings().first()
            if row is None:
                return None
            item = {k: v for k, v in row.items() if k != "raw_html"}
            item["sources"] = [
                dict(r)
                for r in conn.execute(
                    select(Feed.name, ItemSource.entry_url, ItemSource.seen_at)
                    .join(Feed, Feed.id == ItemSource.feed_id)
                    .where(ItemSource.item_id == item_id)
                    .order_by(ItemSource.id)
                ).mappings()
            ]
            item["matches"] = [
                {**dict(r), "terms": json.loads(r["terms"]), "evidence": json.loads(r["evidence"] or "[]")}
                for r in conn.execute(
                    select(RuleMatch).where(RuleMatch.item_id == item_id).order_by(RuleMatch.score.desc())
                ).mappings()
            ]
        return item

    def raw_html(self, item_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            blob = conn.execute(select(Item.raw_html).where(Item.id == item_id)).scalar()
        return zlib.decompress(blob) if blob else None

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {_ident(table)}")).scalar_one())

    # -- plumbing --------------------------------------------------------------------------

    def _begin(self) -> Any:
        return _wrapped(self.engine.begin())

    def _writes(self) -> Iterator[_Attempt]:
        """Attempts at one write transaction: ``for attempt in self._writes(): with attempt
        as conn: ...``. A transaction that finds the database locked (SQLite: another
        writer; PostgreSQL: a deadlock) is rolled back and run again after a growing,
        jittered pause, for up to ``LOCK_PATIENCE`` seconds, so no write is dropped."""
        delay = 0.05
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            attempt = _Attempt(self.engine, retry=time.monotonic() < deadline)
            yield attempt
            if attempt.done:
                return
            logger.info("database is locked (%s); retrying in %.2fs", attempt.error, delay)
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)


class Batch:
    """Articles written in one transaction (``Store.batch``)."""

    def __init__(self, store: Store, conn: Connection) -> None:
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


def _rollback(conn: Connection) -> None:
    """Undo a batch's open transaction; a connection that is already broken is just closed."""
    try:
        if conn.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("ROLLBACK")
        else:
            conn.rollback()
    except Exception:
        logger.debug("rollback of a failed batch", exc_info=True)


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


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad table name {name!r}")
    return name


def _chunks(seq: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


#: seconds a write keeps retrying while the database is locked
LOCK_PATIENCE = 120.0


def _is_lock_error(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("database is locked", "database is busy", "deadlock detected"))


class _Attempt:
    """One try of a write transaction (see ``Store._writes``)."""

    def __init__(self, engine: Engine, *, retry: bool) -> None:
        self._cm = engine.begin()
        self._retry = retry
        self.done = False
        self.error = ""

    def __enter__(self) -> Connection:
        try:
            return self._cm.__enter__()
        except OperationalError as exc:
            raise StorageError(f"database error: {exc.orig}") from exc

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        try:
            self._cm.__exit__(kind, exc, tb)
        except OperationalError as err:  # the commit itself: the body may have returned already
            raise StorageError(f"database error: {err.orig}") from err
        if exc is None:
            self.done = True
            return False
        if isinstance(exc, OperationalError) and self._retry and _is_lock_error(exc):
            self.error = str(exc.orig)
            return True
        if isinstance(exc, OperationalError):
            raise StorageError(f"database error: {exc.orig}") from exc
        return False


class _wrapped:
    """Context manager turning SQLAlchemy OperationalError into StorageError."""

    def __init__(self, cm: Any) -> None:
        self.cm = cm

    def __enter__(self) -> Connection:
        try:
            return self.cm.__enter__()  # type: ignore[no-any-return]
        except OperationalError as exc:
            raise StorageError(f"database error: {exc.orig}") from exc

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self.cm.__exit__(*exc)
        except OperationalError as err:
            raise StorageError(f"database error: {err.orig}") from err
