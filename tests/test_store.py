"""The schema and the store: migrations, the tagged_items view, idempotent writes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from tracker.core.errors import SchemaVersionError
from tracker.core.types import Article, FeedSource, Match, TextSource
from tracker.store.database import Store, make_engine
from tracker.store.migrate import current_revision, head_revision, upgrade
from tracker.store.models import Base


def article(url: str = "https://news.example/a/1", **kw: object) -> Article:
    base = dict(
        url=url,
        title="Ford weighs a partner",
        text="Body text. " * 40,
        text_source=TextSource.EXTRACTED,
        published=datetime(2026, 2, 1, 12, tzinfo=UTC),
    )
    base.update(kw)
    return Article(**base)  # type: ignore[arg-type]


def test_upgrade_creates_schema_matching_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    before, after = upgrade(engine)
    assert before is None and after == head_revision()
    # The full-text index (a virtual table and its shadow tables) is not a model.
    opts = {"include_name": lambda name, kind, _parent: not (kind == "table" and str(name).startswith("items_fts"))}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    assert diff == []
    # Running it again is a no-op.
    assert upgrade(engine) == (head_revision(), head_revision())


def test_head_constant_is_alembics_head() -> None:
    """``migrate.HEAD`` lets a database at the newest schema open without importing alembic;
    a new migration must move it."""
    from tracker.store.migrate import HEAD

    assert head_revision() == HEAD


def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    upgrade(make_engine(f"sqlite:///{db}"))
    code = (
        "import sys\n"
        "from tracker.store.database import make_engine\n"
        "from tracker.store.migrate import upgrade, HEAD\n"
        f"assert upgrade(make_engine('sqlite:///{db}')) == (HEAD, HEAD)\n"
        "assert not [m for m in sys.modules if m.startswith('alembic')], 'alembic imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sqlite_pragmas(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(SchemaVersionError, match="newer tracker"):
        upgrade(engine)
    assert current_revision(engine) == "9999_future"


def test_add_item_once_and_link_second_source(store: Store) -> None:
    feeds = store.sync_feeds([FeedSource("https://a.example/feed", "A"), FeedSource("https://b.example/rss", "B")])
    a, b = feeds
    match = Match(
        rule="ford-china-jv", score=2.5, terms=("Ford", "BYD"), snippets=("Ford and BYD ...",), rule_hash="abc"
    )
    item_id, created = store.add_item(
        article(), [match], feed_id=a.id, entry_url="https://news.example/a/1", guid="g1", raw_html=b"<html>page</html>"
    )
    assert created
    again, created_again = store.add_item(article(), [match], feed_id=b.id, guid="g2")
    assert (again, created_again) == (item_id, False)
    assert store.count("items") == 1
    assert store.count("item_sources") == 2
    assert store.count("matches") == 1
    assert store.raw_html(item_id) == b"<html>page</html>"
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM tagged_items")).mappings().one()
    assert row["item_id"] == item_id
    assert row["source"] == "A"  # the feed it was first seen in
    assert row["rule_id"] == "ford-china-jv"
    assert row["score"] == 2.5
    assert json.loads(row["terms"]) == ["Ford", "BYD"]
    assert str(row["published_at"]).startswith("2026-02-01 12:00")


def test_lookup_by_item_url_entry_url_and_guid(store: Store) -> None:
    (feed,) = store.sync_feeds([FeedSource("https://a.example/feed", "A")])
    item_id, _ = store.add_item(
        article("https://news.example/canonical"),
        [],
        feed_id=feed.id,
        entry_url="https://news.example/entry?id=1",
        guid="guid-1",
    )
    found, guids = store.lookup(
        feed.id,
        ["https://news.example/canonical", "https://news.example/entry?id=1", "https://news.example/other"],
        ["guid-1", "guid-2"],
    )
    assert found == {"https://news.example/canonical": item_id, "https://news.example/entry?id=1": item_id}
    assert guids == {"guid-1"}


def test_sync_feeds_follows_config(store: Store) -> None:
    store.sync_feeds([FeedSource("https://a.example/feed", "A"), FeedSource("https://b.example/feed", "B")])
    active = store.sync_feeds([FeedSource("https://b.example/feed", "B renamed")])
    assert [(f.url, f.name) for f in active] == [("https://b.example/feed", "B renamed")]
    health = {r["url"]: r for r in store.feed_health()}
    assert health["https://a.example/feed"]["active"] is False


def test_naive_datetimes_are_rejected(store: Store) -> None:
    (feed,) = store.sync_feeds([FeedSource("https://a.example/feed", "A")])
    with pytest.raises(Exception, match="naive datetime"):
        store.add_item(article(published=datetime(2026, 1, 1)), [], feed_id=feed.id)
    assert store.count("items") == 0


def test_upgrade_from_first_revision_keeps_data(tmp_path: Path) -> None:
    from alembic import command

    from tracker.store.migrate import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO feeds (id, url, name, active, consecutive_failures, created_at) "
                "VALUES (1, 'https://a.example/feed', 'A', 1, 0, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO items (id, url, title, text, text_source, text_hash, fetched_at) "
                "VALUES (1, 'https://a.example/1', 'Old item', 'Body', 'extracted', 'h', "
                "'2026-01-01 00:00:00')"
            )
        )
        conn.execute(text("INSERT INTO item_sources (item_id, feed_id, seen_at) VALUES (1, 1, '2026-01-01 00:00:00')"))
        conn.execute(
            text(
                "INSERT INTO matches (item_id, rule_id, score, terms, snippet, rule_hash, matched_at) "
                "VALUES (1, 'ford-china-jv', 1.5, '[]', 's', 'old', '2026-01-01 00:00:00')"
            )
        )
    assert current_revision(engine) == "0001"
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    store = Store(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT item_id, rule_id, source, score FROM tagged_items")).one()
    assert tuple(row) == (1, "ford-china-jv", "A", 1.5)
    assert store.rule_states() == {}
    detail = store.item_detail(1)
    assert detail is not None and detail["matches"][0]["evidence"] == []


def test_same_text_under_another_url_is_one_item(store: Store) -> None:
    a, b = store.sync_feeds([FeedSource("https://a.example/feed", "A"), FeedSource("https://b.example/feed", "B")])
    body = "The council approved the tram extension after a long debate. " * 12
    first, created = store.add_item(article("https://a.example/tram", text=body), [], feed_id=a.id)
    # A mirror with other spacing and case is the same text; a short summary never merges.
    copy, copy_created = store.add_item(
        article("https://b.example/x", text=body.upper().replace(" ", "  ")), [], feed_id=b.id
    )
    assert created and not copy_created and copy == first
    short1, _ = store.add_item(article("https://a.example/s1", text="Short summary."), [], feed_id=a.id)
    short2, created2 = store.add_item(article("https://a.example/s2", text="Short summary."), [], feed_id=a.id)
    assert created2 and short1 != short2
    assert store.count("items") == 3 and store.count("item_sources") == 4
