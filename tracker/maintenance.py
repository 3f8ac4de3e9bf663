"""The daily maintenance job (also `tracker maintain`): drop stored pages and fetch logs past
their retention, let SQLite re-plan its queries, and take an online backup with rotation.

The backup uses SQLite's online backup API, so it is consistent while the service writes;
it is written to a temporary name and renamed, so a half-written backup never counts.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, text, update
from sqlalchemy.engine import make_url

from .config import Config
from .models import FetchLog, Item
from .store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    pages_dropped: int
    fetch_logs_deleted: int
    backup: Path | None
    backups_removed: tuple[Path, ...]


def maintain(config: Config, store: Store, now: datetime) -> MaintenanceReport:
    m = config.maintenance
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
    database = _sqlite_file(config.database_url)
    backup: Path | None = None
    removed: tuple[Path, ...] = ()
    if database is not None:
        with store.engine.connect() as conn:
            conn.execute(text("PRAGMA optimize"))
        if m.backups > 0:
            folder = Path(m.backup_dir) if m.backup_dir else database.parent / "backups"
            backup = _backup(database, folder, now)
            removed = _rotate(folder, database.stem, m.backups)
    logger.info("maintenance: %d stored pages dropped, %d fetch logs deleted, backup %s", pages, logs, backup or "none")
    return MaintenanceReport(pages, logs, backup, removed)


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _backup(database: Path, folder: Path, now: datetime) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{database.stem}-{now:%Y%m%dT%H%M%SZ}.sqlite"
    partial = target.with_suffix(".partial")
    source = sqlite3.connect(database)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    partial.replace(target)
    return target


def _rotate(folder: Path, stem: str, keep: int) -> tuple[Path, ...]:
    backups = sorted(folder.glob(f"{stem}-*.sqlite"))
    old = tuple(backups[:-keep]) if len(backups) > keep else ()
    for path in old:
        path.unlink()
    return old
