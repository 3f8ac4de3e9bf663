"""The daily maintenance job (also `tracker maintain`): drop stored pages and fetch logs past
their retention, let SQLite re-plan its queries, and take an online backup with rotation;
and ``restore``, which puts a backup back in place of the store (`tracker restore`).

Maintenance never copies a damaged store over the good backups:

- before anything is written, the live SQLite file must pass ``PRAGMA quick_check``. When it
  fails, or cannot even be opened ("database disk image is malformed", "file is not a
  database"), maintenance refuses with ``CorruptDatabase``: no retention, no backup, no
  rotation, and the message says so in one line;
- the backup uses SQLite's online backup API, so it is consistent while the service writes.
  It is written to a temporary name, checked with ``PRAGMA quick_check`` and only then
  renamed; a copy that fails the check is deleted and the old backups are kept;
- rotation runs only after a new backup passed that check, and deletes only backups older
  than it, never more than leave ``[maintenance] backups`` of them.

``quick_check`` is the O(N) subset of ``integrity_check`` (it does not compare index entries
with their rows); on a store of a few GB it reads the whole file once, about as long as the
backup itself takes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import delete, text, update
from sqlalchemy.engine import make_url

from tracker.core.config import Config
from tracker.core.errors import AlreadyRunning, CorruptDatabase, StorageError
from tracker.store.database import Store, utcnow
from tracker.store.lock import ServiceLock, holder_of, lock_path
from tracker.store.models import FetchLog, Item

logger = logging.getLogger(__name__)

#: a problem reported by quick_check is cut to this many characters in messages
_PROBLEM_CHARS = 200
#: SQLite primary result codes that mean "this file is damaged" (rather than busy, missing, ...)
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    pages_dropped: int
    fetch_logs_deleted: int
    backup: Path | None  #: the new backup, checked with PRAGMA quick_check
    backups_removed: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    database: Path  #: the store, now the backup's content
    backup: Path  #: where it came from
    set_aside: Path | None  #: the store as it was before, kept under this name (None: there was none)
    items: int  #: items in the restored store
    revision: str | None  #: its schema revision; an older one is upgraded by the next command


def maintain_store(config: Config, now: datetime | None = None) -> MaintenanceReport:
    """`tracker maintain`: check the configured store, then open it (migrating it to the
    current schema) and ``maintain`` it. A damaged SQLite file is refused before anything,
    migrations included, writes to it."""
    from tracker.service.app import open_store

    database = sqlite_file(config.database_url)
    if database is not None and database.exists():
        check_store(database)
    return maintain(config, open_store(config), now or utcnow(), checked=True)


def maintain(config: Config, store: Store, now: datetime, *, checked: bool = False) -> MaintenanceReport:
    """Retention, ``PRAGMA optimize`` and a checked, rotated backup (SQLite).

    Raises ``CorruptDatabase`` when the store fails ``PRAGMA quick_check`` (nothing is done
    then) or when the new backup does (it is deleted; retention has been applied, the old
    backups are kept). ``checked``: the caller has just run ``check_store``."""
    m = config.maintenance
    database = sqlite_file(config.database_url)
    if database is not None and not checked:
        check_store(database)
    pages = logs = 0
    with store.engine.begin() as conn:
        if m.keep_raw_html_days > 0:
            pages = conn.execute(
                update(Item)
                .where(Item.raw_html.is_not(None), Item.fetched_at < now - timedelta(days=m.keep_raw_html_days))
                .values(raw_html=None)
            ).rowcount
        if m.keep_fetch_log_days > 0:
            logs = conn.execute(
                delete(FetchLog).where(FetchLog.started_at < now - timedelta(days=m.keep_fetch_log_days))
            ).rowcount
    backup: Path | None = None
    removed: tuple[Path, ...] = ()
    if database is not None:
        with store.engine.connect() as conn:
            conn.execute(text("PRAGMA optimize"))
        if m.backups > 0:
            folder = backup_folder(config, database)
            backup = _backup(database, folder, now)
            removed = _rotate(folder, database.stem, backup, m.backups)
    logger.info("maintenance: %d stored pages dropped, %d fetch logs deleted, backup %s", pages, logs, backup or "none")
    return MaintenanceReport(pages, logs, backup, removed)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def backup_folder(config: Config, database: Path) -> Path:
    """Where maintenance writes the backups of ``database``: ``[maintenance] backup_dir``, else
    ``backups/`` beside it."""
    return Path(config.maintenance.backup_dir) if config.maintenance.backup_dir else database.parent / "backups"


def backups_of(folder: Path, stem: str) -> list[Path]:
    """The backups maintenance wrote for the database named ``stem``, oldest first."""
    pattern = re.compile(re.escape(stem) + r"-\d{8}T\d{6}Z\.sqlite")
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file()), key=lambda p: p.name)


# -- checking ----------------------------------------------------------------------------------


def quick_check(path: Path, *, snapshot: bool = False) -> list[str]:
    """What ``PRAGMA quick_check`` finds wrong with the SQLite file at ``path``: [] when it
    passes. A file SQLite cannot read as a database at all (a damaged header or schema) is
    one problem, with SQLite's message.

    ``snapshot``: the file is a closed copy (a backup) that nobody writes: it is read
    without locks and without creating -wal/-shm files beside it.

    Raises ``StorageError`` when the file cannot be checked for another reason (missing,
    locked, unreadable)."""
    if not path.is_file():
        raise StorageError(f"{path}: no such SQLite file")
    try:
        with _open(path, snapshot=snapshot) as con:
            rows = con.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if _is_corruption(exc):
            return [_one_line(str(exc))]
        raise StorageError(f"{path}: could not be checked: {_one_line(str(exc))}") from exc
    problems = [_one_line(str(r[0])) for r in rows]
    return [] if problems == ["ok"] else problems


def check_store(database: Path) -> None:
    """Raise ``CorruptDatabase`` when the live store fails ``PRAGMA quick_check``."""
    try:
        problems = quick_check(database)
    except StorageError as exc:
        raise StorageError(f"{exc}; no backup made, existing backups kept") from exc
    if problems:
        raise CorruptDatabase(
            f"store {database} failed PRAGMA quick_check ({_summary(problems)}); no backup made, existing backups "
            "kept; restore one with `tracker restore BACKUP`",
            path=str(database),
            problems=problems,
        )


def _open(path: Path, *, snapshot: bool) -> contextlib.closing[sqlite3.Connection]:
    mode = "ro&immutable=1" if snapshot else "rw"
    con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode={mode}", uri=True, timeout=30.0)
    return contextlib.closing(con)


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _CORRUPT_CODES
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message or "corrupt" in message


def _one_line(message: str) -> str:
    return " ".join(message.split())[:_PROBLEM_CHARS]


def _summary(problems: list[str]) -> str:
    more = len(problems) - 1
    return problems[0] + (f"; and {more} more problem{'s' if more > 1 else ''}" if more else "")


# -- backup and rotation -------------------------------------------------------------------------


def _backup(database: Path, folder: Path, now: datetime) -> Path:
    """A checked online backup of ``database`` in ``folder``; raises ``CorruptDatabase`` (and
    leaves nothing behind) when the copy fails ``PRAGMA quick_check``."""
    target = folder / f"{database.stem}-{now:{_STAMP}}.sqlite"
    partial = target.with_suffix(".partial")
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _copy(database, partial, source_snapshot=False, journal_mode="DELETE")
        except (OSError, sqlite3.Error) as exc:  # a full disk, a folder that cannot be written
            raise StorageError(
                f"could not write a backup of {database} in {folder}: {type(exc).__name__}: {_one_line(str(exc))}; "
                "existing backups kept"
            ) from exc
        problems = quick_check(partial, snapshot=True)
        if problems:
            raise CorruptDatabase(
                f"the new backup of {database} failed PRAGMA quick_check ({_summary(problems)}); it was deleted, "
                "existing backups kept",
                path=str(target),
                problems=problems,
            )
        _fsync(partial)
        partial.replace(target)
        _fsync(folder)
    finally:
        _remove(_with_sidecars(partial))
    return target


def _rotate(folder: Path, stem: str, newest: Path, keep: int) -> tuple[Path, ...]:
    """Delete the oldest backups so that ``keep`` remain, only ever ones older than ``newest``
    (the backup just written and checked)."""
    backups = backups_of(folder, stem)
    older = [p for p in backups if p.name < newest.name]
    doomed = tuple(older[: max(0, len(backups) - keep)])
    for path in doomed:
        path.unlink()
    return doomed


def _copy(source: Path, target: Path, *, source_snapshot: bool, journal_mode: str) -> None:
    """Copy the SQLite database ``source`` into a new file ``target`` with the online backup API."""
    for path in _with_sidecars(target):
        path.unlink(missing_ok=True)
    with _open(source, snapshot=source_snapshot) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute(f"PRAGMA journal_mode={journal_mode}")


def _remove(paths: list[Path]) -> None:
    """Delete what is there of ``paths``, as far as possible (cleaning up after a failure must
    not hide it)."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _with_sidecars(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- restore ----------------------------------------------------------------------------------


def restore(target: Config | str, backup: Path, *, now: datetime | None = None) -> RestoreReport:
    """Put the SQLite ``backup`` in place of the store of ``target`` (a config or database URL).

    1. Refuses (``StorageError``) a PostgreSQL store — that is pg_dump/pg_restore's job — and
       (``AlreadyRunning``) while a `tracker run` holds the store's lock file. The lock is
       held for the whole restore, so no service starts in between. Other commands that
       write (`tracker poll --once`, `tracker maintain`) must not run meanwhile.
    2. Refuses (``CorruptDatabase``) a backup that fails ``PRAGMA quick_check`` or is not a
       tracker store, or (``SchemaVersionError``) one written by a newer tracker. Nothing is
       touched then.
    3. Copies the backup with the SQLite online backup API to ``<db>.restoring`` beside the
       store and checks the copy.
    4. Renames the current store to ``<db>.before-restore-<UTC time>``, with its -wal (the
       last transactions written to it stay with it; its -shm is deleted, SQLite rebuilds it),
       and renames the copy into place.
    5. Checks the restored store with ``PRAGMA quick_check``.
    """
    url = target.database_url if isinstance(target, Config) else target
    database = sqlite_file(url)
    if database is None:
        backend = make_url(url).get_backend_name()
        if backend == "sqlite":
            raise StorageError("an in-memory SQLite database has no file to restore into")
        raise StorageError(
            f"restore works on SQLite stores only; for {backend}, restore a pg_dump of the database with pg_restore"
        )
    backup = Path(backup)
    if not backup.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such backup file", str(backup))
    if database.exists() and backup.resolve() == database.resolve():
        raise StorageError(f"{backup} is the store itself; name a backup")
    stamp = f"{(now or utcnow()):{_STAMP}}"
    with _service_lock(url, database):
        problems = quick_check(backup, snapshot=True)
        if problems:
            raise CorruptDatabase(
                f"backup {backup} failed PRAGMA quick_check ({_summary(problems)}); nothing restored, "
                f"{database} unchanged",
                path=str(backup),
                problems=problems,
            )
        _check_is_store(backup, database)
        staging = database.with_name(database.name + ".restoring")
        set_aside: Path | None = None
        try:
            _copy(backup, staging, source_snapshot=True, journal_mode="WAL")
            problems = quick_check(staging)
            if problems:
                raise CorruptDatabase(
                    f"the copy of {backup} failed PRAGMA quick_check ({_summary(problems)}); nothing restored, "
                    f"{database} unchanged",
                    path=str(staging),
                    problems=problems,
                )
            _fsync(staging)
            set_aside = _set_aside(database, stamp)
            staging.replace(database)
            _fsync(database.parent)
        finally:
            _remove(_with_sidecars(staging))
        problems = quick_check(database)
        if problems:  # pragma: no cover - the same bytes passed a moment ago
            raise CorruptDatabase(
                f"the restored store {database} failed PRAGMA quick_check ({_summary(problems)}); "
                f"the previous one is {set_aside}",
                path=str(database),
                problems=problems,
            )
        with _open(database, snapshot=False) as con:
            items = int(con.execute("SELECT count(*) FROM items").fetchone()[0])
            revision = _revision(con)
    logger.info("restored %s from %s (previous store kept as %s)", database, backup, set_aside or "none")
    return RestoreReport(database, backup, set_aside, items, revision)


@contextlib.contextmanager
def _service_lock(url: str, database: Path) -> Iterator[None]:
    path = lock_path(url)
    assert path is not None  # a SQLite file
    try:
        with ServiceLock(path):
            yield
    except AlreadyRunning:
        holder = holder_of(path) or {}
        raise AlreadyRunning(
            f"`tracker run` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}) is using {database}; "
            "stop it before restoring; nothing restored"
        ) from None


def _check_is_store(backup: Path, database: Path) -> None:
    """The backup is a tracker store whose schema this tracker knows."""
    from tracker.core.errors import SchemaVersionError
    from tracker.store.migrate import alembic_config, head_revision

    with _open(backup, snapshot=True) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = _revision(con) if "alembic_version" in tables else None
    if "items" not in tables or revision is None:
        raise CorruptDatabase(
            f"backup {backup} is an SQLite file but not a tracker store (no items or schema revision); "
            f"nothing restored, {database} unchanged",
            path=str(backup),
        )
    from alembic.script import ScriptDirectory

    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        raise SchemaVersionError(
            f"backup {backup} is at schema revision {revision!r}, which this tracker does not know (newest known: "
            f"{head_revision()!r}); it was written by a newer tracker; nothing restored"
        ) from None


def _revision(con: sqlite3.Connection) -> str | None:
    row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def _set_aside(database: Path, stamp: str) -> Path | None:
    """Rename the current store (and its -wal, -journal) out of the way; None when there is none."""
    if not database.exists():
        for path in _with_sidecars(database)[1:]:
            path.unlink(missing_ok=True)  # stale: they belong to no database
        return None
    aside = database.with_name(f"{database.name}.before-restore-{stamp}")
    n = 1
    while any(p.exists() for p in _with_sidecars(aside)):
        aside = database.with_name(f"{database.name}.before-restore-{stamp}-{n}")
        n += 1
    database.replace(aside)
    for suffix in ("-wal", "-journal"):
        side = database.with_name(database.name + suffix)
        if side.exists():
            side.replace(aside.with_name(aside.name + suffix))
    database.with_name(database.name + "-shm").unlink(missing_ok=True)
    return aside
