"""Maintenance never backs up a damaged store nor rotates a good backup away because of a bad
one; `restore` brings a backup back; the service reports a failed maintenance.

Stores are damaged on purpose: after every connection is closed and the WAL checkpointed,
pages in the middle of the file (or the schema page after the header) are overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tracker.cli.main
from tracker.core.config import Config, MaintenanceConfig
from tracker.core.errors import AlreadyRunning, CorruptDatabase, StorageError
from tracker.core.types import Article, TextSource
from tracker.service import maintenance
from tracker.service.maintenance import backups_of, maintain, quick_check, restore
from tracker.service.metrics import Metrics
from tracker.service.scheduler import maintenance_job
from tracker.store.database import Store, make_engine
from tracker.store.lock import ServiceLock, lock_path
from tracker.store.migrate import upgrade

NOW = datetime(2026, 3, 1, 3, 30, tzinfo=UTC)
WORDS = ("harbour", "council", "ferry", "budget", "vote", "tariff", "plant", "union", "tram", "bridge", "market")


def config_for(db: Path, backups: int = 3) -> Config:
    return Config(
        database_url=f"sqlite:///{db}",
        feeds=(),
        rule_paths=(),
        maintenance=MaintenanceConfig(backups=backups, keep_raw_html_days=30, keep_fetch_log_days=90),
    )


def add_items(store: Store, start: int, n: int, title: str = "before") -> None:
    rng = random.Random(start)
    for i in range(start, start + n):
        text = " ".join(rng.choice(WORDS) for _ in range(400)) + f" item {i}."
        article = Article(url=f"https://news.example/{i}", title=title, text=text, text_source=TextSource.EXTRACTED)
        store.add_item(article, [], feed_id=None, raw_html=f"<html><p>{text}</p></html>".encode())


def new_store(tmp_path: Path, items: int = 200, backups: int = 3) -> tuple[Config, Store]:
    db = tmp_path / "data" / "tracker.sqlite"
    config = config_for(db, backups)
    engine = make_engine(config.database_url)
    upgrade(engine)
    store = Store(engine)
    add_items(store, 1, items)
    return config, store


def db_file(config: Config) -> Path:
    path = maintenance.sqlite_file(config.database_url)
    assert path is not None
    return path


def close(store: Store) -> None:
    """Close every connection and fold the WAL into the file, as a stopped service leaves it."""
    store.engine.dispose()
    con = sqlite3.connect(db_file_of(store))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def db_file_of(store: Store) -> Path:
    assert store.engine.url.database is not None
    return Path(store.engine.url.database)


def damage_pages(path: Path) -> None:
    """Overwrite a run of pages in the middle of the file with garbage."""
    size = path.stat().st_size
    page = 4096
    assert size > 20 * page, size  # enough pages that the middle is data, not the header
    rng = random.Random(7)
    with open(path, "r+b") as fh:
        fh.seek((size // 2) // page * page)
        fh.write(bytes(rng.randrange(256) for _ in range(4 * page)))


def damage_schema(path: Path) -> None:
    """Overwrite the schema page after the 100-byte header: SQLite cannot even open it."""
    with open(path, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xde\xad\xbe\xef" * 200)


def digests(paths: Iterable[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def integrity(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def good_backups(config: Config, store: Store, days: int) -> list[Path]:
    for day in range(days):
        maintain(config, store, NOW + timedelta(days=day))
    folder = db_file(config).parent / "backups"
    found = backups_of(folder, "tracker")
    assert found and all(quick_check(p, snapshot=True) == [] for p in found)
    return found


# -- maintenance ---------------------------------------------------------------------------------


def test_a_good_store_is_backed_up_checked_and_rotated(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, backups=3)
    folder = db_file(config).parent / "backups"
    folder.mkdir(parents=True)
    (folder / "tracker-archive-20200101T000000Z.sqlite").write_bytes(b"another database's backup")
    (folder / "notes.txt").write_text("kept", encoding="utf-8")
    reports = [maintain(config, store, NOW + timedelta(days=d)) for d in range(5)]

    kept = backups_of(folder, "tracker")
    assert [p.name for p in kept] == [f"tracker-202603{d:02d}T033000Z.sqlite" for d in (3, 4, 5)]
    assert reports[-1].backup == kept[-1]
    assert reports[-1].backups_removed == (folder / "tracker-20260302T033000Z.sqlite",)
    for path in kept:
        assert quick_check(path, snapshot=True) == [] and integrity(path) == "ok"
        assert path.read_bytes()[18:20] == b"\x01\x01"  # rollback journal: one self-contained file
        assert rows(path, "SELECT count(*) FROM items") == [(200,)]
    assert (folder / "tracker-archive-20200101T000000Z.sqlite").exists() and (folder / "notes.txt").exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("tracker-2")) == [
        "notes.txt",
        "tracker-archive-20200101T000000Z.sqlite",
    ]  # no .partial, -wal or -journal left behind


def test_a_corrupt_store_is_refused_and_every_backup_kept(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, backups=3)
    before = good_backups(config, store, 3)
    saved = digests(before)
    close(store)
    damage_pages(db_file(config))

    with pytest.raises(CorruptDatabase) as caught:
        maintain(config, store, NOW + timedelta(days=10))
    message = str(caught.value)
    assert "\n" not in message
    assert f"store {db_file(config)} failed PRAGMA quick_check (" in message
    assert message.endswith("no backup made, existing backups kept; restore one with `tracker restore BACKUP`")
    assert caught.value.problems and caught.value.path == str(db_file(config))
    folder = db_file(config).parent / "backups"
    assert digests(backups_of(folder, "tracker")) == saved  # all there, byte for byte
    assert sorted(p.name for p in folder.iterdir()) == sorted(saved)  # nothing new, not even a partial


def test_a_store_that_cannot_even_be_opened_is_refused(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, backups=2)
    saved = digests(good_backups(config, store, 2))
    close(store)
    damage_schema(db_file(config))
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(db_file(config)).execute("SELECT count(*) FROM items")  # what the service would hit

    for attempt in (
        lambda: maintain(config, store, NOW + timedelta(days=10)),
        lambda: maintenance.maintain_store(config, NOW + timedelta(days=10)),
    ):
        with pytest.raises(CorruptDatabase, match=r"failed PRAGMA quick_check \(.*malformed.*\); no backup made"):
            attempt()
    assert digests((db_file(config).parent / "backups").iterdir()) == saved


def test_damage_that_quick_check_lists_is_refused_too(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, items=30, backups=2)
    saved = digests(good_backups(config, store, 1))
    close(store)
    with open(db_file(config), "r+b") as fh:  # the header's count of free pages: a lie
        fh.seek(36)
        fh.write((99_999).to_bytes(4, "big"))
    problems = quick_check(db_file(config))
    assert problems and "freelist" in problems[0].lower() and "\n" not in problems[0]
    with pytest.raises(CorruptDatabase, match="freelist"):
        maintain(config, store, NOW + timedelta(days=3))
    assert digests((db_file(config).parent / "backups").iterdir()) == saved


def test_a_bad_new_backup_is_deleted_and_the_old_ones_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = new_store(tmp_path, backups=2)
    saved = digests(good_backups(config, store, 2))
    real_copy = maintenance._copy

    def copy_then_damage(source: Path, target: Path, **kwargs: Any) -> None:
        real_copy(source, target, **kwargs)
        damage_pages(target)

    monkeypatch.setattr(maintenance, "_copy", copy_then_damage)
    with pytest.raises(CorruptDatabase, match=r"the new backup of .* failed PRAGMA quick_check .* it was deleted, "):
        maintain(config, store, NOW + timedelta(days=10))
    assert digests((db_file(config).parent / "backups").iterdir()) == saved


def test_rotation_only_deletes_backups_older_than_the_new_one(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, items=30, backups=2)
    folder = db_file(config).parent / "backups"
    good_backups(config, store, 2)  # 1 and 2 March
    future = folder / "tracker-20990101T000000Z.sqlite"  # a clock that was wrong once
    future.write_bytes((folder / "tracker-20260302T033000Z.sqlite").read_bytes())
    report = maintain(config, store, NOW + timedelta(days=5))
    assert [p.name for p in backups_of(folder, "tracker")] == [report.backup.name, future.name]  # type: ignore[union-attr]


def test_the_check_does_not_block_a_writer(tmp_path: Path) -> None:
    """quick_check runs beside the service: a writer holding a write transaction is not
    refused, and the check of a live store leaves no extra files behind."""
    config, store = new_store(tmp_path, items=20)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET title = 'writing' WHERE id = 1")
        assert quick_check(db_file(config)) == []
    assert maintain(config, store, NOW).backup is not None


# -- restore ---------------------------------------------------------------------------------------


def test_restore_brings_the_old_rows_back(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, items=50)
    (backup,) = good_backups(config, store, 1)
    add_items(store, 1000, 20, title="after")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM items WHERE id <= 10")
    store.engine.dispose()
    db = db_file(config)
    # A writer that died without closing leaves its last transaction in the -wal file.
    crash = (
        f"import os, sqlite3; c = sqlite3.connect({str(db)!r}); c.execute('PRAGMA wal_autocheckpoint=0'); "
        "c.execute(\"UPDATE items SET title = 'last words'\"); c.commit(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", crash], check=True)
    assert db.with_name(db.name + "-wal").stat().st_size > 0

    report = restore(config, backup, now=NOW + timedelta(days=3))

    assert report.database == db and report.backup == backup and report.items == 50
    assert report.set_aside == db.with_name("tracker.sqlite.before-restore-20260304T033000Z")
    assert rows(db, "SELECT count(*), min(id), max(id), min(title), max(title) FROM items") == [
        (50, 1, 50, "before", "before")
    ]
    assert integrity(db) == "ok"
    assert not db.with_name(db.name + ".restoring").exists()
    # The store as it was, its last transaction included, is kept beside it.
    assert rows(report.set_aside, "SELECT count(*), min(title), max(title) FROM items") == [
        (60, "last words", "last words")
    ]
    # The tracker carries on with the restored store.
    engine = make_engine(config.database_url)
    upgrade(engine)
    add_items(Store(engine), 2000, 1)
    engine.dispose()
    assert rows(db, "SELECT count(*) FROM items") == [(51,)]


def test_restore_into_an_empty_place(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, items=10)
    (backup,) = good_backups(config, store, 1)
    elsewhere = config_for(tmp_path / "new" / "store.sqlite")
    report = restore(elsewhere, backup)
    assert report.set_aside is None and report.items == 10 and integrity(db_file(elsewhere)) == "ok"


def test_restore_refuses_a_corrupt_backup_and_touches_nothing(tmp_path: Path) -> None:
    config, store = new_store(tmp_path)
    (backup,) = good_backups(config, store, 1)
    close(store)
    damage_pages(backup)
    db = db_file(config)
    before = digests([db])
    with pytest.raises(CorruptDatabase) as caught:
        restore(config, backup)
    assert str(caught.value).startswith(f"backup {backup} failed PRAGMA quick_check (")
    assert str(caught.value).endswith(f"nothing restored, {db} unchanged")
    assert digests([db]) == before
    assert sorted(p.name for p in db.parent.iterdir() if p.is_file()) == ["tracker.sqlite", "tracker.sqlite.lock"]


def test_restore_refuses_a_file_that_is_not_a_tracker_store(tmp_path: Path) -> None:
    config, _ = new_store(tmp_path, items=5)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    with pytest.raises(CorruptDatabase, match="not a tracker store"):
        restore(config, other)
    (tmp_path / "text.sqlite").write_text("shopping list\n" * 500, encoding="utf-8")
    with pytest.raises(CorruptDatabase, match=r"failed PRAGMA quick_check \(file is not a database\)"):
        restore(config, tmp_path / "text.sqlite")
    with pytest.raises(FileNotFoundError):
        restore(config, tmp_path / "missing.sqlite")
    with pytest.raises(StorageError, match="is the store itself"):
        restore(config, db_file(config))


def test_restore_refuses_while_the_service_runs(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, items=20)
    (backup,) = good_backups(config, store, 1)
    add_items(store, 500, 5)
    store.engine.dispose()
    lock = lock_path(config.database_url)
    assert lock is not None
    with ServiceLock(lock), pytest.raises(AlreadyRunning, match=rf"pid {os.getpid()} .*stop it before restoring"):
        restore(config, backup)
    assert rows(db_file(config), "SELECT count(*) FROM items") == [(25,)]
    assert restore(config, backup).items == 20  # once it stopped


def test_restore_refuses_postgresql_in_one_line(tmp_path: Path) -> None:
    backup = tmp_path / "b.sqlite"
    backup.write_bytes(b"")
    with pytest.raises(StorageError) as caught:
        restore("postgresql+psycopg://analyst:s3cr3tpw@db.example:5432/news", backup)
    message = str(caught.value)
    assert "pg_restore" in message and "SQLite" in message and "\n" not in message and "s3cr3tpw" not in message


# -- the service's report ----------------------------------------------------------------------


def health_over_http(metrics: Metrics) -> tuple[str, dict[str, Any]]:
    app = metrics.app()
    status: list[str] = []
    body = b"".join(app({"PATH_INFO": "/healthz", "REQUEST_METHOD": "GET"}, lambda s, h: status.append(s)))
    return status[0], json.loads(body)


def metrics_text(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_health_and_metrics_report_a_failed_maintenance() -> None:
    metrics = Metrics(timedelta(minutes=5))
    metrics.idle(datetime.now(UTC))
    code, body = health_over_http(metrics)
    assert code == "200 OK" and body["status"] == "ok"
    assert body["maintenance"] == {
        "status": "not-run",
        "at": None,
        "error": None,
        "last_success_at": None,
        "backup": None,
    }
    text = metrics_text(metrics)
    assert 'tracker_maintenance_failures_total{kind="integrity"} 0.0' in text
    assert "tracker_maintenance_failing 0.0" in text

    ok_at = datetime(2026, 3, 1, 3, 30, 5, tzinfo=UTC)
    metrics.maintenance_succeeded(ok_at, "/data/backups/tracker-20260301T033000Z.sqlite")
    failed_at = ok_at + timedelta(days=1)
    error = "store /data/tracker.sqlite failed PRAGMA quick_check (database disk image is malformed); no backup made"
    metrics.maintenance_failed(failed_at, error, "integrity")

    code, body = health_over_http(metrics)
    assert code == "200 OK"  # polling works: supervisors leave it running
    assert body["status"] == "degraded"
    assert body["maintenance"] == {
        "status": "failed",
        "at": failed_at.isoformat(),
        "error": error,
        "last_success_at": ok_at.isoformat(),
        "backup": None,
    }
    text = metrics_text(metrics)
    assert 'tracker_maintenance_failures_total{kind="integrity"} 1.0' in text
    assert 'tracker_maintenance_failures_total{kind="error"} 0.0' in text
    assert "tracker_maintenance_failing 1.0" in text
    assert "tracker_maintenance_runs_total 2.0" in text
    assert f"tracker_maintenance_last_success_timestamp_seconds {ok_at.timestamp():.9e}" in text
    for kept in ("tracker_cycles_total", "tracker_items_stored_total", "tracker_last_cycle_timestamp_seconds"):
        assert kept in text

    # Stale polling still wins: 503.
    healthy, body = metrics.health(datetime.now(UTC) + timedelta(hours=1))
    assert healthy is False and body["status"] == "stale" and body["maintenance"]["status"] == "failed"

    metrics.maintenance_succeeded(failed_at + timedelta(days=1), None)
    code, body = health_over_http(metrics)
    assert code == "200 OK" and body["status"] == "ok" and body["maintenance"]["error"] is None
    assert "tracker_maintenance_failing 0.0" in metrics_text(metrics)


def test_the_service_job_reports_a_corrupt_store_and_keeps_going(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, backups=2)
    metrics = Metrics(timedelta(minutes=5))
    metrics.idle(datetime.now(UTC))
    report = maintenance_job(config, store, metrics)
    assert report is not None and report.backup is not None
    assert health_over_http(metrics)[1]["maintenance"]["backup"] == str(report.backup)

    close(store)
    damage_pages(db_file(config))
    assert maintenance_job(config, store, metrics) is None  # no exception: the scheduler goes on
    code, body = health_over_http(metrics)
    assert code == "200 OK" and body["status"] == "degraded"
    assert "failed PRAGMA quick_check" in body["maintenance"]["error"]
    assert 'tracker_maintenance_failures_total{kind="integrity"} 1.0' in metrics_text(metrics)
    assert backups_of(db_file(config).parent / "backups", "tracker") == [report.backup]


def test_the_service_job_reports_other_failures_as_errors(tmp_path: Path) -> None:
    config, store = new_store(tmp_path, items=5)
    (db_file(config).parent / "backups").write_text("a file where the folder goes", encoding="utf-8")
    metrics = Metrics(timedelta(minutes=5))
    assert maintenance_job(config, store, metrics) is None
    body = metrics.health(datetime.now(UTC))[1]
    assert body["maintenance"]["status"] == "failed"
    assert body["maintenance"]["error"].startswith(f"could not write a backup of {db_file(config)} in ")
    assert "FileExistsError" in body["maintenance"]["error"] and "existing backups kept" in body["maintenance"]["error"]
    assert 'tracker_maintenance_failures_total{kind="error"} 1.0' in metrics_text(metrics)


# -- through the command ------------------------------------------------------------------------


def tracker_cmd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("TRACKER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], capture_output=True, text=True, env=env, input=stdin, timeout=300
    )


def write_config(tmp_path: Path, backups: int = 3) -> Path:
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///data/tracker.sqlite"\n\n[maintenance]\nbackups = {backups}\n', encoding="utf-8"
    )
    return cfg


def cli_store(tmp_path: Path, items: int = 200) -> tuple[Path, Config, Store]:
    cfg = write_config(tmp_path)
    db = tmp_path / "data" / "tracker.sqlite"
    config = config_for(db)
    engine = make_engine(config.database_url)
    upgrade(engine)
    store = Store(engine)
    add_items(store, 1, items)
    return cfg, config, store


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("damage", [damage_pages, damage_schema], ids=["pages", "schema"])
def test_cli_maintain_refuses_a_corrupt_store(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    cfg, config, store = cli_store(tmp_path)
    store.engine.dispose()
    folder = tmp_path / "data" / "backups"
    first = tracker_cmd("--config", str(cfg), "maintain")
    assert first.returncode == 0, first.stderr
    saved = digests(folder.iterdir())
    assert len(saved) == 1
    close(store)
    damage(db_file(config))

    line = one_error_line(tracker_cmd("--config", str(cfg), "maintain"))
    assert "tracker.sqlite" in line and ("quick_check" in line or "corrupt" in line), line
    assert "tracker restore" in line
    assert digests(folder.iterdir()) == saved


@pytest.mark.slow
@pytest.mark.skipif("restore" not in tracker.cli.main.cli.commands, reason="`tracker restore` is not in the CLI yet")
def test_cli_restore(tmp_path: Path) -> None:
    cfg, config, store = cli_store(tmp_path, items=40)
    (backup,) = good_backups(replace(config, maintenance=replace(config.maintenance, backups=3)), store, 1)
    add_items(store, 100, 5)
    close(store)
    db = db_file(config)

    refused = tracker_cmd("--config", str(cfg), "restore", str(backup), stdin="n\n")
    assert refused.returncode == 1 and rows(db, "SELECT count(*) FROM items") == [(45,)]

    done = tracker_cmd("--config", str(cfg), "restore", str(backup), "--yes")
    assert done.returncode == 0, done.stderr
    assert f"restored {db} from {backup}" in done.stdout
    assert "previous store kept as " in done.stdout and "items: 40" in done.stdout
    assert rows(db, "SELECT count(*) FROM items") == [(40,)] and integrity(db) == "ok"
    (aside,) = db.parent.glob("tracker.sqlite.before-restore-*")
    assert rows(aside, "SELECT count(*) FROM items") == [(45,)]

    damage_pages(backup)
    line = one_error_line(tracker_cmd("--config", str(cfg), "restore", str(backup), "--yes"))
    assert "failed PRAGMA quick_check" in line and "nothing restored" in line
    assert rows(db, "SELECT count(*) FROM items") == [(40,)]

    missing = tracker_cmd("--config", str(cfg), "restore", str(tmp_path / "nope.sqlite"), "--yes")
    assert missing.returncode == 2, missing.stderr
