"""The store's feeds: following the config, leases for workers, fetch outcomes on the feed
rows and in the fetch log, and the schedule and health summaries (``FeedStore``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Boolean, Float, Table, bindparam, func, insert, or_, select, update

from tracker.core.types import FeedSource, FetchStatus
from tracker.store.base import StoreBase, utcnow
from tracker.store.feedlist import encode_categories
from tracker.store.models import Feed, FetchLog, ItemSource, UTCDateTime

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


class FeedStore(StoreBase):
    """Feeds, their leases and their fetch log."""

    def sync_feeds(self, sources: Sequence[FeedSource]) -> list[FeedState]:
        """Make the feed table follow the config: add new feeds, rename, (de)activate.

        The config is authoritative for the feeds it lists (a URL added from the command line
        that the config now lists becomes the config's); feeds added from the command line
        that the config does not list are left alone."""
        now = utcnow()
        wanted = {s.url: s for s in sources}
        columns = select(Feed.id, Feed.url, Feed.name, Feed.active, Feed.origin, Feed.categories)
        for attempt in self._writes():
            with attempt as conn:
                existing = {row.url: row for row in conn.execute(columns)}
                for url, src in wanted.items():
                    row = existing.get(url)
                    categories = encode_categories(src.categories)
                    if row is None:
                        conn.execute(
                            self._insert(Feed.__table__)
                            .values(url=url, name=src.name, active=True, consecutive_failures=0, created_at=now)
                            .values(origin="config", categories=categories)
                            .on_conflict_do_nothing()
                        )
                    elif (row.name, row.active, row.origin, row.categories) != (src.name, True, "config", categories):
                        values = {"name": src.name, "active": True, "origin": "config", "categories": categories}
                        conn.execute(update(Feed).where(Feed.id == row.id).values(**values))
                gone = [
                    row.id
                    for url, row in existing.items()
                    if url not in wanted and row.active and row.origin == "config"
                ]
                if gone:
                    conn.execute(update(Feed).where(Feed.id.in_(gone)).values(active=False))
        return self.feeds(active_only=True)

    def feeds(self, *, active_only: bool = False, due_at: datetime | None = None) -> list[FeedState]:
        query = select(Feed).order_by(Feed.id)
        if active_only or due_at is not None:  # the feeds to poll: active and not paused
            query = query.where(Feed.active.is_(True), Feed.paused.is_(False))
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
                        .where(Feed.active.is_(True), Feed.paused.is_(False), due, free)
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
        active = Feed.active.is_(True) & Feed.paused.is_(False)  # the feeds that are polled
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
                    Feed.origin,
                    Feed.paused,
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
