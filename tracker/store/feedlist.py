"""Feeds added from the command line (`tracker feeds add`, `import`) and the list as a whole:
adding, removing, pausing and resuming feeds, and listing them with where each came from.

The config stays authoritative for its own URLs: a feed the config lists cannot be removed
here (it would come back at the next poll), and adding a URL the config already lists
changes nothing. Removing an added feed keeps its row and history (``active`` false), so
adding it again later resumes it where it was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from tracker.core.errors import ConfigError
from tracker.core.types import FeedSource
from tracker.store.base import StoreBase, utcnow
from tracker.store.models import Feed

#: where a feed came from: the config file, `tracker feeds add`, `tracker feeds import`, `tracker demo`
ORIGINS = ("config", "cli", "opml", "demo")


@dataclass(frozen=True, slots=True)
class StoredFeed:
    url: str
    name: str
    origin: str
    active: bool
    paused: bool
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Added:
    added: tuple[str, ...]  #: URLs added (or re-activated)
    present: tuple[str, ...]  #: URLs already polled: left as they are


def encode_categories(categories: Sequence[str]) -> str | None:
    return json.dumps(sorted(set(categories)), ensure_ascii=False) if categories else None


def decode_categories(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    try:
        parsed = json.loads(value)
    except ValueError:
        return ()
    return tuple(str(c) for c in parsed) if isinstance(parsed, list) else ()


class FeedListStore(StoreBase):
    """The feed list as the user manages it from the command line."""

    def add_feeds(self, feeds: Sequence[FeedSource], origin: str) -> Added:
        """Add feeds (from ``feeds add`` or an OPML import); feeds already active stay as they are."""
        assert origin in ORIGINS[1:]
        now = utcnow()
        added: list[str] = []
        present: list[str] = []
        for attempt in self._writes():
            added.clear()
            present.clear()
            with attempt as conn:
                rows = {r.url: r for r in conn.execute(select(Feed.id, Feed.url, Feed.active, Feed.origin))}
                for feed in feeds:
                    row = rows.get(feed.url)
                    values = {"name": feed.name, "categories": encode_categories(feed.categories)}
                    if row is None:
                        conn.execute(
                            self._insert(Feed.__table__)
                            .values(url=feed.url, origin=origin, active=True, consecutive_failures=0, created_at=now)
                            .values(**values)
                            .on_conflict_do_nothing()
                        )
                        added.append(feed.url)
                    elif row.active:
                        present.append(feed.url)
                    elif row.origin == "config":
                        # removed from the config earlier: it is the user's now
                        conn.execute(update(Feed).where(Feed.id == row.id).values(active=True, origin=origin, **values))
                        added.append(feed.url)
                    else:
                        conn.execute(update(Feed).where(Feed.id == row.id).values(active=True, **values))
                        added.append(feed.url)
        return Added(tuple(added), tuple(present))

    def remove_feed(self, url: str, config_file: str | None = None) -> None:
        """Stop polling a feed added from the command line or by the demo (its items and
        history stay); ``url`` may be the feed's name."""
        row = self._feed_row(url)
        if row.origin == "config":
            where = config_file or "the configuration"
            raise ConfigError(f"{row.url} is listed in {where}; remove it there (the config is authoritative for it)")
        self._set(row.id, active=False)

    def set_paused(self, url: str, paused: bool) -> bool:
        """Pause or resume a feed; False when it already was in that state."""
        row = self._feed_row(url)
        if bool(row.paused) == paused:
            return False
        self._set(row.id, paused=paused)
        return True

    def feed_list(self, *, active_only: bool = True) -> list[StoredFeed]:
        query = select(Feed.url, Feed.name, Feed.origin, Feed.active, Feed.paused, Feed.categories).order_by(Feed.name)
        if active_only:
            query = query.where(Feed.active.is_(True))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            StoredFeed(r.url, r.name, r.origin, bool(r.active), bool(r.paused), decode_categories(r.categories))
            for r in rows
        ]

    def has_added_feeds(self) -> bool:
        """Whether any active feed was added from the command line."""
        with self.engine.connect() as conn:
            query = select(Feed.id).where(Feed.active.is_(True), Feed.origin.in_(("cli", "opml"))).limit(1)
            return conn.execute(query).first() is not None

    def mark_demo(self, urls: Sequence[str]) -> None:
        """The demo's feeds, after its run: the demo's own (not the config's) and paused, so a
        later `tracker poll` here neither polls the demo site, gone by then, nor drops them."""
        for attempt in self._writes():
            with attempt as conn:
                conn.execute(update(Feed).where(Feed.url.in_(list(urls))).values(origin="demo", paused=True))

    def _feed_row(self, url_or_name: str) -> Feed:
        """The active feed with this URL, else the one with this name (when only one has it)."""
        columns = select(Feed.id, Feed.url, Feed.origin, Feed.paused).where(Feed.active)
        with self.engine.connect() as conn:
            rows = conn.execute(columns.where(Feed.url == url_or_name)).all()
            if not rows:
                rows = conn.execute(columns.where(Feed.name == url_or_name)).all()
        if not rows:
            raise ConfigError(f"no feed {url_or_name!r} in {self.url} (`tracker feeds` lists them, with their URLs)")
        if len(rows) > 1:
            raise ConfigError(f"{len(rows)} feeds are called {url_or_name!r}; name one by its URL")
        return rows[0]  # type: ignore[return-value]

    def _set(self, feed_id: int, **values: object) -> None:
        for attempt in self._writes():
            with attempt as conn:
                conn.execute(update(Feed).where(Feed.id == feed_id).values(**values))
