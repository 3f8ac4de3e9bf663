"""The CPU-bound half of a cycle — extraction, matching, signatures — on every core.

Extraction (HTML parsing, trafilatura) and rule matching are CPU-bound, so a cycle with
many new articles runs them in worker processes, each with its own compiled Matcher. With
one worker they run inline. A worker that dies costs only its page: the caller falls back
to the feed text.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

from .extract import ExtractJob, build_article
from .matching import Matcher
from .rules import RuleSet
from .stories import Signature, signature
from .types import Article, Match

logger = logging.getLogger(__name__)

Processed = tuple[Article, list[Match], Signature]

_worker_matcher: Matcher | None = None


def _init_worker(ruleset: RuleSet) -> None:
    global _worker_matcher
    _worker_matcher = Matcher(ruleset)


def _process_in_worker(job: ExtractJob) -> Processed:
    assert _worker_matcher is not None
    return process(job, _worker_matcher)


def process(job: ExtractJob, matcher: Matcher) -> Processed:
    """Build the article, match it and take its story signature: the per-article computation."""
    article = build_article(job)
    return article, matcher.match(article.title, article.text), signature(article.title, article.text)


class Extractor:
    def __init__(self, matcher: Matcher, workers: int = 0) -> None:
        self.matcher = matcher
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, job: ExtractJob) -> Future[Processed]:
        if self.workers <= 1:
            future: Future[Processed] = Future()
            try:
                future.set_result(process(job, self.matcher))
            except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            return future
        if self._pool is None:
            # spawn: the parent runs HTTP threads, and forking a threaded process is unsafe
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.matcher.ruleset,),
            )
        return self._pool.submit(_process_in_worker, job)

    def reset(self) -> None:
        """Drop a broken pool; the next submit starts a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
