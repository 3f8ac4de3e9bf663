"""Schema migrations (Alembic), run by `tracker init` and on service start.

``upgrade`` brings any database to the newest schema this code knows; ``check`` refuses a
database that a newer tracker has already migrated past what this code knows.

Every upgrade is one transaction, holding a migration lock (SQLite's write lock, a
PostgreSQL advisory lock) from its first statement: all the pending revisions and the
version row commit together, so a process killed at any point leaves the old schema
(SQLite rolls the unfinished transaction back when the database is next opened; PostgreSQL
when the connection drops). Processes that start together take turns on that lock: the
first migrates, the others wait, then find the schema current and change nothing.

On SQLite this needs a connection of its own: Python's sqlite3 module, in its default
(legacy) transaction mode, issues no BEGIN before DDL, so each CREATE or ALTER would commit
on its own. The migration connection turns the driver's transaction handling off and says
``BEGIN IMMEDIATE`` and ``COMMIT`` itself. It also has foreign-key enforcement off, as
SQLite's own recipe for schema changes asks (rebuilding a table must not cascade deletes
into its children), and checks the keys before it commits instead.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tracker.core import resources
from tracker.core.errors import SchemaVersionError, StorageError

# alembic (about a tenth of a second to import) is imported only when a schema is created or
# changed, or a revision this module does not know is met: opening a database already at
# ``HEAD`` reads its revision with one SELECT.
if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)


#: The newest revision in db/migrations (a test checks it against alembic's own head).
HEAD = "0011"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.bundled("migrations")))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s")
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


#: the PostgreSQL advisory lock key held while migrating (any constant unlikely to clash)
MIGRATION_LOCK = 0x6E657773  # "news"

#: seconds a process waits for another one's migration (or any other writer) on SQLite
MIGRATION_WAIT = 300.0
#: seconds of that wait before it is logged
_QUIET_WAIT = 1.0


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    """The schema revision alembic recorded, or None for a database it never touched."""
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:  # branches: this project has none, so let alembic say what it makes of it
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()
    return str(rows[0]) if rows else None


def check(engine: Engine) -> None:
    """Raise SchemaVersionError when the database is newer than this code."""
    _check_known(current_revision(engine))


def _check_known(current: str | None) -> None:
    if current is None or current == HEAD:
        return
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(current)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        raise SchemaVersionError(
            f"the database is at schema revision {current!r}, which this tracker does not know "
            f"(newest known: {head_revision()!r}); it was written by a newer tracker: upgrade the tracker"
        ) from None


def upgrade(engine: Engine, revision: str = "head", *, wait: float = MIGRATION_WAIT) -> tuple[str | None, str]:
    """Create or upgrade the schema to ``revision`` (default: the newest), atomically.

    Returns (revision before, revision after). ``wait``: seconds to wait on SQLite for
    another process holding the write lock (typically migrating the same database)."""
    seen = _first_read(engine, wait)
    _check_known(seen)
    if revision == "head" and seen == HEAD:
        return seen, HEAD  # the usual start: nothing to do, no lock taken, alembic not imported
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config()
    target_script = ScriptDirectory.from_config(cfg).get_revision(revision)
    assert target_script is not None
    target = target_script.revision
    if seen == target:
        return seen, target  # the usual start: nothing to do, and no lock taken
    try:
        with _migration_transaction(engine, wait) as conn:
            # Read again under the lock: another process may have migrated while this one waited.
            before = _revision(conn)
            _check_known(before)
            if before != seen:
                logger.info("another process upgraded the schema to %s while this one waited", before)
            if before != target:
                sqlite = conn.dialect.name == "sqlite"
                # Violations already there before the migration are not its doing (nor its business).
                violations = _foreign_key_violations(conn) if sqlite else Counter[tuple[str, str]]()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    _check_foreign_keys(conn, violations)
            after = _revision(conn)
    except StorageError:  # SchemaVersionError too
        raise
    except Exception as exc:
        raise StorageError(f"migration failed: {exc}") from exc
    assert after is not None
    if before != after:
        logger.info("schema upgraded from=%s to=%s", before or "(empty)", after)
    return before, after


def _busy(exc: OperationalError) -> bool:
    return str(getattr(exc.orig, "sqlite_errorname", "")).startswith("SQLITE_BUSY")


def _first_read(engine: Engine, wait: float) -> str | None:
    """The current revision, read on the engine's first connection. Processes opening a fresh
    SQLite file at once race to switch it to WAL (the engine does on connect), and SQLite
    answers the losers "database is locked" at once, without waiting: they try again."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return current_revision(engine)
        except OperationalError as exc:
            if engine.dialect.name != "sqlite" or not _busy(exc) or time.monotonic() >= deadline:
                raise
            logger.debug("database busy on connect, trying again: %s", exc.orig)
            time.sleep(0.05)


@contextmanager
def _migration_transaction(engine: Engine, wait: float) -> Iterator[Connection]:
    """A connection inside the one transaction of a migration, holding the migration lock;
    committed when the block ends, rolled back when it raises."""
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                # Workers starting together: one migrates, the others wait, then find it done.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            yield conn
        return
    with _sqlite_connection(engine) as (conn, raw):
        _begin_immediate(conn, wait)
        try:
            yield conn
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
        conn.commit()  # SQLAlchemy's bookkeeping: the driver has nothing left to commit


def _in_memory(engine: Engine) -> bool:
    database = engine.url.database
    return not database or database == ":memory:" or engine.url.query.get("mode") == "memory"


@contextmanager
def _sqlite_connection(engine: Engine) -> Iterator[tuple[Connection, sqlite3.Connection]]:
    """A SQLite connection whose driver neither begins nor commits on its own (we do), with
    foreign-key enforcement off: a connection of its own to the same file, or for an
    in-memory database the engine's own one, put back as it was afterwards."""
    own = None if _in_memory(engine) else create_engine(engine.url, poolclass=NullPool)
    try:
        with (own or engine).connect() as conn:
            raw = cast(sqlite3.Connection, conn.connection.dbapi_connection)
            isolation = raw.isolation_level
            foreign_keys = raw.execute("PRAGMA foreign_keys").fetchone()[0]
            busy = raw.execute("PRAGMA busy_timeout").fetchone()[0]
            raw.isolation_level = None  # the legacy mode's implicit BEGIN (never before DDL): off
            if sys.version_info >= (3, 12):
                autocommit = raw.autocommit
                if autocommit is not sqlite3.LEGACY_TRANSACTION_CONTROL:
                    raw.autocommit = True
            raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set before it
            try:
                yield conn, raw
            finally:
                if own is None:
                    raw.execute(f"PRAGMA busy_timeout={int(busy):d}")
                    raw.execute(f"PRAGMA foreign_keys={int(foreign_keys):d}")
                    raw.isolation_level = isolation
                    if sys.version_info >= (3, 12):
                        raw.autocommit = autocommit
    finally:
        if own is not None:
            own.dispose()


def _begin_immediate(conn: Connection, wait: float) -> None:
    """BEGIN IMMEDIATE: the write lock now, so every statement of the migration, and the
    version read that decides what to run, sees one state that no one else changes."""
    deadline = time.monotonic() + wait
    patience = min(_QUIET_WAIT, wait)
    while True:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={max(1, int(patience * 1000)):d}")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            left = deadline - time.monotonic()
            if not _busy(exc) or left <= 0:
                raise
            logger.info("another process is writing to (or migrating) the database: waiting up to %.0fs", left)
            patience = left


def _foreign_key_violations(conn: Connection) -> Counter[tuple[str, str]]:
    rows = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    return Counter((str(row[0]), str(row[2])) for row in rows)


def _check_foreign_keys(conn: Connection, before: Counter[tuple[str, str]]) -> None:
    """Refuse (roll back) a migration that left rows pointing at rows that are gone."""
    new = _foreign_key_violations(conn) - before
    if new:
        broken = ", ".join(f"{n} in {table} (to {parent})" for (table, parent), n in sorted(new.items()))
        raise StorageError(f"migration failed: it would leave broken foreign keys: {broken}")
