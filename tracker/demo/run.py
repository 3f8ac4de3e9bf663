"""`tracker demo`: poll the built-in news site into a fresh SQLite database and report."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from tracker.analysis.tables import cycle_summary
from tracker.core import resources
from tracker.core.config import Config, FetchConfig
from tracker.core.errors import ConfigError
from tracker.core.types import FeedSource
from tracker.demo.site import OUTLETS, NewsSite
from tracker.service.app import open_store, poll_once
from tracker.store.storydb import list_stories

EXAMPLE_SQL = "SELECT rule_id, title, source FROM tagged_items ORDER BY rule_id, published_at DESC;"


def demo_config(db_path: Path, site: NewsSite) -> Config:
    return Config(
        database_url=f"sqlite:///{db_path}",
        feeds=tuple(FeedSource(url=url, name=name) for name, url in site.feed_urls().items()),
        rule_paths=(resources.bundled("rules"),),
        fetch=FetchConfig(),
    )


def run_demo(
    db_path: Path,
    *,
    echo: Callable[[str], None] = print,
    reads_it: Callable[[], bool] | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> Path:
    """Run the demo into a fresh database at ``db_path``; returns the path.

    An existing file there is replaced only when it is an earlier demo's store (every feed
    on the loopback address): a real store is never overwritten. ``reads_it`` says whether
    a command run next in this directory opens ``db_path`` without flags (else the
    suggested commands carry ``--db``)."""
    db_path = db_path.resolve()
    _refuse_to_replace(db_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    t0 = time.monotonic()
    with NewsSite(recent_to=datetime.now(UTC)) as site:
        what = f"{len(site.articles)} articles from {len(OUTLETS)} outlets, {len(site.feed_urls())} feeds"
        echo(f"Demo news site running at {site.base_url} ({what})")
        config = demo_config(db_path, site)
        store = open_store(config)
        report = poll_once(config, store, progress=progress)
        store.mark_demo([f.url for f in config.feeds])
    echo("")
    echo(cycle_summary(report))
    stories = list_stories(store.engine, limit=None)
    grouped = [s for s in stories if s["n_items"] > 1]
    echo(f"\n{report.new_items} articles make {len(stories)} stories; {len(grouped)} were reported more than once:")
    for story in grouped:
        echo(f"  [{story['story_id']}] {story['n_items']} articles: {story['headline']}")
    echo("")
    echo(f"Store: {db_path}  (demo finished in {time.monotonic() - t0:.1f}s)")
    flag = "" if reads_it is None or reads_it() else f'--db "{db_path}" '
    first = grouped[0]["story_id"] if grouped else (stories[0]["story_id"] if stories else 1)
    echo("Next, from this directory:")
    for command, what in (
        ("stories", "the stories, newest first"),
        (f"story {first}", "one story: its articles, outlets and timeline"),
        ('search "joint venture"', "full-text search over every article"),
        ("explain 1", "why an article was tagged"),
        ("report --out report.html", "the analysts' HTML report" + _needs("matplotlib", "report")),
        ("web", "browse the store in Datasette" + _needs("datasette", "web")),
        ("status", "how polling went"),
    ):
        echo(f"  tracker {flag}{command:<28} # {what}")
    echo(f'  sqlite3 "{db_path}" "{EXAMPLE_SQL}"')
    return db_path


def _refuse_to_replace(db_path: Path) -> None:
    """Stop when ``db_path`` holds a store that is not an earlier demo's."""
    import sqlite3

    if not db_path.exists():
        return
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            urls = [row[0] for row in con.execute("SELECT url FROM feeds")]
        finally:
            con.close()
    except sqlite3.Error:
        urls = ["?"]
    if any(urlsplit(url).hostname not in ("127.0.0.1", "localhost") for url in urls):
        raise ConfigError(f"{db_path} is a store with real feeds, not a demo's; pass --db to write the demo elsewhere")


def _needs(module: str, extra: str) -> str:
    """What to install first, when an optional extra is missing."""
    from importlib.util import find_spec

    return "" if find_spec(module) is not None else f" (first: {resources.install_hint(extra)})"
