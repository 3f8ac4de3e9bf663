"""One poll cycle: due feeds → fetch → parse → new? → fetch article → extract → match → story → store.

This module only wires the stages together. Feeds and article pages are fetched on a
thread pool, extraction runs in worker processes (``Extractor``), and everything that
writes to the store happens on the calling thread, one transaction per article. A feed's
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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from .config import FetchConfig, PollConfig
from .errors import FetchError, ParseError
from .extract import ExtractJob
from .feeds import parse_feed
from .fetching import FEED_ACCEPT, Fetcher, Guard
from .grouping import StoryGrouper
from .hostqueue import HostQueue
from .matching import Matcher
from .schedule import Plan, cache_hint, failure_weight, plan, retry_after, update_rate
from .store import Batch, FeedOutcome, FeedState, Store, utcnow
from .stories import Signature
from .storydb import StoryPlacement, story_time
from .text import MAX_TEXT_CHARS, plain, truncate_text
from .types import Article, CycleReport, FeedEntry, FeedReport, FetchResult, FetchStatus, Match, TextSource
from .urls import canonicalize, host_of, outlet_host, redact, redact_text, same_site
from .workers import Extractor, Processed, process

T = TypeVar("T")

logger = logging.getLogger(__name__)

RECORD_BATCH = 200  #: feed outcomes without new items written per transaction
RECORD_DELAY = 5.0  #: seconds such an outcome may wait for its batch
WRITE_BATCH = 64  #: articles stored per transaction
WRITE_DELAY = 0.5  #: seconds an extracted article may wait for its batch


@dataclass
class _FeedWork:
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
class _ArticleWork:
    work: _FeedWork
    entry: FeedEntry
    link: str  #: canonical entry link
    page: FetchResult | None = None
    also: list[tuple[_FeedWork, FeedEntry]] = field(default_factory=list)  #: same link, other feeds


@dataclass(slots=True)
class _Written:
    """An article stored by ``Cycle._write``, counted once its transaction is committed."""

    art: _ArticleWork
    article: Article
    matches: list[Match]
    created: bool
    role: str | None  #: its story role, when new


class _StageFailed(Exception):
    """An exception raised inside a named stage of one unit of work (a feed or an entry)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {type(cause).__name__}: {cause}")
        self.stage = stage


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """Name the stage of whatever escapes the block, for the one log line and the record."""
    try:
        yield
    except _StageFailed:
        raise
    except Exception as exc:
        raise _StageFailed(name, exc) from exc


def _describe(exc: BaseException) -> str:
    """One clean line for the feed's record and the log: ``stage: Type: message``."""
    what = str(exc) if isinstance(exc, _StageFailed) else f"{type(exc).__name__}: {exc}"
    return redact_text(plain(" ".join(what.split())))[:300]


def article_guard(feed_url: str, fetch: FetchConfig) -> Guard:
    """Which article URLs are trusted: the feed's own host, hosts in ``[fetch] allowed_hosts``,
    or every URL when ``allow_private_addresses`` is set. Others may only reach public
    addresses, checked by the fetcher on the address it connects to (``tracker.netguard``)."""

    def guard(url: str) -> bool:
        return fetch.allow_private_addresses or same_site(url, feed_url) or host_of(url) in fetch.allowed_hosts

    return guard


def feed_guard(feed_url: str, fetch: FetchConfig) -> Guard:
    """The configured feed URL is trusted (an operator may poll an intranet feed); every
    redirect hop that leaves its host may only reach public addresses, unless that host is
    in ``[fetch] allowed_hosts`` or ``allow_private_addresses`` is set."""
    host = host_of(feed_url)

    def guard(url: str) -> bool:
        return fetch.allow_private_addresses or host_of(url) == host or host_of(url) in fetch.allowed_hosts

    return guard


class _Batching(Generic[T]):
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
    ) -> None:
        self.store = store
        self.owner = owner  #: the worker whose leases the feeds are polled under
        self.stop = stop or threading.Event()  #: set: start nothing new, finish within ``stop_timeout``
        self.stop_timeout = stop_timeout
        self._stop_deadline: float | None = None
        self.grouper = grouper or StoryGrouper(store)
        self.fetcher = fetcher
        self.matcher = matcher
        self.extractor = extractor
        self.poll = poll
        self.clock = clock
        self.topics: dict[str, list[str]] = {}
        self.roles: dict[str, int] = {}
        self._threads = ThreadPoolExecutor(max(1, fetcher.config.concurrency), thread_name_prefix="fetch")
        self._pending: dict[Future[Any], tuple[str, Any, str | None]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        #: outcomes without new items, recorded in batches
        self._unrecorded: _Batching[tuple[FeedState, FeedOutcome]] = _Batching(RECORD_BATCH, RECORD_DELAY)
        # Requests wait for their host's budget here, not in a fetch thread (``tracker.hostqueue``).
        self._feed_queue: HostQueue[_FeedWork] = HostQueue()
        self._page_queue: HostQueue[_ArticleWork] = HostQueue()
        self._local: deque[_ArticleWork] = deque()  #: entries without a page to fetch
        self._host_busy: dict[str, int] = {}
        self._requests = 0
        self._in_flight_links: dict[str, _ArticleWork] = {}
        self._max_articles = max(4, 2 * fetcher.config.concurrency)
        self._articles_in_flight = 0
        self._workers_started = False
        #: extracted, waiting for their batch
        self._unwritten: _Batching[tuple[_ArticleWork, Processed]] = _Batching(WRITE_BATCH, WRITE_DELAY)

    def run(self, feeds: Sequence[FeedState]) -> CycleReport:
        started = self.clock()
        self.grouper.refresh(started)
        works = []
        try:
            for feed in feeds:
                work = _FeedWork(feed=feed, started_at=self.clock(), t0=time.monotonic())
                works.append(work)
                self._feed_queue.push(host_of(feed.url), work)
            self._drain()
            self._flush_writes()
            self._flush_records()
        finally:
            # After an abandoned stop, fetch threads still running are not waited for.
            self._threads.shutdown(wait=self._stop_deadline is None, cancel_futures=True)
        abandoned = [w for w in works if not w.finished]
        if abandoned:
            logger.warning("stopping: %d feeds abandoned mid-cycle; they are polled again next time", len(abandoned))
            if self.owner is not None:
                self.store.release(self.owner, [w.feed.id for w in abandoned])
        reports = tuple(self._report(w) for w in works if w.finished)
        return CycleReport(
            started_at=started, finished_at=self.clock(), feeds=reports, topics=self.topics, roles=self.roles
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
        return bool(self._pending or self._feed_queue or self._page_queue or self._local or self._unwritten)

    def _drain(self) -> None:
        self._start_work()
        while self._waiting():
            if self.stop.is_set() and self._stopping():
                break
            if self._unrecorded.overdue():
                self._flush_records()  # well within any lease
            if self._unwritten and (not self._pending or self._unwritten.overdue()):
                self._flush_writes()  # nothing else to wait for, or the batch has waited long enough
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
                self._feed_fetched(payload, fut)
            elif kind == "page":
                self._page_fetched(payload, fut)
            else:
                self._extracted(payload, fut)
        except Exception as exc:  # noqa: BLE001 - the boundary of one unit of work
            work = payload if kind == "feed" else payload.work
            self._fault(work, exc)

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
            self._submit_extract(self._local.popleft())

    def _host_ready(self, host: str, item: _FeedWork | _ArticleWork) -> bool:
        if self._host_busy.get(host, 0) >= max(1, self.fetcher.config.per_host_concurrency):
            return False
        url = item.feed.url if isinstance(item, _FeedWork) else (item.entry.link or item.link)
        return self.fetcher.host_delay(url) <= 0

    def _request(self, host: str, kind: str, payload: _FeedWork | _ArticleWork, url: str) -> None:
        self._requests += 1
        self._host_busy[host] = self._host_busy.get(host, 0) + 1
        if isinstance(payload, _FeedWork):
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

    # -- one feed -----------------------------------------------------------------------------

    def _feed_fetched(self, work: _FeedWork, fut: Future[FetchResult]) -> None:
        try:
            work.result = fut.result()
        except FetchError as exc:
            work.http_status, work.error_headers = exc.http_status, exc.headers
            self._fail(work, exc.status, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the fetch of one feed
            self._fault(work, _StageFailed("fetch", exc))
            return
        result = work.result
        if result.not_modified:
            work.status = FetchStatus.NOT_MODIFIED
            self._finish_feed(work)
            return
        body = result.body or b""
        digest = hashlib.sha256(body).hexdigest()
        if digest == work.feed.body_hash:
            work.status = FetchStatus.NOT_MODIFIED
            self._finish_feed(work)
            return
        try:
            with _stage("parse"):
                parsed = parse_feed(body, result.final_url, result.headers, max_entries=self.poll.max_entries_per_feed)
        except _StageFailed as exc:
            if isinstance(exc.__cause__, ParseError):
                self._fail(work, FetchStatus.PARSE_ERROR, str(exc.__cause__))
            else:
                self._fault(work, exc)
            return
        work.title, work.bozo, work.ttl = (parsed.title or "")[:1000] or None, parsed.bozo_reason, parsed.ttl
        work.faults.extend(f"entry conversion: {why}" for why in parsed.faults)
        entries = parsed.entries[: self.poll.max_entries_per_feed]
        work.entries = len(entries)
        work.hosts = frozenset(outlet_host(e.link) or "" for e in entries if e.link) - {""}
        with _stage("entries"):
            self._queue_new_entries(work, entries)
        self._maybe_finish(work)

    def _queue_new_entries(self, work: _FeedWork, entries: Sequence[FeedEntry]) -> None:
        links: dict[FeedEntry, str | None] = {}
        for entry in entries:
            try:
                with _stage("canonicalization"):
                    links[entry] = canonicalize(entry.link) if entry.link else None
            except _StageFailed as exc:
                self._entry_fault(work, entry, exc)
        with _stage("lookup"):
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
                with _stage("store"):
                    if self.store.link_source(stored[link], work.feed.id, link, entry.guid):
                        work.repeats += 1
                continue
            if link in self._in_flight_links:
                # Another feed's entry is fetching it: this feed is done only once it is linked.
                self._in_flight_links[link].also.append((work, entry))
                work.repeats += 1
                work.pending += 1
                continue
            work.queued += 1
            if not self._workers_started:
                self._workers_started = True
                self._start_workers()  # they import and warm up while the first pages are fetched
            art = _ArticleWork(work=work, entry=entry, link=link)
            self._in_flight_links[link] = art
            work.pending += 1
            if entry.link:
                self._page_queue.push(host_of(entry.link), art)
            else:
                self._local.append(art)

    # -- one article --------------------------------------------------------------------------

    def _page_fetched(self, art: _ArticleWork, fut: Future[FetchResult]) -> None:
        try:
            art.page = fut.result()
        except FetchError as exc:
            art.work.article_failures += 1
            logger.info("article fetch failed url=%s status=%s error=%s", art.entry.link, exc.status, exc)
        except Exception as exc:  # noqa: BLE001 - the fetch of one page: the feed text remains
            self._entry_fault(art.work, art.entry, _StageFailed("article fetch", exc))
        self._submit_extract(art)

    def _start_workers(self) -> None:
        start = getattr(self.extractor, "start", None)  # test doubles may have none
        if start is None:
            return
        try:
            start()
        except Exception as exc:  # noqa: BLE001 - submitting will try again and fall back to the feed text
            logger.warning("extraction workers did not start: %s", _describe(exc))

    def _submit_extract(self, art: _ArticleWork) -> None:
        job = self._job(art)
        try:
            try:
                fut = self.extractor.submit(job)
            except BrokenProcessPool:
                self.extractor.reset()
                fut = self.extractor.submit(job)
        except Exception as exc:  # noqa: BLE001 - no worker for this page: the feed text, inline
            self._entry_fault(art.work, art.entry, _StageFailed("extraction", exc))
            fut = Future()
            fut.set_exception(_StageFailed("extraction", exc))
        self._track(fut, "extract", art)

    def _job(self, art: _ArticleWork, *, with_html: bool = True) -> ExtractJob:
        page = art.page
        return ExtractJob(
            url=art.entry.link or art.link,
            html=page.body if (page and with_html) else None,
            final_url=page.final_url if page else None,
            content_type=page.headers.get("content-type") if page else None,
            entry=art.entry,
            min_text_chars=self.poll.min_text_chars,
            feed_hosts=art.work.hosts,
        )

    def _extracted(self, art: _ArticleWork, fut: Future[Processed]) -> None:
        self._articles_in_flight -= 1
        try:
            processed = self._processed(art, fut)
        except Exception as exc:  # noqa: BLE001 - one article: skipped, counted, its feed failed
            self._entry_fault(art.work, art.entry, exc)
            processed = None
        if processed is None:
            self._article_done(art)
            return
        # Stored with the next batch; its feed is finished (and its state recorded) only after.
        if self._unwritten.add((art, processed)):
            self._flush_writes()

    def _flush_writes(self) -> None:
        """Store the extracted articles waiting for their batch, in one transaction; when that
        fails, one by one (each its own transaction), so one bad article costs only itself."""
        batch = self._unwritten.take()
        if not batch:
            return
        try:
            try:
                with self.store.batch() as writer:
                    written = [self._write(art, *processed, writer=writer) for art, processed in batch]
            except Exception as exc:  # noqa: BLE001 - the batch is rolled back: nothing of it was stored
                logger.warning("storing a batch of %d articles failed (%s); storing them one by one", len(batch), exc)
                self.grouper.reset()  # it may have indexed items that were rolled back
                written = []
                for art, processed in batch:
                    try:
                        written.append(self._write(art, *processed, writer=None))
                    except Exception as one:  # noqa: BLE001 - one article: skipped, counted, its feed failed
                        self._entry_fault(art.work, art.entry, one)
            for done in written:
                self._count(done)
        finally:
            for art, _ in batch:
                self._article_done(art)

    def _processed(self, art: _ArticleWork, fut: Future[Processed]) -> Processed | None:
        """The worker's result; else the feed's text, processed here; None when even that raises."""
        try:
            return fut.result()
        except BrokenProcessPool:
            logger.warning("extraction worker died url=%s; using the feed text", art.entry.link)
            self.extractor.reset()
        except _StageFailed:
            pass  # already recorded
        except Exception as exc:  # noqa: BLE001 - extraction, matching or the signature of one page
            self._entry_fault(art.work, art.entry, _StageFailed("extraction", exc))
        try:
            with _stage("processing the feed text"):
                return process(self._job(art, with_html=False), self.matcher)
        except _StageFailed as exc:
            self._entry_fault(art.work, art.entry, exc, skipped=True)
            return None

    def _write(
        self, art: _ArticleWork, article: Article, matches: list[Match], sig: Signature, *, writer: Batch | None
    ) -> _Written:
        """Store one article (in ``writer``'s transaction, or its own) and place it in a story."""
        work = art.work
        if len(article.text) > MAX_TEXT_CHARS:
            article = replace(article, text=truncate_text(article.text))
        raw = art.page.body if art.page and article.text_source is TextSource.EXTRACTED else None
        when = story_time(article.published, self.clock())
        placements: list[StoryPlacement] = []

        def place() -> StoryPlacement:
            with _stage("story placement"):
                placements.append(self.grouper.place(sig, when))
            return placements[-1]

        feed_id, guid = work.feed.id, art.entry.guid or art.link
        with _stage("store"):
            if writer is not None:
                item_id, created, story = writer.add_item(
                    article, matches, feed_id=feed_id, entry_url=art.link, guid=guid, raw_html=raw, story=place
                )
            else:
                item_id, created = self.store.add_item(
                    article, matches, feed_id=feed_id, entry_url=art.link, guid=guid, raw_html=raw, story=place()
                )
                story = None
        if created and placements:
            with _stage("story placement"):
                self.grouper.placed(item_id, placements[-1], story)
        for other, entry in art.also:
            with _stage("store"):
                if writer is not None:
                    writer.link_source(item_id, other.feed.id, art.link, entry.guid or art.link)
                else:
                    self.store.link_source(item_id, other.feed.id, art.link, entry.guid or art.link)
        role = placements[-1].assignment.role if created and placements else None
        return _Written(art, article, matches, created, role)

    def _count(self, done: _Written) -> None:
        """After the commit: the article's feed and the cycle's report count it."""
        work = done.art.work
        if done.article.text_source is TextSource.EXTRACTED:
            work.extracted += 1
        else:
            work.fallbacks += 1
        if done.created:
            if done.role is not None:
                self.roles[done.role] = self.roles.get(done.role, 0) + 1
            work.new += 1
            for m in done.matches:
                self.topics.setdefault(m.rule, []).append(done.article.title)

    def _article_done(self, art: _ArticleWork) -> None:
        self._in_flight_links.pop(art.link, None)
        works = [art.work] + [w for w, _ in art.also]
        for work in works:
            work.pending -= 1
        for work in {id(w): w for w in works}.values():
            try:
                self._maybe_finish(work)
            except Exception as exc:  # noqa: BLE001 - recording one feed
                self._fault(work, exc)

    # -- faults -------------------------------------------------------------------------------

    def _fault(self, work: _FeedWork, exc: BaseException) -> None:
        """A feed-level fault: the feed is recorded as failed; the cycle goes on."""
        logger.debug("fault in feed %s", redact(work.feed.url), exc_info=exc)
        if work.finished:
            logger.warning("feed %s: %s (after it was recorded)", redact(work.feed.url), _describe(exc))
            return
        self._fail(work, FetchStatus.ERROR, _describe(exc))

    def _entry_fault(self, work: _FeedWork, entry: FeedEntry, exc: BaseException, *, skipped: bool = False) -> None:
        """An entry-level fault: the entry keeps the feed's text or is skipped; the feed will be
        recorded as failed (so its state is not saved and it is retried, with backoff)."""
        why = _describe(exc)
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

    # -- feed bookkeeping -------------------------------------------------------------------

    def _schedule(self, work: _FeedWork, now: datetime) -> tuple[Plan, float]:
        """When to poll the feed next, and its failure score after this fetch."""
        feed, result = work.feed, work.result
        if work.status.failed:
            score = feed.failure_score + failure_weight(work.status, work.http_status)
            retry = retry_after(work.error_headers, now) if work.http_status in (429, 503) else None
            schedule = plan(
                now,
                self.poll.cadence(),
                failed=True,
                failure_score=score,
                failing_since=feed.failing_since or work.started_at,
                retry=retry,
            )
        else:
            score = 0.0
            headers = result.headers if result else {}
            rate = update_rate(feed.publish_rate, work.queued, work.repeats, feed.last_success_at, now)
            schedule = plan(
                now,
                self.poll.cadence(),
                failed=False,
                rate=rate,
                cache=cache_hint(headers, now, work.ttl),
                retry=retry_after(headers, now),
            )
        return schedule, score

    def _later(self, feed: FeedState, outcome: FeedOutcome) -> None:
        """Nothing new came with it (a 304, a failure): a crash before the batch is written
        only means polling it again. One commit per batch, not per feed."""
        if self._unrecorded.add((feed, outcome)):
            self._flush_records()

    def _flush_records(self) -> None:
        batch = self._unrecorded.take()
        try:
            self.store.record_fetches(batch)
            return
        except Exception as exc:  # noqa: BLE001 - find the outcome the store refuses; record the rest
            logger.warning("recording %d feed outcomes failed (%s); recording them one by one", len(batch), exc)
        for feed, outcome in batch:
            try:
                self.store.record_fetches([(feed, outcome)])
            except Exception as exc:  # noqa: BLE001 - the feed stays due and is polled again
                logger.error("feed %s: could not record its outcome: %s", redact(feed.url), _describe(exc))

    def _fail(self, work: _FeedWork, status: FetchStatus, error: str) -> None:
        work.status, work.error = status, error
        logger.warning(
            "feed failed name=%r url=%s status=%s error=%s", work.feed.name, redact(work.feed.url), status, error
        )
        self._finish_feed(work)

    def _maybe_finish(self, work: _FeedWork) -> None:
        if work.pending == 0 and work.result is not None and not work.status.failed:
            if work.faults:
                n = len(work.faults)
                work.status = FetchStatus.ERROR
                work.error = f"{n} {'entry' if n == 1 else 'entries'} failed; first: {work.faults[0]}"
            self._finish_feed(work)

    def _finish_feed(self, work: _FeedWork) -> None:
        if work.finished:
            return
        work.finished = True
        result = work.result
        work.seconds = time.monotonic() - work.t0
        now = self.clock()
        feed = work.feed
        try:
            schedule, score = self._schedule(work, now)
        except Exception:  # noqa: BLE001 - whatever a server sent: one bad feed never ends the cycle
            logger.warning("feed %r: could not schedule from its response; using the base interval", feed.name)
            fallback = Plan(now + self.poll.cadence().interval, rate=feed.publish_rate, reason="new")
            schedule, score = fallback, feed.failure_score
        outcome = FeedOutcome(
            status=work.status,
            started_at=work.started_at,
            duration_ms=int(work.seconds * 1000),
            next_poll_at=schedule.next_poll_at,
            publish_rate=schedule.rate,
            failure_score=score,
            parked=schedule.parked,
            schedule_reason=schedule.reason,
            owner=self.owner,
            http_status=result.status_code if result else work.http_status,
            size=len(result.body) if result and result.body is not None else None,
            error=work.error,
            etag=result.etag if result else None,
            last_modified=result.last_modified if result else None,
            body_hash=hashlib.sha256(result.body).hexdigest() if result and result.body is not None else None,
            title=work.title,
            bozo_reason=work.bozo,
            entries=work.entries,
            new_items=work.new,
        )
        if work.status is FetchStatus.OK:
            try:
                self.store.record_fetch(work.feed, outcome)  # after its articles, at once
            except Exception as exc:  # noqa: BLE001 - then as failed, with nothing of its response
                logger.warning("feed %s: could not record its fetch: %s", redact(feed.url), _describe(exc))
                work.status, work.error = FetchStatus.ERROR, f"could not record: {_describe(exc)}"
                outcome = replace(outcome, status=work.status, error=work.error, title=None, bozo_reason=None)
                self._later(work.feed, outcome)
        else:
            self._later(work.feed, outcome)
        if schedule.parked and not feed.parked:
            logger.warning(
                "feed parked name=%r url=%s: failing since %s", feed.name, redact(feed.url), feed.failing_since
            )
        logger.info(
            "feed done name=%r status=%s entries=%d new=%d repeats=%d extracted=%d fallbacks=%d article_failures=%d "
            "ms=%d next=%s (%s)",
            work.feed.name,
            work.status.value,
            work.entries,
            work.new,
            work.repeats,
            work.extracted,
            work.fallbacks,
            work.article_failures,
            outcome.duration_ms,
            schedule.next_poll_at.isoformat(timespec="seconds"),
            schedule.reason,
        )

    @staticmethod
    def _report(work: _FeedWork) -> FeedReport:
        return FeedReport(
            feed_id=work.feed.id,
            name=work.feed.name,
            url=work.feed.url,
            status=work.status,
            entries=work.entries,
            new=work.new,
            extracted=work.extracted,
            fallbacks=work.fallbacks,
            article_failures=work.article_failures,
            error=work.error,
            bozo_reason=work.bozo,
            seconds=work.seconds,
        )


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
) -> CycleReport:
    """Poll ``feeds`` (default: every active feed that is due) once."""
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
