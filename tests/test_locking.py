"""Writers retry on "database is locked" with backoff and never drop an item."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

import tracker.store.base as store_module
from tracker.core.errors import StorageError
from tracker.core.types import Article, TextSource
from tracker.store.database import Store, make_engine
from tracker.store.migrate import upgrade


def article(n: int) -> Article:
    return Article(
        url=f"https://news.example/{n}",
        title=f"Harbour board story {n}",
        text=f"The harbour board met for the {n}th time and approved the quay plan.",
        text_source=TextSource.FEED_SUMMARY,
    )


@pytest.fixture
def impatient(tmp_path: Path) -> tuple[Store, Path]:
    """A store whose SQLite connections do not wait for locks at all: every collision is a
    "database is locked" error, so the retry is what saves the write."""
    db = tmp_path / "t.sqlite"
    upgrade(make_engine(f"sqlite:///{db}"))
    return Store(make_engine(f"sqlite:///{db}", busy_timeout=0)), db


def hold_write_lock(db: Path, seconds: float) -> threading.Thread:
    ready = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(db, timeout=0, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE rule_state SET updated_at = updated_at")
        ready.set()
        time.sleep(seconds)
        con.execute("COMMIT")
        con.close()

    t = threading.Thread(target=hold)
    t.start()
    ready.wait(5)
    return t


def test_a_locked_database_delays_the_write_but_loses_nothing(
    impatient: tuple[Store, Path], caplog: pytest.LogCaptureFixture
) -> None:
    store, db = impatient
    holder = hold_write_lock(db, 1.0)
    t0 = time.monotonic()
    with caplog.at_level("INFO", logger="tracker.store.database"):
        _, created = store.add_item(article(1), [], feed_id=None)
    holder.join()
    assert created and time.monotonic() - t0 >= 0.9  # it waited for the other writer
    assert any("database is locked" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)
    assert store.count("items") == 1


def test_many_writers_on_an_impatient_database_store_every_item(impatient: tuple[Store, Path]) -> None:
    store, db = impatient
    errors: list[BaseException] = []

    def write(start: int) -> None:
        other = Store(make_engine(f"sqlite:///{db}", busy_timeout=0))
        try:
            for n in range(start, start + 25):
                other.add_item(article(n), [], feed_id=None)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i * 100,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count("items") == 100


def test_retrying_gives_up_after_its_patience(impatient: tuple[Store, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    store, db = impatient
    monkeypatch.setattr(store_module, "LOCK_PATIENCE", 0.3)
    holder = hold_write_lock(db, 2.0)
    with pytest.raises(StorageError, match="database is locked"):
        store.add_item(article(1), [], feed_id=None)
    holder.join()
    assert store.count("items") == 0
    store.add_item(article(1), [], feed_id=None)  # and works once the lock is gone
    assert store.count("items") == 1
