"""One poll cycle: due feeds → fetch → parse → new? → fetch article → extract → match → story → store.

This module wires the stages together, and runs the feed stage (the article stage, the write
side and each feed's outcome have their own modules). Feeds and article pages are fetched on a
thread pool, extraction runs in worker processes (``Extractor``), and everything that writes to
the store happens on the calling thread, one transaction per article. A feed's
conditional-GET state (ETag, Last-Modified, body hash) is recorded only after all of its
new articles are stored, so a crash mid-cycle makes the next cycle fetch it again instead
of losing entries. A feed that fails is recorded and the cycle goes on.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from tracker.core.config import PollConfig
from tracker.core.errors import FetchError, ParseError
from tracker.core.types import CycleReport, FeedEntry, FetchResult, FetchStatus
from tracker.core.urls import canonicalize, host_of, outlet_host
from tracker.pipeline.articles import ArticleStage
from tracker.pipeline.grouping import StoryGrouper
from tracker.pipeline.guards import article_guard, feed_guard
from tracker.pipeline.records import FeedRecords
from tracker.pipeline.work import ArticleWork, FeedWork, StageFailed, entry_fault, stage
from tracker.pipeline.workers import Extractor
from tracker.pipeline.writes import ArticleWriter
from tracker.rules.matching import Matcher
from tracker.sources.feeds import parse_feed
from tracker.sources.fetching import FEED_ACCEPT, Fetcher
from tracker.sources.hostqueue import HostQueue
from tracker.store.database import FeedState, Store, utcnow

logger = logging.getLogger(__name__)


class FeedStage:
    """The feed stage of a cycle: a fetched feed is parsed and its new entries are queued
    (``queue(art)``) for the article stage; a feed with nothing new is finished at once.

    ``in_flight`` maps the canonical link of each article not yet done to its work (shared
    with the write side, which drops an article from it once it is done).
    """

    def __init__(
        self,
        store: Store,
        poll: PollConfig,
        records: FeedRecords,
        articles: ArticleStage,
        in_flight: dict[str, ArticleWork],
        queue: Callable[[ArticleWork], None],
    ) -> None:
        self.store = store
        self.poll = poll
        self.records = records
        self.articles = articles
        self.in_flight = in_flight
        self._queue = queue

    def fetched(self, work: FeedWork, fut: Future[FetchResult]) -> None:
        try:
            work.result = fut.result()
        except FetchError as exc:
            work.http_status, work.error_headers = exc.http_status, exc.headers
            self.records.fail(work, exc.status, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the fetch of one feed
            self.records.fault(work, StageFailed("fetch", exc))
            return
        result = work.result
        if result.not_modified:
            work.status = FetchStatus.NOT_MODIFIED
            self.records.finish(work)
            return
        body = result.body or b""
        digest = hashlib.sha256(body).hexdigest()
        if digest == work.feed.body_hash:
            work.status = FetchStatus.NOT_MODIFIED
            self.records.finish(work)
            return
        try:
            with stage("parse"):
                parsed = parse_feed(body, result.final_url, result.headers, max_entries=self.poll.max_entries_per_feed)
        except StageFailed as exc:
            if isinstance(exc.__cause__, ParseError):
                self.records.fail(work, FetchStatus.PARSE_ERROR, str(exc.__cause__))
            else:
                self.records.fault(work, exc)
            return
        work.title, work.bozo, work.ttl = (parsed.title or "")[:1000] or None, parsed.bozo_reason, parsed.ttl
        work.faults.extend(f"entry conversion: {why}" for why in parsed.faults)
        entries = parsed.entries[: self.poll.max_entries_per_feed]
        work.entries = len(entries)
        work.hosts = frozenset(outlet_host(e.link) or "" for e in entries if e.link) - {""}
        with stage("entries"):
            self._queue_new_entries(work, entries)
        self.records.maybe_finish(work)

    def _queue_new_entries(self, work: FeedWork, entries: Sequence[FeedEntry]) -> None:
        links: dict[FeedEntry, str | None] = {}
        for entry in entries:
            try:
                with stage("canonicalization"):
                    links[entry] = canonicalize(entry.link) if entry.link else None
            except StageFailed as exc:
                entry_fault(work, entry, exc)
        with stage("lookup"):
            stored, seen_guids = self.store.lookup(
                work.feed.id, [u for u in links.values() if u], [e.guid for e in links if e.guid]
            )
        for entry, link in links.items():
            if entry.guid and entry.guid in seen_guids:
                continue
            if link is None:
                # No link: the feed's own text is all there is.
                link = f"urn:guid:{entry.guid}"
            if link in stored:
                with stage("store"):
                    if self.store.link_source(stored[link], work.feed.id, link, entry.guid):
                        work.repeats += 1
                continue
            if link in self.in_flight:
                # Another feed's entry is fetching it: this feed is done only once it is linked.
                self.in_flight[link].also.append((work, entry))
                work.repeats += 1
                work.pending += 1
                continue
            work.queued += 1
            self.articles.start_workers()  # they import and warm up while the first pages are fetched
            art = ArticleWork(work=work, entry=entry, link=link)
            self.in_flight[link] = art
            work.pending += 1
            self._queue(art)


#: what a cycle tells its caller as it goes: (feeds done, feeds, articles stored)
Progress = Callable[[int, int, int], None]
PROGRESS_EVERY = 0.2  #: seconds between progress reports


class Cycle:
    """Runs one cycle; construct, then call ``run``.

    Every feed, entry and article page is a fault boundary: whatever one raises (a fetch
    error, a parse error, or a ValueError, MemoryError or bug of ours at any stage) is
    caught there, logged once with the feed's URL and recorded on the feed as failed,
    while the entries that could be stored are stored and every other feed goes on.
    """

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        matcher: Matcher,
        extractor: Extractor,
        poll: PollConfig,
        *,
        grouper: StoryGrouper | None = None,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        stop: threading.Event | None = None,
        stop_timeout: float = 30.0,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.progress = progress  #: told (feeds done, feeds, articles stored) a few times a second
        self.owner = owner  #: the worker whose leases the feeds are polled under
        self.stop = stop or threading.Event()  #: set: start nothing new, finish within ``stop_timeout``
        self.stop_timeout = stop_timeout
        self._stop_deadline: float | None = None
        self._works: list[FeedWork] = []
        self._told = 0.0
        self.grouper = grouper or StoryGrouper(store)
        self.fetcher = fetcher
        self.poll = poll
        self.clock = clock
        self._threads = ThreadPoolExecutor(max(1, fetcher.config.concurrency), thread_name_prefix="fetch")
        self._pending: dict[Future[Any], tuple[str, Any, str | None]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        # Requests wait for their host's budget here, not in a fetch thread (``tracker.sources.hostqueue``).
        self._feed_queue: HostQueue[FeedWork] = HostQueue()
        self._page_queue: HostQueue[ArticleWork] = HostQueue()
        self._local: deque[ArticleWork] = deque()  #: entries without a page to fetch
        self._host_busy: dict[str, int] = {}
        self._requests = 0
        in_flight_links: dict[str, ArticleWork] = {}
        self._max_articles = max(4, 2 * fetcher.config.concurrency)
        self._articles_in_flight = 0
        self.records = FeedRecords(store, poll, clock, owner)
        self.writer = ArticleWriter(store, self.grouper, self.records, clock, in_flight_links)
        self.articles = ArticleStage(extractor, matcher, poll, self.writer, self._track)
        self.feeds = FeedStage(store, poll, self.records, self.articles, in_flight_links, self._queue_article)

    def run(self, feeds: Sequence[FeedState]) -> CycleReport:
        started = self.clock()
        self.grouper.refresh(started)
        works = self._works = []
        try:
            for feed in feeds:
                work = FeedWork(feed=feed, started_at=self.clock(), t0=time.monotonic())
                works.append(work)
                self._feed_queue.push(host_of(feed.url), work)
            self._drain()
            self._tell(final=True)
            self.writer.flush()
            self.records.flush()
        finally:
            # After an abandoned stop, fetch threads still running are not waited for.
            self._threads.shutdown(wait=self._stop_deadline is None, cancel_futures=True)
        abandoned = [w for w in works if not w.finished]
        if abandoned:
            logger.warning("stopping: %d feeds abandoned mid-cycle; they are polled again next time", len(abandoned))
            if self.owner is not None:
                self.store.release(self.owner, [w.feed.id for w in abandoned])
        reports = tuple(FeedRecords.report(w) for w in works if w.finished)
        return CycleReport(
            started_at=started,
            finished_at=self.clock(),
            feeds=reports,
            topics=self.writer.topics,
            roles=self.writer.roles,
        )

    # -- event loop -----------------------------------------------------------------------

    def _track(self, fut: Future[Any], kind: str, payload: Any, host: str | None = None) -> None:
        self._pending[fut] = (kind, payload, host)
        fut.add_done_callback(self._done.put)

    def _completed(self, timeout: float) -> list[Future[Any]]:
        """Futures finished since the last call, waiting up to ``timeout`` for the first
        (a queue fed by done-callbacks: O(1) per completion, whatever is in flight)."""
        try:
            done = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done

    def _waiting(self) -> bool:
        return bool(self._pending or self._feed_queue or self._page_queue or self._local or self.writer)

    def _tell(self, final: bool = False) -> None:
        """Report progress, at most every ``PROGRESS_EVERY`` seconds (and once at the end)."""
        now = time.monotonic()
        if self.progress is None or (not final and now < self._told + PROGRESS_EVERY):
            return
        self._told = now
        self.progress(sum(w.finished for w in self._works), len(self._works), sum(self.writer.roles.values()))

    def _drain(self) -> None:
        self._start_work()
        while self._waiting():
            self._tell()
            if self.stop.is_set() and self._stopping():
                break
            if self.records.overdue():
                self.records.flush()  # well within any lease
            if self.writer and (not self._pending or self.writer.overdue()):
                self.writer.flush()  # nothing else to wait for, or the batch has waited long enough
                self._start_work()
                continue
            for fut in self._completed(timeout=0.25 if self._pending else 0.05):
                entry = self._pending.pop(fut, None)
                if entry is None:
                    continue  # cancelled and forgotten while stopping
                kind, payload, host = entry
                if host is not None:
                    self._requests -= 1
                    self._host_busy[host] -= 1
                self._dispatch(kind, payload, fut)
            self._start_work()

    def _stopping(self) -> bool:
        """On stop: start nothing new, then abandon what is in flight after ``stop_timeout``.
        True when the loop should end now."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.stop_timeout
            # Feeds not started are polled again next time; the articles of feeds already
            # fetched go on within the stop timeout, so those feeds can finish.
            self._feed_queue.clear()
            return not self._waiting()
        if time.monotonic() < self._stop_deadline:
            return False
        logger.warning(
            "stopping: abandoning %d requests and extractions in flight and %d articles not started",
            len(self._pending),
            len(self._page_queue) + len(self._local),
        )
        self._page_queue.clear()
        self._local.clear()
        self.fetcher.stop()  # requests still waiting for their host's budget give up
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        return True

    def _dispatch(self, kind: str, payload: Any, fut: Future[Any]) -> None:
        """The outermost fault boundary: what a handler's own boundaries let through fails
        the feed it belongs to, never the cycle."""
        try:
            if kind == "feed":
                self.feeds.fetched(payload, fut)
            elif kind == "page":
                self.articles.page_fetched(payload, fut)
            else:
                self._articles_in_flight -= 1
                self.articles.extracted(payload, fut)
        except Exception as exc:  # noqa: BLE001 - the boundary of one unit of work
            work = payload if kind == "feed" else payload.work
            self.records.fault(work, exc)

    def _queue_article(self, art: ArticleWork) -> None:
        """A new entry: its page waits for its host's budget; without a link, it waits to be processed."""
        if art.entry.link:
            self._page_queue.push(host_of(art.entry.link), art)
        else:
            self._local.append(art)

    def _start_work(self) -> None:
        """Start what the budgets allow: requests whose host is ready (feeds first), and
        entries without a page, up to the article limit."""
        limit = max(1, self.fetcher.config.concurrency)
        while self._requests < limit:
            feed = None if self.stop.is_set() else self._feed_queue.pop_ready(self._host_ready)
            if feed is not None:
                host, work = feed
                self._request(host, "feed", work, work.feed.url)
                continue
            if self._articles_in_flight >= self._max_articles:
                break
            page = self._page_queue.pop_ready(self._host_ready)
            if page is None:
                break
            host, art = page
            self._articles_in_flight += 1
            self._request(host, "page", art, art.entry.link or art.link)
        while self._local and self._articles_in_flight < self._max_articles:
            self._articles_in_flight += 1
            self.articles.submit(self._local.popleft())

    def _host_ready(self, host: str, item: FeedWork | ArticleWork) -> bool:
        if self._host_busy.get(host, 0) >= max(1, self.fetcher.config.per_host_concurrency):
            return False
        url = item.feed.url if isinstance(item, FeedWork) else (item.entry.link or item.link)
        return self.fetcher.host_delay(url) <= 0

    def _request(self, host: str, kind: str, payload: FeedWork | ArticleWork, url: str) -> None:
        self._requests += 1
        self._host_busy[host] = self._host_busy.get(host, 0) + 1
        if isinstance(payload, FeedWork):
            feed = payload.feed
            guard = feed_guard(feed.url, self.fetcher.config)
            fut = self._threads.submit(
                self.fetcher.get, url, etag=feed.etag, last_modified=feed.last_modified, accept=FEED_ACCEPT, guard=guard
            )
        else:
            fut = self._threads.submit(
                self.fetcher.get, url, guard=article_guard(payload.work.feed.url, self.fetcher.config)
            )
        self._track(fut, kind, payload, host)


def run_cycle(
    store: Store,
    fetcher: Fetcher,
    matcher: Matcher,
    extractor: Extractor,
    poll: PollConfig,
    *,
    feeds: Sequence[FeedState] | None = None,
    grouper: StoryGrouper | None = None,
    clock: Callable[[], datetime] = utcnow,
    owner: str | None = None,
    stop: threading.Event | None = None,
    stop_timeout: float = 30.0,
    progress: Progress | None = None,
) -> CycleReport:
    """Poll ``feeds`` (default: every active feed that is due) once; ``progress`` is told
    (feeds done, feeds, articles stored) as the cycle goes."""
    if feeds is None:
        feeds = store.feeds(due_at=clock())
    cycle = Cycle(
        store,
        fetcher,
        matcher,
        extractor,
        poll,
        grouper=grouper,
        clock=clock,
        owner=owner,
        stop=stop,
        stop_timeout=stop_timeout,
        progress=progress,
    )
    return cycle.run(feeds)


def poll_due(
    store: Store,
    fetcher: Fetcher,
    matcher: Matcher,
    extractor: Extractor,
    poll: PollConfig,
    *,
    owner: str,
    lease: timedelta,
    batch: int,
    grouper: StoryGrouper | None = None,
    stop: threading.Event | None = None,
    stop_timeout: float = 30.0,
    on_cycle: Callable[[CycleReport, int], None] | None = None,
) -> list[CycleReport]:
    """Lease due feeds ``batch`` at a time and poll them, until none is due (or ``stop``).

    The batch bounds what one worker holds, so workers sharing a database share the rest;
    a feed leased to another worker is not polled until its lease expires.
    """
    stop = stop or threading.Event()
    reports = []
    while not stop.is_set():
        due = store.claim_due(owner, utcnow(), lease, batch)
        if not due:
            break
        report = run_cycle(
            store,
            fetcher,
            matcher,
            extractor,
            poll,
            feeds=due,
            grouper=grouper,
            owner=owner,
            stop=stop,
            stop_timeout=stop_timeout,
        )
        reports.append(report)
        if on_cycle is not None:
            on_cycle(report, len(due))
        if len(due) < batch:
            break
    return reports
