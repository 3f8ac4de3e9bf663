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
import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from .extract import ExtractJob, build_article
from .matching import Matcher
from .rules import RuleSet
from .stories import Signature, signature
from .types import Article, Match

logger = logging.getLogger(__name__)

Processed = tuple[Article, list[Match], Signature]

KILL_GRACE = 2.0  #: seconds past the time budget before a worker still busy is killed
START_TIMEOUT = 120.0  #: seconds a new worker may take to become ready
START_FAILURES = 3  #: workers failing to start in a row before queued pages fail with BrokenProcessPool
PARENT_POLL = 0.5  #: seconds between a worker's checks that its parent is still there

TIMEOUT = "timeout"  #: ``ExtractFuture.over_budget``: over the time budget
MEMORY = "memory"  #: over the memory budget
CRASHED = "crashed"  #: the worker died while on the page


class ExtractFuture(Future[Processed]):
    """The future ``Extractor.submit`` returns. When the page was over a budget or its worker
    died, the result is the feed-text fallback and ``over_budget`` says why (TIMEOUT, MEMORY,
    CRASHED); else ``over_budget`` is None."""

    over_budget: str | None = None


def over_budget(future: Future[Any]) -> str | None:
    """Why a page from ``Extractor.submit`` got the feed's text instead of extraction
    (TIMEOUT, MEMORY, CRASHED), or None."""
    return future.over_budget if isinstance(future, ExtractFuture) else None


def process(job: ExtractJob, matcher: Matcher) -> Processed:
    """Build the article, match it and take its story signature: the per-article computation."""
    article = build_article(job)
    return article, matcher.match(article.title, article.text), signature(article.title, article.text)


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
        self._pool: _Pool | None = None
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

    def _started(self) -> _Pool:
        with self._lock:
            if self._pool is None or not self._pool.usable:
                self._pool = _Pool(self)
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


# -- the parent side ----------------------------------------------------------------------


@dataclass(eq=False)
class _Task:
    job: ExtractJob
    future: ExtractFuture
    running: bool = False  #: the future is marked running (it can no longer be cancelled)


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    deadline: float | None  #: monotonic: to become ready, or to finish its page
    ready: bool = False
    task: _Task | None = None


class _Pool:
    """Worker processes, one page each at a time, run by one manager thread.

    The manager thread alone starts, feeds, watches and kills workers (a worker's
    parent-death signal is tied to the thread that started it, so that thread must live as
    long as the pool). ``submit`` only queues and wakes it.
    """

    def __init__(self, owner: Extractor) -> None:
        self._owner = owner
        self._prestart = False  #: start every missing worker at once, before any page asks for one
        self._size = owner.workers
        self._timeout = owner.timeout
        self._lock = threading.Lock()
        self._submitted: collections.deque[_Task] = collections.deque()
        self._closing = False
        self._broken = False
        self._start_failures = 0
        self._waiting: collections.deque[_Task] = collections.deque()  #: manager thread only
        self._workers: list[_Worker] = []  #: manager thread only
        self._pids: list[int] = []
        self._ready_count = 0
        self._changed = threading.Condition(self._lock)  #: notified when the workers change
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._context = multiprocessing.get_context("spawn")  # the parent runs threads: never fork
        self._thread = threading.Thread(target=self._run, name="extract-pool", daemon=True)
        self._thread.start()

    # -- called from any thread --

    def submit(self, job: ExtractJob) -> ExtractFuture:
        future = ExtractFuture()
        with self._lock:
            if self._closing:
                raise RuntimeError("extractor is closed")
            if self._broken:
                future.set_exception(BrokenProcessPool("extraction workers fail to start"))
                return future
            self._submitted.append(_Task(job, future))
        self._wake()
        return future

    def pids(self) -> list[int]:
        with self._lock:
            return list(self._pids)

    def prestart(self) -> None:
        with self._lock:
            self._prestart = True
        self._wake()

    def wait_ready(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._ready_count >= self._size, timeout)

    def unbreak(self) -> None:
        with self._lock:
            self._broken = False
            self._start_failures = 0

    @property
    def usable(self) -> bool:
        with self._lock:
            return not self._closing and self._thread.is_alive()

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._wake()
        self._thread.join()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full: a wake-up is pending anyway
            os.write(self._wake_w, b"x")

    # -- the manager thread --

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except Exception:
            # A bug here must not strand pages: fail them (the caller falls back to the feed
            # text), and let the Extractor start a new pool for the next page.
            logger.exception("extraction pool failed")
            with self._lock:
                self._closing = True
                stranded = [*self._waiting, *self._submitted, *(w.task for w in self._workers if w.task)]
            for task in stranded:
                if not task.future.done():
                    with contextlib.suppress(Exception):
                        task.future.set_exception(BrokenProcessPool("extraction pool failed"))
        finally:
            self._stop_workers()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _step(self) -> bool:
        with self._lock:
            self._waiting.extend(self._submitted)
            self._submitted.clear()
            closing = self._closing
        if closing:
            for task in [t for t in self._waiting if not t.running]:
                task.future.cancel()
                self._waiting.remove(task)
            if not self._waiting and not any(w.task for w in self._workers):
                return False
        self._start_workers()
        self._dispatch()
        deadlines = [w.deadline for w in self._workers if w.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        watched: list[Any] = [self._wake_r]
        for worker in self._workers:
            watched += [worker.conn, worker.process.sentinel]
        ready = wait(watched, timeout)
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for worker in list(self._workers):
            if worker.conn in ready or worker.process.sentinel in ready:
                self._service(worker)
        self._enforce_deadlines()
        return True

    def _start_workers(self) -> None:
        if self._broken:
            for task in self._waiting:
                if not task.future.done():  # cancelled meanwhile
                    task.future.set_exception(BrokenProcessPool("extraction workers fail to start"))
            self._waiting.clear()
            return
        free = sum(1 for w in self._workers if w.task is None)
        needed = min(len(self._waiting) - free, self._size - len(self._workers))
        with self._lock:
            prestart, self._prestart = self._prestart, False
        if prestart:
            needed = self._size - len(self._workers)
        for _ in range(max(0, needed)):
            parent_end, child_end = self._context.Pipe()
            owner = self._owner
            proc = self._context.Process(
                target=_worker_main,
                args=(child_end, owner.matcher.ruleset, owner.timeout, owner.memory_mb, owner.soft_timer, os.getpid()),
                name="extract-worker",
                daemon=True,
            )
            proc.start()
            child_end.close()
            self._workers.append(_Worker(proc, parent_end, deadline=time.monotonic() + START_TIMEOUT))
        self._publish_pids()

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._waiting:
                return
            if not worker.ready or worker.task is not None:
                continue
            while self._waiting:
                task = self._waiting.popleft()
                if not task.running:
                    if not task.future.set_running_or_notify_cancel():
                        continue  # cancelled while it waited
                    task.running = True
                try:
                    payload = pickle.dumps(task.job, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
                    task.future.set_exception(exc)
                    continue
                try:
                    worker.conn.send_bytes(payload)
                except OSError:
                    self._waiting.appendleft(task)  # never reached the worker: the next one takes it
                    self._discard(worker)
                    return  # the worker list changed; the next step goes on
                worker.task = task
                worker.deadline = time.monotonic() + self._timeout + KILL_GRACE if self._timeout else None
                break

    def _service(self, worker: _Worker) -> None:
        """Read what the worker sent; notice when it is gone."""
        gone = False
        try:
            while worker in self._workers and worker.conn.poll():
                self._message(worker, pickle.loads(worker.conn.recv_bytes()))
        except (EOFError, OSError):
            gone = True
        except Exception as exc:  # noqa: BLE001 - a result that does not unpickle: that page fails
            task, worker.task = worker.task, None
            if task is not None:
                task.future.set_exception(exc)
        if worker in self._workers:
            if gone:
                worker.process.join(1.0)  # its end of the pipe is closed: it is exiting
            if gone or not worker.process.is_alive():
                self._died(worker)

    def _message(self, worker: _Worker, message: tuple[str, Any]) -> None:
        kind, value = message
        if kind == "ready":
            worker.ready, worker.deadline = True, None
            with self._lock:
                self._start_failures = 0
            self._publish_pids()
            return
        task, worker.task, worker.deadline = worker.task, None, None
        if task is None:
            return
        if kind == "done":
            task.future.set_result(value)
        elif kind == "failed":
            task.future.set_exception(value)
        elif kind == "over":
            self._discard(worker)  # it exits by itself; its state is not trusted meanwhile
            self._over(task, value)

    def _over(self, task: _Task, reason: str) -> None:
        owner = self._owner
        detail = {
            TIMEOUT: f"over its time budget ({owner.timeout:g} s)",
            MEMORY: f"over its memory budget ({owner.memory_mb} MB)",
        }.get(reason, "worker died")
        owner._fallback(task.job, task.future, reason, detail)

    def _died(self, worker: _Worker) -> None:
        code = worker.process.exitcode
        self._discard(worker)
        task = worker.task
        if task is not None:
            self._over(task, CRASHED)
            logger.warning("extraction worker pid=%s died (exit code %s)", worker.process.pid, code)
        elif not worker.ready:
            logger.warning("extraction worker pid=%s failed to start (exit code %s)", worker.process.pid, code)
            with self._lock:
                self._start_failures += 1
                if self._start_failures >= START_FAILURES:
                    self._broken = True

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.deadline is None or worker.deadline > now:
                continue
            self._service(worker)  # it may have answered just in time
            if worker not in self._workers or worker.deadline is None or worker.deadline > now:
                continue
            task = worker.task
            worker.task = None
            self._discard(worker)
            if task is not None:
                self._over(task, TIMEOUT)
            else:
                logger.warning("extraction worker pid=%s did not start in %g s", worker.process.pid, START_TIMEOUT)
                with self._lock:
                    self._start_failures += 1
                    if self._start_failures >= START_FAILURES:
                        self._broken = True

    def _discard(self, worker: _Worker) -> None:
        """Kill and forget one worker."""
        if worker in self._workers:
            self._workers.remove(worker)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5.0)
        worker.conn.close()
        self._publish_pids()

    def _publish_pids(self) -> None:
        pids = [w.process.pid for w in self._workers if w.process.pid is not None]
        ready = sum(1 for w in self._workers if w.ready)
        with self._changed:
            self._pids, self._ready_count = pids, ready
            self._changed.notify_all()

    def _stop_workers(self) -> None:
        for worker in list(self._workers):
            if not worker.ready:
                self._discard(worker)  # still starting: nothing to finish
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(pickle.dumps(None))
        end = time.monotonic() + 2.0
        for worker in self._workers:
            worker.process.join(max(0.0, end - time.monotonic()))
        for worker in list(self._workers):
            self._discard(worker)


# -- the worker side ----------------------------------------------------------------------


class _PageTimeout(BaseException):
    """Raised by the worker's timer: a BaseException, so no ``except Exception`` on the way
    (in trafilatura or here) mistakes it for a failed extraction and carries on."""


class _Budget:
    """The worker's state: its matcher, and whether the page in hand has hit a budget."""

    def __init__(self, matcher: Matcher, timeout: float, soft_timer: bool) -> None:
        self.matcher = matcher
        self.timeout = timeout
        self.soft_timer = soft_timer and timeout > 0 and hasattr(signal, "setitimer")
        self.armed = False
        self.memory_error = False

    def alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise _PageTimeout

    def run(self, job: ExtractJob) -> tuple[str, Any]:
        self.memory_error = False
        try:
            try:
                if self.soft_timer:
                    self.armed = True
                    signal.setitimer(signal.ITIMER_REAL, self.timeout)
                result = process(job, self.matcher)
            finally:
                self.armed = False
                if self.soft_timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except _PageTimeout:
            return "over", TIMEOUT
        except MemoryError:
            return "over", MEMORY
        except Exception as exc:  # noqa: BLE001 - sent to the parent, which hands it to the caller
            return "failed", exc
        if self.memory_error:  # a library met MemoryError, logged it and went on with less
            return "over", MEMORY
        return "done", result


class _MemoryErrorLog(logging.StreamHandler):  # type: ignore[type-arg]
    """The worker's log handler: warnings to stderr (as without any handler), noting any
    record about a MemoryError that a library caught and logged."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)
        self.budget = budget

    def handle(self, record: logging.LogRecord) -> bool:
        args = record.args.values() if isinstance(record.args, dict) else (record.args or ())
        if (
            (record.exc_info and record.exc_info[0] is not None and issubclass(record.exc_info[0], MemoryError))
            or any(isinstance(a, MemoryError) for a in args)
            or "memory allocation failed" in str(record.msg).lower()
            or any("memory allocation failed" in str(a).lower() for a in args)
        ):
            self.budget.memory_error = True
        return super().handle(record)


def _worker_main(
    conn: Connection, ruleset: RuleSet, timeout: float, memory_mb: int, soft_timer: bool, parent: int
) -> None:
    _exit_with_parent(parent)
    # Ctrl-C reaches the whole process group; stopping is the parent's call (the service
    # finishes the pages in flight), and it ends its workers when it closes or dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    budget = _Budget(Matcher(ruleset), timeout, soft_timer)
    logging.getLogger().addHandler(_MemoryErrorLog(budget))
    _warm_up(budget.matcher)
    if budget.soft_timer:
        signal.signal(signal.SIGALRM, budget.alarm)
    if memory_mb:
        _limit_memory(memory_mb)
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            job = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the parent is gone
        if job is None:
            return
        kind, value = budget.run(job)
        try:
            payload = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: its text does
            payload = pickle.dumps(("failed", RuntimeError(f"{type(value).__name__}: {value}")))
        del value
        try:
            conn.send_bytes(payload)
        except OSError:
            return
        if kind == "over":
            return  # a page over budget may have left this process in poor shape: a new one follows


def _exit_with_parent(parent: int) -> None:
    """Die with the parent: a kernel signal on Linux, and a thread that checks, everywhere."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)  # it died before the signal was set up

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _warm_up(matcher: Matcher) -> None:
    """Run one small page through ``process``: what it imports and loads lazily (trafilatura's
    helpers, the story signature's libraries) is then in place before the budgets start, and
    the memory cap is measured from the worker's settled size."""
    body = "<p>" + "Warm-up paragraph for the extraction worker. " * 20 + "</p>"
    html = f"<html><head><title>Warm-up</title></head><body><article>{body}</article></body></html>"
    try:
        process(ExtractJob(url="https://warm-up.invalid/page", html=html.encode()), matcher)
    except Exception:
        logger.debug("extraction warm-up failed", exc_info=True)


def _limit_memory(memory_mb: int) -> None:
    """Cap the address space at its current size plus ``memory_mb`` (Linux: /proc)."""
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as fh:
            size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    except (ImportError, OSError, StopIteration, ValueError):
        logger.warning("extract_memory_mb is not enforced on this system")
        return
    limit = size + memory_mb * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
