"""`tracker demo`: poll the built-in news site into a fresh SQLite database and report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .. import resources
from ..app import open_store, poll_once
from ..config import Config, FetchConfig
from ..report import cycle_summary
from ..storydb import list_stories
from ..types import FeedSource
from .site import NewsSite

EXAMPLE_SQL = "SELECT rule_id, title, source FROM tagged_items ORDER BY rule_id, published_at DESC;"
STORIES_SQL = "SELECT story_id, n_items, topics, headline FROM stories ORDER BY first_seen DESC;"


def demo_config(db_path: Path, site: NewsSite) -> Config:
    return Config(
        database_url=f"sqlite:///{db_path}",
        feeds=tuple(FeedSource(url=url, name=name) for name, url in site.feed_urls().items()),
        rule_paths=(resources.bundled("rules"),),
        fetch=FetchConfig(),
    )


def run_demo(db_path: Path, *, echo: Callable[[str], None] = print) -> Path:
    """Run the demo into a fresh database at ``db_path``; returns the path."""
    db_path = db_path.resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    t0 = time.monotonic()
    with NewsSite() as site:
        echo(f"Demo news site running at {site.base_url} ({len(site.articles)} articles, 3 feeds)")
        config = demo_config(db_path, site)
        store = open_store(config)
        report = poll_once(config, store)
    echo("")
    echo(cycle_summary(report))
    stories = list_stories(store.engine, limit=None)
    grouped = [s for s in stories if s["n_items"] > 1]
    echo(f"\n{report.new_items} articles make {len(stories)} stories; {len(grouped)} were reported more than once:")
    for story in grouped:
        echo(f"  [{story['story_id']}] {story['n_items']} articles: {story['headline']}")
    echo("")
    echo(f"Database: {db_path}  (demo finished in {time.monotonic() - t0:.1f}s)")
    echo("Try:")
    echo(f'  sqlite3 "{db_path}" "{EXAMPLE_SQL}"')
    echo(f'  sqlite3 "{db_path}" "{STORIES_SQL}"')
    echo(
        f"  python -c \"import sqlite3; [print(*r, sep=' | ') for r in "
        f"sqlite3.connect(r'{db_path}').execute('{EXAMPLE_SQL}')]\""
    )
    return db_path
