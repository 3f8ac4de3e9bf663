"""The store: with ``storydb`` (its story queries), the only module that runs SQL.

``make_engine`` builds the engine (SQLite pragmas in a connect listener: WAL, foreign
keys, busy timeout); ``Store`` is a small data-access object over it. Each article is
written in one transaction together with its source link and its matches, so a crash
leaves no half-written item, and re-running a cycle never duplicates one.

``Store`` is the one object the pipeline, the commands and the tests receive; its parts
live in focused modules: ``engine`` (engine set-up), ``base`` (the clock, prepared
statements, write transactions that retry on locks), ``feeds`` (feeds, leases, fetch log),
``feedlist`` (feeds added, removed, paused from the command line),
``items`` (item writes, batches, re-tagging) and ``queries`` (reads, rule states).
"""

from __future__ import annotations

from tracker.store.base import utcnow
from tracker.store.engine import describe_database_error, make_engine
from tracker.store.feedlist import FeedListStore
from tracker.store.feeds import FeedOutcome, FeedState, FeedStore
from tracker.store.items import Batch, ItemStore
from tracker.store.queries import QueryStore

__all__ = [
    "Batch",
    "FeedOutcome",
    "FeedState",
    "Store",
    "describe_database_error",
    "make_engine",
    "utcnow",
]


class Store(FeedStore, FeedListStore, ItemStore, QueryStore):
    """The data-access object over an engine: feeds, the feed list, items and reads, in one object."""
