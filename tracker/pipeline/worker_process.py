"""What runs in one extraction worker process: it serves the pages its pool sends, one at a
time, each within the time and memory budgets (``tracker.pipeline.workers`` describes them),
and exits when the process that started it dies."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from tracker.extraction.extract import ExtractJob
from tracker.pipeline.processing import MEMORY, TIMEOUT, process
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import RuleSet

logger = logging.getLogger("tracker.pipeline.workers")  # one logger for the extraction workers

PARENT_POLL = 0.5  #: seconds between a worker's checks that its parent is still there


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


def worker_main(
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
