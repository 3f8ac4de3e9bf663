"""What every part of the store shares: the engine, the clock, the hot path's prepared
statements, dialect-specific inserts, and write transactions that retry while the
database is locked (``StoreBase``, the base of ``Store``'s parts).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from tracker.core.errors import StorageError
from tracker.store.models import Item, ItemSource, RuleMatch

# The store logs under its facade's module name, as it did before it was split in parts.
logger = logging.getLogger("tracker.store.database")

#: seconds a write keeps retrying while the database is locked
LOCK_PATIENCE = 120.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class StoreBase:
    """The engine and the plumbing that the store's parts (feeds, items, queries) write through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._statements: dict[str, Any] = {}

    def _statement(self, name: str) -> Any:
        """The hot path's statements, built once per store (SQLAlchemy then reuses their compiled
        form and cache key instead of building a statement for every article)."""
        stmt = self._statements.get(name)
        if stmt is None:
            stmt = self._statements[name] = self._build(name)
        return stmt

    def _build(self, name: str) -> Any:
        if name == "item_by_url":
            return select(Item.id).where(Item.url == bindparam("b_url"))
        if name == "item_by_hash":
            return select(Item.id).where(Item.text_hash == bindparam("b_hash")).order_by(Item.id).limit(1)
        if name == "insert_item":
            return self._insert(Item.__table__).on_conflict_do_nothing(index_elements=["url"]).returning(Item.id)
        if name == "insert_source":
            return self._insert(ItemSource.__table__).on_conflict_do_nothing()
        if name == "insert_matches":
            return self._insert(RuleMatch.__table__)
        raise KeyError(name)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _insert(self, table: Any) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql  # only a PostgreSQL store loads its dialect

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def _begin(self) -> Any:
        return _wrapped(self.engine.begin())

    def _writes(self) -> Iterator[_Attempt]:
        """Attempts at one write transaction: ``for attempt in self._writes(): with attempt
        as conn: ...``. A transaction that finds the database locked (SQLite: another
        writer; PostgreSQL: a deadlock) is rolled back and run again after a growing,
        jittered pause, for up to ``LOCK_PATIENCE`` seconds, so no write is dropped."""
        delay = 0.05
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            attempt = _Attempt(self.engine, retry=time.monotonic() < deadline)
            yield attempt
            if attempt.done:
                return
            logger.info("database is locked (%s); retrying in %.2fs", attempt.error, delay)
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)


def _rollback(conn: Connection) -> None:
    """Undo a batch's open transaction; a connection that is already broken is just closed."""
    try:
        if conn.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("ROLLBACK")
        else:
            conn.rollback()
    except Exception:
        logger.debug("rollback of a failed batch", exc_info=True)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("database is locked", "database is busy", "deadlock detected"))


class _Attempt:
    """One try of a write transaction (see ``Store._writes``)."""

    def __init__(self, engine: Engine, *, retry: bool) -> None:
        self._cm = engine.begin()
        self._retry = retry
        self.done = False
        self.error = ""

    def __enter__(self) -> Connection:
        try:
            return self._cm.__enter__()
        except OperationalError as exc:
            raise StorageError(f"database error: {exc.orig}") from exc

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        try:
            self._cm.__exit__(kind, exc, tb)
        except OperationalError as err:  # the commit itself: the body may have returned already
            raise StorageError(f"database error: {err.orig}") from err
        if exc is None:
            self.done = True
            return False
        if isinstance(exc, OperationalError) and self._retry and _is_lock_error(exc):
            self.error = str(exc.orig)
            return True
        if isinstance(exc, OperationalError):
            raise StorageError(f"database error: {exc.orig}") from exc
        return False


class _wrapped:
    """Context manager turning SQLAlchemy OperationalError into StorageError."""

    def __init__(self, cm: Any) -> None:
        self.cm = cm

    def __enter__(self) -> Connection:
        try:
            return self.cm.__enter__()  # type: ignore[no-any-return]
        except OperationalError as exc:
            raise StorageError(f"database error: {exc.orig}") from exc

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self.cm.__exit__(*exc)
        except OperationalError as err:
            raise StorageError(f"database error: {err.orig}") from err
