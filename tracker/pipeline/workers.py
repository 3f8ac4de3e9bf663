"""The CPU-bound half of a cycle — extraction, matching, signatures — on every core.

Extraction (HTML parsing, trafilatura) and rule matching are CPU-bound, so a cycle runs
them in worker processes, each with its own compiled Matcher and one page at a time. Each
page has a budget, enforced on the process that runs it:

- time (``[fetch] extract_timeout``): a timer in the worker stops Python-level work at the
  limit; a worker still busy a little later (``KILL_GRACE``), stuck in C code, is killed;
- memory (``[fetch] extract_memory_mb``): the worker's address space is capped at its size
  after start-up plus the budget, so a runaway page meets MemoryError.

A page over budget, or whose worker dies, gets the feed's text (processed in the calling
process, as when extraction finds nothing), a warning naming the URL, and a count in
``Extractor.budget_fallbacks``; its worker is replaced. Pages in other workers are not
affected, and pages waiting for a worker wait on. Workers exit when the process that
started them dies, however it dies, and leave Ctrl-C (SIGINT) to it.

With both budgets off (0) and one worker, pages are processed inline, in the caller.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import replace

from tracker.extraction.extract import ExtractJob
from tracker.pipeline.pool import Pool
from tracker.pipeline.processing import ExtractFuture, Processed, process
from tracker.rules.matching import Matcher

logger = logging.getLogger(__name__)


class Extractor:
    """Runs ``process`` for the pipeline: ``submit(job)`` → a Future of its result.

    ``workers``: processes (0: one per core). ``timeout``: seconds per page, ``memory_mb``:
    memory per page; 0 turns a budget off. ``soft_timer``: stop Python-level work at the
    time budget before the hard kill (tests turn it off to exercise the kill alone).
    """

    def __init__(
        self,
        matcher: Matcher,
        workers: int = 0,
        *,
        timeout: float = 20.0,
        memory_mb: int = 512,
        soft_timer: bool = True,
    ) -> None:
        self.matcher = matcher
        self.workers = workers if workers > 0 else (os.cpu_count() or 1)
        self.timeout = max(0.0, timeout)
        self.memory_mb = max(0, memory_mb)
        self.soft_timer = soft_timer
        self.budget_fallbacks: collections.Counter[str] = collections.Counter()  #: pages given the feed text, by why
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    @property
    def inline(self) -> bool:
        """True when pages are processed in the caller (one worker, no budgets)."""
        return self.workers <= 1 and not self.timeout and not self.memory_mb

    def submit(self, job: ExtractJob) -> Future[Processed]:
        if self.inline:
            future = ExtractFuture()
            try:
                future.set_result(process(job, self.matcher))
            except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            return future
        return self._started().submit(job)

    def start(self, wait: float | None = None) -> bool:
        """Start the worker processes now rather than at the first page (they take seconds
        to import and warm up; entering the Extractor as a context manager does this).
        With ``wait``, block up to that many seconds until every worker is ready; returns
        whether they are."""
        if self.inline:
            return True
        pool = self._started()
        pool.prestart()
        return pool.wait_ready(wait) if wait is not None else False

    def _started(self) -> Pool:
        with self._lock:
            if self._pool is None or not self._pool.usable:
                self._pool = Pool(self)
            return self._pool

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        pool = self._pool
        return pool.pids() if pool is not None else []

    def reset(self) -> None:
        """After BrokenProcessPool (workers failed to start): try starting workers again on
        the next submit. Pages in flight are kept."""
        pool = self._pool
        if pool is not None:
            pool.unbreak()

    def close(self) -> None:
        """Cancel pages not started, let those running finish (within their budget) and
        stop the workers. A later submit starts new ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> Extractor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fallback(self, job: ExtractJob, future: ExtractFuture, reason: str, detail: str) -> None:
        """Resolve ``future`` with the page's feed text, recording why."""
        self.budget_fallbacks[reason] += 1
        logger.warning("extraction %s url=%s; using the feed text", detail, job.url)
        future.over_budget = reason
        try:
            result = process(replace(job, html=None), self.matcher)
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        else:
            future.set_result(result)
