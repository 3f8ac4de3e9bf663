"""Extraction off the main thread: a lazily started process pool over both cores.

Extraction (HTML parsing, trafilatura) is CPU-bound, so a cycle with many new articles
runs it in worker processes. With one worker, or for a handful of pages, it runs inline.
A worker that dies costs only its page: the caller falls back to the feed text.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

from .extract import ExtractJob, build_article
from .types import Article

logger = logging.getLogger(__name__)


class Extractor:
    def __init__(self, workers: int = 0) -> None:
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, job: ExtractJob) -> Future[Article]:
        if self.workers <= 1:
            future: Future[Article] = Future()
            try:
                future.set_result(build_article(job))
            except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            return future
        if self._pool is None:
            # spawn: the parent runs HTTP threads, and forking a threaded process is unsafe
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool.submit(build_article, job)

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
