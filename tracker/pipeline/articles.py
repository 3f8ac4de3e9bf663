"""The article stage of a cycle: a new entry's page (fetched, or not) goes to the extraction
workers, and what they hand back (or, when they fail, the feed's text processed here) goes
to the write side."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tracker.core.config import PollConfig
from tracker.core.errors import FetchError
from tracker.core.types import FetchResult
from tracker.extraction.extract import ExtractJob
from tracker.pipeline.processing import Processed, process
from tracker.pipeline.work import ArticleWork, StageFailed, describe, entry_fault, stage
from tracker.pipeline.workers import Extractor
from tracker.pipeline.writes import ArticleWriter
from tracker.rules.matching import Matcher

logger = logging.getLogger("tracker.pipeline.cycle")  # one logger for the whole cycle


class ArticleStage:
    """Hands a cycle's new articles to the extraction workers and their results to ``writer``.

    ``track(future, kind, art)`` hands each extraction's future to the cycle's event loop,
    which calls ``extracted`` once it is done.
    """

    def __init__(
        self,
        extractor: Extractor,
        matcher: Matcher,
        poll: PollConfig,
        writer: ArticleWriter,
        track: Callable[[Future[Any], str, Any], None],
    ) -> None:
        self.extractor = extractor
        self.matcher = matcher
        self.poll = poll
        self.writer = writer
        self._track = track
        self._workers_started = False

    def start_workers(self) -> None:
        """Start the extraction workers, once: they import and warm up while the first pages are fetched."""
        if self._workers_started:
            return
        self._workers_started = True
        start = getattr(self.extractor, "start", None)  # test doubles may have none
        if start is None:
            return
        try:
            start()
        except Exception as exc:  # noqa: BLE001 - submitting will try again and fall back to the feed text
            logger.warning("extraction workers did not start: %s", describe(exc))

    def page_fetched(self, art: ArticleWork, fut: Future[FetchResult]) -> None:
        try:
            art.page = fut.result()
        except FetchError as exc:
            art.work.article_failures += 1
            logger.info("article fetch failed url=%s status=%s error=%s", art.entry.link, exc.status, exc)
        except Exception as exc:  # noqa: BLE001 - the fetch of one page: the feed text remains
            entry_fault(art.work, art.entry, StageFailed("article fetch", exc))
        self.submit(art)

    def submit(self, art: ArticleWork) -> None:
        job = self._job(art)
        try:
            try:
                fut = self.extractor.submit(job)
            except BrokenProcessPool:
                self.extractor.reset()
                fut = self.extractor.submit(job)
        except Exception as exc:  # noqa: BLE001 - no worker for this page: the feed text, inline
            entry_fault(art.work, art.entry, StageFailed("extraction", exc))
            fut = Future()
            fut.set_exception(StageFailed("extraction", exc))
        self._track(fut, "extract", art)

    def _job(self, art: ArticleWork, *, with_html: bool = True) -> ExtractJob:
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

    def extracted(self, art: ArticleWork, fut: Future[Processed]) -> None:
        try:
            processed = self._processed(art, fut)
        except Exception as exc:  # noqa: BLE001 - one article: skipped, counted, its feed failed
            entry_fault(art.work, art.entry, exc)
            processed = None
        if processed is None:
            self.writer.done(art)
            return
        # Stored with the next batch; its feed is finished (and its state recorded) only after.
        self.writer.add(art, processed)

    def _processed(self, art: ArticleWork, fut: Future[Processed]) -> Processed | None:
        """The worker's result; else the feed's text, processed here; None when even that raises."""
        try:
            return fut.result()
        except BrokenProcessPool:
            logger.warning("extraction worker died url=%s; using the feed text", art.entry.link)
            self.extractor.reset()
        except StageFailed:
            pass  # already recorded
        except Exception as exc:  # noqa: BLE001 - extraction, matching or the signature of one page
            entry_fault(art.work, art.entry, StageFailed("extraction", exc))
        try:
            with stage("processing the feed text"):
                return process(self._job(art, with_html=False), self.matcher)
        except StageFailed as exc:
            entry_fault(art.work, art.entry, exc, skipped=True)
            return None
