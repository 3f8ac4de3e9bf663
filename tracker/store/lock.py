"""One `tracker run` per SQLite database: an advisory lock on a file beside it.

SQLite serializes writers but two services on one file would poll every feed twice and
fight over digests; PostgreSQL is the way to run several workers. The lock is released by
the kernel when the process dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from tracker.core.errors import AlreadyRunning


def worker_name() -> str:
    """A name for this process as the owner of leases and locks: host, process and a random
    part, so that it is unique per start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lock_path(database_url: str) -> Path | None:
    """The lock file of a SQLite database (None for other databases and in-memory ones)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).with_name(Path(url.database).name + ".lock")


class ServiceLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> ServiceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = holder_of(self.path) or {}
            handle.close()
            raise AlreadyRunning(
                f"another `tracker run` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"since {holder.get('since', '?')}) is using {self.path.with_suffix('')}; stop it first, "
                "or use PostgreSQL to run several workers"
            ) from None
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat()}, handle)
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def holder_of(path: Path) -> dict[str, Any] | None:
    """Who holds the lock (None when nobody does)."""
    try:
        with open(path, encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    return dict(json.loads(handle.read() or "{}"))
                except ValueError:
                    return {}
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
    except FileNotFoundError:
        return None
