"""Engine and connection set-up: ``make_engine`` (with the SQLite pragmas, set in a connect
listener: WAL, foreign keys, busy timeout) and ``describe_database_error`` for a database
that cannot be used.
"""

from __future__ import annotations

import sqlite3
import time
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, *, busy_timeout: float = 30.0, read_only: bool = False) -> Engine:
    """Engine for ``url``; creates the directory of a SQLite file and sets its pragmas.
    ``busy_timeout``: seconds SQLite waits for another writer before "database is locked".

    ``read_only``: for the commands that only read. Nothing is created, and every
    connection refuses writes (SQLite ``query_only``; a read-only transaction by default
    on PostgreSQL), so a read command cannot change a store even by mistake."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not read_only:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout})
        pragmas = partial(_sqlite_pragmas, busy_ms=int(busy_timeout * 1000), read_only=read_only)
        event.listen(engine, "connect", pragmas)
        return engine
    if read_only:
        return create_engine(url, pool_pre_ping=True, connect_args={"options": "-c default_transaction_read_only=on"})
    return create_engine(url, pool_pre_ping=True)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def describe_database_error(exc: BaseException, url: str | None) -> tuple[str, int]:
    """One line for a database that cannot be used, naming which (never its password), and
    the exit code: 2 when the configured thing is not a database at all, else 1."""
    orig = getattr(exc, "orig", None) or exc
    detail = " ".join(str(orig).split()) or type(orig).__name__
    where = "the database"
    backend = ""
    if url:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            where = f"SQLite database {parsed.database}"
        else:
            where = f"{backend} database at {parsed.host or 'localhost'}:{parsed.port or 'default port'}"
            if parsed.database:
                where += f"/{parsed.database}"
    lowered = detail.lower()
    if "can't load plugin" in lowered:
        return f"{redact_url(url)}: not a database URL the tracker knows (sqlite:///PATH or postgresql+psycopg://…)", 2
    if "file is not a database" in lowered:
        return f"{where}: not an SQLite database (file is not a database); check [database] url", 2
    if "malformed" in lowered or "corrupt" in lowered:
        return f"{where}: the file is corrupt ({detail[:200]}); restore a backup (tracker restore)", 1
    if backend and backend != "sqlite" and ("connect" in lowered or "refused" in lowered or "timeout" in lowered):
        return f"cannot connect to {where}: {detail[:200]}", 1
    return f"{where}: {type(orig).__name__}: {detail[:300]}", 1


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_ms: int = 30000, read_only: bool = False) -> None:
    cur = dbapi_conn.cursor()
    if read_only:
        cur.execute(f"PRAGMA busy_timeout={busy_ms:d}")
        cur.execute("PRAGMA query_only=ON")
        cur.close()
        return
    # Several processes opening a brand-new file at once: switching it to WAL can answer
    # "database is locked" at once, without the busy timeout; retry within that timeout.
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={busy_ms:d}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def redact_url(url: str | None) -> str:
    """A database URL fit for a message (no password)."""
    if not url:
        return "the database URL"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot read is shown as given
        return url
