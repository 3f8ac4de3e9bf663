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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .config import FetchConfig, PollConfig
from .errors import FetchError, ParseError
from .extract import ExtractJob
from .feeds import parse_feed
from .fetching import FEED_ACCEPT, Fetcher, Guard
from .grouping import StoryGrouper
from .matching import Matcher
from .schedule import Plan, cache_hint, failure_weight, plan, retry_after, update_rate
from .store import FeedOutcome, FeedState, Store, utcnow
from .stories import Signature
from .storydb import story_time
from .types import Article, CycleReport, FeedEntry, FeedReport, FetchResult, FetchStatus, Match, TextSource
from .urls import canonicalize, host_of, same_site
from .workers import Extractor, Processed, process

logger = logging.getLogger(__name__)

RECORD_BATCH = 200  #: feed outcomes without new items written per transaction
RECORD_DELAY = 5.0  #: seconds such an outcome may wait for its batch


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


def article_guard(feed_url: str, fetch: FetchConfig) -> Guard:
    """Which article URLs are trusted: the feed's own host, hosts in ``[fetch] allowed_hosts``,
    or every URL when ``allow_private_addresses`` is set. Others may only reach public
    addresses, checked by the fetcher on the address it connects to (``tracker.netguard``)."""

    def guard(url: str) -> bool:
        return fetch.allow_private_addresses or same_site(url, feed_url) or host_of(url) in fetch.allowed_hosts

    return guard


class Cycle:
    """Runs one cycle; construct, then call ``run``."""

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
        self._pending: dict[Future[Any], tuple[str, Any]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        self._unrecorded: list[tuple[FeedState, FeedOutcome]] = []  #: outcomes without new items, batched
        self._unrecorded_since = 0.0
        self._backlog: deque[_ArticleWork] = deque()
        self._in_flight_links: dict[str, _ArticleWork] = {}
        self._max_articles = max(4, 2 * fetcher.config.concurrency)
        self._articles_in_flight = 0

    def run(self, feeds: Sequence[FeedState]) -> CycleReport:
        started = self.clock()
        self.grouper.refresh(started)
        works = []
        try:
            for feed in feeds:
                work = _FeedWork(feed=feed, started_at=self.clock(), t0=time.monotonic())
                works.append(work)
                fut = self._threads.submit(
                    self.fetcher.get, feed.url, etag=feed.etag, last_modified=feed.last_modified, accept=FEED_ACCEPT
                )
                self._track(fut, "feed", work)
            self._drain()
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

    def _track(self, fut: Future[Any], kind: str, payload: Any) -> None:
        self._pending[fut] = (kind, payload)
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

    def _drain(self) -> None:
        while self._pending:
            if self.stop.is_set():
                if self._stop_deadline is None:
                    self._stop_deadline = time.monotonic() + self.stop_timeout
                    self._backlog.clear()  # articles not started: their feeds are polled again next time
                    for fut in list(self._pending):
                        if fut.cancel():  # feed fetches not started yet
                            del self._pending[fut]
                    if not self._pending:
                        break
                elif time.monotonic() >= self._stop_deadline:
                    logger.warning("stopping: abandoning %d requests and extractions in flight", len(self._pending))
                    self.fetcher.stop()  # requests still waiting for their host's budget give up
                    for fut in self._pending:
                        fut.cancel()
                    self._pending.clear()
                    break
            if self._unrecorded and time.monotonic() - self._unrecorded_since > RECORD_DELAY:
                self._flush_records()  # well within any lease
            for fut in self._completed(timeout=0.25):
                if fut not in self._pending:
                    continue  # cancelled and forgotten while stopping
                kind, payload = self._pending.pop(fut)
                if kind == "feed":
                    self._feed_fetched(payload, fut)
                elif kind == "page":
                    self._page_fetched(payload, fut)
                else:
                    self._extracted(payload, fut)
            self._start_articles()

    def _feed_fetched(self, work: _FeedWork, fut: Future[FetchResult]) -> None:
        try:
            work.result = fut.result()
        except FetchError as exc:
            work.http_status, work.error_headers = exc.http_status, exc.headers
            self._fail(work, exc.status, str(exc))
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
            parsed = parse_feed(body, result.final_url, result.headers)
        except ParseError as exc:
            self._fail(work, FetchStatus.PARSE_ERROR, str(exc))
            return
        work.title, work.bozo, work.ttl = parsed.title, parsed.bozo_reason, parsed.ttl
        entries = parsed.entries[: self.poll.max_entries_per_feed]
        work.entries = len(entries)
        self._queue_new_entries(work, entries)
        self._maybe_finish(work)

    def _queue_new_entries(self, work: _FeedWork, entries: Sequence[FeedEntry]) -> None:
        links = {e: canonicalize(e.link) if e.link else None for e in entries}
        stored, seen_guids = self.store.lookup(
            work.feed.id, [u for u in links.values() if u], [e.guid for e in entries if e.guid]
        )
        for entry, link in links.items():
            if entry.guid and entry.guid in seen_guids:
                continue
            if link is None:
                # No link: the feed's own text is all there is.
                link = f"urn:guid:{entry.guid}"
            if link in stored:
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
            art = _ArticleWork(work=work, entry=entry, link=link)
            self._in_flight_links[link] = art
            work.pending += 1
            self._backlog.append(art)

    def _start_articles(self) -> None:
        while self._backlog and self._articles_in_flight < self._max_articles and not self.stop.is_set():
            art = self._backlog.popleft()
            self._articles_in_flight += 1
            if art.entry.link:
                guard = article_guard(art.work.feed.url, self.fetcher.config)
                fut = self._threads.submit(self.fetcher.get, art.entry.link, guard=guard)
                self._track(fut, "page", art)
            else:
                self._submit_extract(art)

    def _page_fetched(self, art: _ArticleWork, fut: Future[FetchResult]) -> None:
        try:
            art.page = fut.result()
        except FetchError as exc:
            art.work.article_failures += 1
            logger.info("article fetch failed url=%s status=%s error=%s", art.entry.link, exc.status, exc)
        self._submit_extract(art)

    def _submit_extract(self, art: _ArticleWork) -> None:
        job = self._job(art)
        try:
            fut = self.extractor.submit(job)
        except BrokenProcessPool:
            self.extractor.reset()
            fut = self.extractor.submit(job)
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
        )

    def _extracted(self, art: _ArticleWork, fut: Future[Processed]) -> None:
        self._articles_in_flight -= 1
        try:
            article, matches, sig = fut.result()
        except BrokenProcessPool:
            logger.warning("extraction worker died url=%s; using the feed text", art.entry.link)
            self.extractor.reset()
            article, matches, sig = process(self._job(art, with_html=False), self.matcher)
        except Exception:
            logger.warning("extraction failed url=%s; using the feed text", art.entry.link, exc_info=True)
            article, matches, sig = process(self._job(art, with_html=False), self.matcher)
        self._store(art, article, matches, sig)
        del self._in_flight_links[art.link]
        works = [art.work] + [w for w, _ in art.also]
        for work in works:
            work.pending -= 1
        for work in {id(w): w for w in works}.values():
            self._maybe_finish(work)

    def _store(self, art: _ArticleWork, article: Article, matches: list[Match], sig: Signature) -> None:
        work = art.work
        if article.text_source is TextSource.EXTRACTED:
            work.extracted += 1
        else:
            work.fallbacks += 1
        raw = art.page.body if art.page and article.text_source is TextSource.EXTRACTED else None
        placement = self.grouper.place(sig, story_time(article.published, self.clock()))
        item_id, created = self.store.add_item(
            article,
            matches,
            feed_id=work.feed.id,
            entry_url=art.link,
            guid=art.entry.guid or art.link,
            raw_html=raw,
            story=placement,
        )
        if created:
            self.grouper.placed(item_id, placement)
            role = placement.assignment.role
            self.roles[role] = self.roles.get(role, 0) + 1
            work.new += 1
            for m in matches:
                self.topics.setdefault(m.rule, []).append(article.title)
        for other, entry in art.also:
            self.store.link_source(item_id, other.feed.id, art.link, entry.guid or art.link)

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

    def _flush_records(self) -> None:
        self.store.record_fetches(self._unrecorded)
        self._unrecorded.clear()

    def _fail(self, work: _FeedWork, status: FetchStatus, error: str) -> None:
        work.status, work.error = status, error
        logger.warning("feed failed name=%r url=%s status=%s error=%s", work.feed.name, work.feed.url, status, error)
        self._finish_feed(work)

    def _maybe_finish(self, work: _FeedWork) -> None:
        if work.pending == 0 and work.result is not None and not work.status.failed:
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
        except (ValueError, OverflowError):  # whatever a server sent: one bad feed never ends the cycle
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
            self.store.record_fetch(work.feed, outcome)  # after its articles, at once
        else:
            # Nothing new came with it (a 304, a failure): a crash before the batch is
            # written only means polling it again. One commit per batch, not per feed.
            if not self._unrecorded:
                self._unrecorded_since = time.monotonic()
            self._unrecorded.append((work.feed, outcome))
            if len(self._unrecorded) >= RECORD_BATCH:
                self._flush_records()
        if schedule.parked and not feed.parked:
            logger.warning("feed parked name=%r url=%s: failing since %s", feed.name, feed.url, feed.failing_since)
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
