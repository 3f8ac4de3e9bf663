"""The parent side of the extraction workers: the processes ``Extractor`` runs pages on, one
page each at a time, fed, watched and killed by one manager thread (the budgets are
described in ``tracker.pipeline.workers``)."""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from tracker.extraction.extract import ExtractJob
from tracker.pipeline.processing import CRASHED, MEMORY, TIMEOUT, ExtractFuture
from tracker.pipeline.worker_process import worker_main

if TYPE_CHECKING:
    from tracker.pipeline.workers import Extractor

logger = logging.getLogger("tracker.pipeline.workers")  # one logger for the extraction workers

KILL_GRACE = 2.0  #: seconds past the time budget before a worker still busy is killed
START_TIMEOUT = 120.0  #: seconds a new worker may take to become ready
START_FAILURES = 3  #: workers failing to start in a row before queued pages fail with BrokenProcessPool


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


class _Workers:
    """The pool's worker processes, and whether they fail to start. Only its manager thread
    starts, discards and stops them; any thread may read their pids, wait until they are
    ready and see whether they are ``broken`` (under the pool's lock)."""

    def __init__(self, owner: Extractor, lock: threading.Lock) -> None:
        self._owner = owner
        self._lock = lock
        self._all: list[_Worker] = []  #: manager thread only
        self._pids: list[int] = []
        self._ready_count = 0
        self._changed = threading.Condition(lock)  #: notified when the workers change
        self.broken = False  #: ``START_FAILURES`` workers in a row failed to start
        self._start_failures = 0
        self._context = multiprocessing.get_context("spawn")  # the parent runs threads: never fork

    def __iter__(self) -> Iterator[_Worker]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, worker: object) -> bool:
        return worker in self._all

    def pids(self) -> list[int]:
        with self._lock:
            return list(self._pids)

    def wait_ready(self, size: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._ready_count >= size, timeout)

    def spawn(self) -> None:
        """Start one worker; it is ready once it says so, within ``START_TIMEOUT``."""
        parent_end, child_end = self._context.Pipe()
        owner = self._owner
        proc = self._context.Process(
            target=worker_main,
            args=(child_end, owner.matcher.ruleset, owner.timeout, owner.memory_mb, owner.soft_timer, os.getpid()),
            name="extract-worker",
            daemon=True,
        )
        proc.start()
        child_end.close()
        self._all.append(_Worker(proc, parent_end, deadline=time.monotonic() + START_TIMEOUT))

    def started(self, worker: _Worker) -> None:
        worker.ready, worker.deadline = True, None
        with self._lock:
            self._start_failures = 0
        self.publish()

    def start_failed(self) -> None:
        with self._lock:
            self._start_failures += 1
            if self._start_failures >= START_FAILURES:
                self.broken = True

    def unbreak(self) -> None:
        with self._lock:
            self.broken = False
            self._start_failures = 0

    def discard(self, worker: _Worker) -> None:
        """Kill and forget one worker."""
        if worker in self._all:
            self._all.remove(worker)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5.0)
        worker.conn.close()
        self.publish()

    def publish(self) -> None:
        pids = [w.process.pid for w in self._all if w.process.pid is not None]
        ready = sum(1 for w in self._all if w.ready)
        with self._changed:
            self._pids, self._ready_count = pids, ready
            self._changed.notify_all()

    def stop(self) -> None:
        for worker in list(self._all):
            if not worker.ready:
                self.discard(worker)  # still starting: nothing to finish
        for worker in self._all:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(pickle.dumps(None))
        end = time.monotonic() + 2.0
        for worker in self._all:
            worker.process.join(max(0.0, end - time.monotonic()))
        for worker in list(self._all):
            self.discard(worker)


class Pool:
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
        self._waiting: collections.deque[_Task] = collections.deque()  #: manager thread only
        self._workers = _Workers(owner, self._lock)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="extract-pool", daemon=True)
        self._thread.start()

    # -- called from any thread --

    def submit(self, job: ExtractJob) -> ExtractFuture:
        future = ExtractFuture()
        with self._lock:
            if self._closing:
                raise RuntimeError("extractor is closed")
            if self._workers.broken:
                future.set_exception(BrokenProcessPool("extraction workers fail to start"))
                return future
            self._submitted.append(_Task(job, future))
        self._wake()
        return future

    def pids(self) -> list[int]:
        return self._workers.pids()

    def prestart(self) -> None:
        with self._lock:
            self._prestart = True
        self._wake()

    def wait_ready(self, timeout: float) -> bool:
        return self._workers.wait_ready(self._size, timeout)

    def unbreak(self) -> None:
        self._workers.unbreak()

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
            self._workers.stop()
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
        if self._workers.broken:
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
            self._workers.spawn()
        self._workers.publish()

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
                    self._workers.discard(worker)
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
            self._workers.started(worker)
            return
        task, worker.task, worker.deadline = worker.task, None, None
        if task is None:
            return
        if kind == "done":
            task.future.set_result(value)
        elif kind == "failed":
            task.future.set_exception(value)
        elif kind == "over":
            self._workers.discard(worker)  # it exits by itself; its state is not trusted meanwhile
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
        self._workers.discard(worker)
        task = worker.task
        if task is not None:
            self._over(task, CRASHED)
            logger.warning("extraction worker pid=%s died (exit code %s)", worker.process.pid, code)
        elif not worker.ready:
            logger.warning("extraction worker pid=%s failed to start (exit code %s)", worker.process.pid, code)
            self._workers.start_failed()

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
            self._workers.discard(worker)
            if task is not None:
                self._over(task, TIMEOUT)
            else:
                logger.warning("extraction worker pid=%s did not start in %g s", worker.process.pid, START_TIMEOUT)
                self._workers.start_failed()
