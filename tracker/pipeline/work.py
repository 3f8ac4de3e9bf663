"""The units of work of one cycle (a feed, an article) and the fault boundary around each:
which stage a fault escaped from, how it is described and logged, and the batches that
work waits in before it is written."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from tracker.core.text import plain
from tracker.core.types import FeedEntry, FetchResult, FetchStatus
from tracker.core.urls import redact, redact_text
from tracker.store.database import FeedState

T = TypeVar("T")

logger = logging.getLogger("tracker.pipeline.cycle")  # one logger for the whole cycle


@dataclass
class FeedWork:
    """Mutable progress of one feed within a cycle."""

    feed: FeedState
    started_at: datetime
    t0: float
    result: FetchResult | None = None
    status: FetchStatus = FetchStatus.OK
    error: str | None = None
    title: str | None = None
    bozo: str | None = None
    entries: int = 0
    new: int = 0
    repeats: int = 0  #: entries whose article was already stored, or came through another feed
    queued: int = 0  #: entries found new
    ttl: int | None = None  #: the feed's RSS <ttl>, minutes
    http_status: int | None = None
    error_headers: dict[str, str] = field(default_factory=dict)
    extracted: int = 0
    fallbacks: int = 0
    article_failures: int = 0
    faults: list[str] = field(default_factory=list)  #: entries that raised at some stage, and why
    hosts: frozenset[str] = frozenset()  #: hosts its entries link to (a page's canonical link may name one)
    pending: int = 0
    finished: bool = False
    seconds: float = 0.0


@dataclass
class ArticleWork:
    work: FeedWork
    entry: FeedEntry
    link: str  #: canonical entry link
    page: FetchResult | None = None
    also: list[tuple[FeedWork, FeedEntry]] = field(default_factory=list)  #: same link, other feeds


class StageFailed(Exception):
    """An exception raised inside a named stage of one unit of work (a feed or an entry)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {type(cause).__name__}: {cause}")
        self.stage = stage


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the stage of whatever escapes the block, for the one log line and the record."""
    try:
        yield
    except StageFailed:
        raise
    except Exception as exc:
        raise StageFailed(name, exc) from exc


def describe(exc: BaseException) -> str:
    """One clean line for the feed's record and the log: ``stage: Type: message``."""
    what = str(exc) if isinstance(exc, StageFailed) else f"{type(exc).__name__}: {exc}"
    return redact_text(plain(" ".join(what.split())))[:300]


def entry_fault(work: FeedWork, entry: FeedEntry, exc: BaseException, *, skipped: bool = False) -> None:
    """An entry-level fault: the entry keeps the feed's text or is skipped; the feed will be
    recorded as failed (so its state is not saved and it is retried, with backoff)."""
    why = describe(exc)
    work.faults.append(why)
    if skipped:
        work.article_failures += 1
    logger.warning(
        "feed %s: entry %s %s: %s",
        redact(work.feed.url),
        redact(entry.link or entry.guid or "?"),
        "skipped" if skipped else "kept the feed's text",
        why,
    )
    logger.debug("fault in an entry of %s", redact(work.feed.url), exc_info=exc)


class Batching(Generic[T]):
    """Work that waits to be written in one transaction: due when ``size`` items wait, or when
    the oldest has waited ``delay`` seconds."""

    def __init__(self, size: int, delay: float) -> None:
        self.size, self.delay = size, delay
        self._items: list[T] = []
        self._since = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> bool:
        """Keep ``item``; True when the batch is full."""
        if not self._items:
            self._since = time.monotonic()
        self._items.append(item)
        return len(self._items) >= self.size

    def overdue(self) -> bool:
        return bool(self._items) and time.monotonic() - self._since > self.delay

    def take(self) -> list[T]:
        items, self._items = self._items, []
        return items
