"""How the store grows per fetched article and per day, with retention, at a stated feed load.

Simulates DAYS days of polling FEEDS feeds that publish PER_DAY new articles a day each,
polled once per new entry (the scheduler's ``entries_per_poll = 1``), on a simulated clock.
Every article goes through the store's own write path (``Store.add_item`` with its matches,
source link and story placement, the page kept compressed for re-extraction; one
``fetch_log`` row per poll through ``Store.record_fetches``), and at the end of each day
``maintain`` runs with the given retention: stored pages older than ``--keep-html`` days
are dropped (their text stays), fetch logs older than ``--keep-log`` days deleted.

Fetching and extraction are not repeated for every article (they cost CPU, not storage):
each article is one of a pool of real news pages (../shared/corpus/html, else the demo
site's pages), extracted once with the code `tracker poll` uses, and made unique by a
line of its own, so that no article is taken for an already stored one.

The size is the database file after a WAL checkpoint; freed pages are reused by later
inserts, so the file stops growing by the pages' share once pages start to be dropped.

    python bench/retention_growth.py                          # 200 feeds x 20 a day, 45 days
    python bench/retention_growth.py --days 100 --every 10    # past the fetch-log retention too
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sqlite3
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tracker.store.feeds  # noqa: E402
import tracker.store.items  # noqa: E402
import tracker.store.queries  # noqa: E402
from tracker.core.config import Config, MaintenanceConfig  # noqa: E402
from tracker.core.types import Article, FeedSource, FetchStatus, Match, TextSource  # noqa: E402
from tracker.extraction.extract import ExtractJob, build_article  # noqa: E402
from tracker.pipeline.grouping import StoryGrouper  # noqa: E402
from tracker.rules.matching import Matcher  # noqa: E402
from tracker.rules.ruleset import load_rules  # noqa: E402
from tracker.service.app import open_store  # noqa: E402
from tracker.service.maintenance import maintain  # noqa: E402
from tracker.store.database import FeedOutcome  # noqa: E402
from tracker.stories.signature import Signature, signature  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "html"
START = datetime(2026, 1, 1, tzinfo=UTC)
MB = 1e6


@dataclass(frozen=True)
class Page:
    html: bytes
    article: Article
    matches: list[Match]
    sig: Signature


# -- the pages -------------------------------------------------------------------------------


def _extract(args: tuple[str, bytes]) -> Article:
    url, html = args
    return build_article(ExtractJob(url=url, html=html, content_type="text/html"))


def load_pages(limit: int) -> tuple[str, list[tuple[str, bytes]]]:
    if (CORPUS / "ground_truth.json").exists():
        records = json.loads((CORPUS / "ground_truth.json").read_text(encoding="utf-8"))[:limit]
        return "real news pages (../shared/corpus/html)", [
            (r["url"], gzip.decompress((CORPUS / r["file"]).read_bytes())) for r in records
        ]
    from tracker.demo.site import article_page, load_articles

    articles = load_articles()
    base = "https://demo.example"
    return "the demo site's pages", [
        (f"{base}/articles/{a['slug']}.html", article_page(a, articles[:4], base).encode()) for a in articles[:limit]
    ]


def prepare_pages(raw: list[tuple[str, bytes]], matcher: Matcher) -> list[Page]:
    with ProcessPoolExecutor() as pool:
        articles = list(pool.map(_extract, raw, chunksize=8))
    pages = []
    for (_, html), article in zip(raw, articles, strict=True):
        if article.text_source is not TextSource.EXTRACTED:
            continue  # the pipeline keeps no page for these
        pages.append(
            Page(html, article, matcher.match(article.title, article.text), signature(article.title, article.text))
        )
    return pages


# -- the simulation -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class CachedZlib:
    """``zlib`` for the store, remembering what it compressed: the pool's pages recur, and
    compressing a 150 KB page takes 10 ms. The bytes stored are the same."""

    def __init__(self) -> None:
        self._done: dict[tuple[bytes, int], bytes] = {}

    def compress(self, data: bytes, level: int = -1) -> bytes:
        key = (data, level)
        if key not in self._done:
            self._done[key] = zlib.compress(data, level)
        return self._done[key]

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)


@contextmanager
def simulated(clock: Clock) -> Iterator[None]:
    """The store's parts stamp rows with ``utcnow`` (and compress pages with ``zlib``), each
    module with its own reference: make them the simulated clock (and the cached zlib)."""
    fakes = {"utcnow": clock, "zlib": CachedZlib()}
    parts = {
        tracker.store.feeds: ("utcnow",),
        tracker.store.items: ("utcnow", "zlib"),
        tracker.store.queries: ("utcnow", "zlib"),
    }
    saved = [(vars(module), {name: vars(module)[name] for name in names}) for module, names in parts.items()]
    for names, old in saved:
        names.update({name: fakes[name] for name in old})
    try:
        yield
    finally:
        for names, old in saved:
            names.update(old)


@dataclass
class DayRow:
    day: int
    items: int
    pages_kept: int
    fetch_logs: int
    file_bytes: int
    free_bytes: int
    seconds: float
    maintain_seconds: float


def measure(db: Path) -> tuple[int, int, int, int, int]:
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        items, kept = con.execute("SELECT count(*), count(raw_html) FROM items").fetchone()
        logs = con.execute("SELECT count(*) FROM fetch_log").fetchone()[0]
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0] * page_size
    finally:
        con.close()
    return items, kept, logs, db.stat().st_size, free


def breakdown(db: Path) -> list[tuple[str, int]]:
    """Bytes per table (its indexes and full-text shadow tables counted with it)."""
    con = sqlite3.connect(db)
    try:
        tables = {name: owner for name, owner in con.execute("SELECT name, tbl_name FROM sqlite_master")}
        sizes: dict[str, int] = {}
        for name, size in con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            owner = tables.get(name, name)
            for fts in ("items_fts", "search"):
                if owner.startswith(fts):
                    owner = owner.split("_data")[0].split("_idx")[0].split("_docsize")[0].split("_config")[0]
                    owner = owner.split("_content")[0]
            sizes[owner] = sizes.get(owner, 0) + int(size)
    finally:
        con.close()
    return sorted(sizes.items(), key=lambda kv: -kv[1])


def simulate(args: argparse.Namespace, pages: list[Page], db: Path) -> list[DayRow]:
    config = Config(
        database_url=f"sqlite:///{db}",
        feeds=tuple(FeedSource(url=f"https://feeds.example/{k}.xml", name=f"feed {k}") for k in range(args.feeds)),
        rule_paths=(REPO / "rules",),
        maintenance=MaintenanceConfig(
            keep_raw_html_days=args.keep_html, keep_fetch_log_days=args.keep_log, backups=args.backups
        ),
    )
    clock = Clock()
    rng = random.Random(11)
    rows = []
    with simulated(clock):
        store = open_store(config)
        feeds = store.sync_feeds(config.feeds)
        grouper = StoryGrouper(store)
        polls = args.per_day  # one poll per new entry
        step = timedelta(days=1) / polls
        for day in range(args.days):
            t0 = time.perf_counter()
            for poll in range(polls):
                clock.now = START + timedelta(days=day) + poll * step
                grouper.refresh(clock.now)
                outcomes = []
                for feed in feeds:
                    page = rng.choice(pages)
                    ref = f"{day}-{feed.id}-{poll}"
                    article = replace(
                        page.article,
                        url=f"https://news.example/{ref}",
                        text=f"{page.article.text}\n\nRef. {ref}.",
                        published=clock.now,
                    )
                    placement = grouper.place(page.sig, clock.now)
                    item_id, created = store.add_item(
                        article,
                        page.matches,
                        feed_id=feed.id,
                        entry_url=article.url,
                        guid=article.url,
                        raw_html=page.html,
                        story=placement,
                    )
                    if created:
                        grouper.placed(item_id, placement)
                    outcomes.append(
                        (
                            feed,
                            FeedOutcome(
                                status=FetchStatus.OK,
                                started_at=clock.now,
                                duration_ms=rng.randrange(50, 900),
                                next_poll_at=clock.now + step,
                                http_status=200,
                                size=rng.randrange(20_000, 80_000),
                                entries=20,
                                new_items=1,
                                publish_rate=float(args.per_day),
                                schedule_reason="rate",
                            ),
                        )
                    )
                store.record_fetches(outcomes)
            clock.now = START + timedelta(days=day + 1)
            t1 = time.perf_counter()
            maintain(config, store, clock.now)
            t2 = time.perf_counter()
            items, kept, logs, size, free = measure(db)
            rows.append(DayRow(day + 1, items, kept, logs, size, free, t1 - t0, t2 - t1))
            print(
                f"  day {day + 1}: {items} items, {size / MB:.0f} MB, {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
        store.engine.dispose()
    return rows


# -- the report ------------------------------------------------------------------------------


def main() -> None:
    defaults = MaintenanceConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--per-day", type=int, default=20, help="new articles a day per feed")
    ap.add_argument("--days", type=int, default=45)
    ap.add_argument(
        "--keep-html", type=int, default=defaults.keep_raw_html_days, help="[maintenance] keep_raw_html_days"
    )
    ap.add_argument(
        "--keep-log", type=int, default=defaults.keep_fetch_log_days, help="[maintenance] keep_fetch_log_days"
    )
    ap.add_argument("--backups", type=int, default=0, help="[maintenance] backups (default 0: not timed here)")
    ap.add_argument("--pages", type=int, default=690, help="size of the pool of pages")
    ap.add_argument("--every", type=int, default=5, help="a table row every this many days")
    ap.add_argument("--db", type=Path, help="keep the database here (default: a temporary directory)")
    args = ap.parse_args()

    matcher = Matcher(load_rules((REPO / "rules",)))
    source, raw = load_pages(args.pages)
    pages = prepare_pages(raw, matcher)
    html = sum(len(p.html) for p in pages) / len(pages)
    text = sum(len(p.article.text.encode()) for p in pages) / len(pages)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "growth.sqlite"
        t0 = time.perf_counter()
        rows = simulate(args, pages, db)
        wall = time.perf_counter() - t0
        parts = breakdown(db)

    per_day = args.feeds * args.per_day
    print(
        f"{args.feeds} feeds x {args.per_day} new articles a day = {per_day:,} articles a day, "
        f"{args.feeds * args.per_day:,} polls a day; {args.days} days simulated in {wall:.0f} s"
    )
    print(
        f"pages: {len(pages)} {source}, on average {html / 1e3:.0f} KB of HTML and {text / 1e3:.1f} KB of "
        f"extracted text; retention: pages {args.keep_html} days, fetch logs {args.keep_log} days"
    )
    print()
    print(
        "| day | items | pages kept | fetch log rows | file MB | of it free MB | growth MB/day | KB per item "
        "| maintain s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    shown = {1, args.days, args.keep_html, args.keep_html + 1} | set(range(args.every, args.days + 1, args.every))
    previous = 0
    for r in rows:
        growth = r.file_bytes - previous
        previous = r.file_bytes
        if r.day in shown:
            print(
                f"| {r.day} | {r.items:,} | {r.pages_kept:,} | {r.fetch_logs:,} | {r.file_bytes / MB:,.0f} | "
                f"{r.free_bytes / MB:,.0f} | {growth / MB:,.1f} | {r.file_bytes / r.items / 1e3:.1f} | "
                f"{r.maintain_seconds:.1f} |"
            )
    early = [r for r in rows if r.day <= args.keep_html]
    late = [r for r in rows if r.day > args.keep_html + 1]
    print()
    if len(early) >= 3:
        a, b = early[1], early[-1]
        rate = (b.file_bytes - a.file_bytes) / (b.day - a.day)
        print(
            f"while pages are kept (days {a.day}-{b.day}): {rate / MB:.1f} MB a day, "
            f"{rate / per_day / 1e3:.1f} KB per fetched article"
        )
    if len(late) >= 3:
        a, b = late[0], late[-1]
        rate = (b.file_bytes - a.file_bytes) / (b.day - a.day)
        print(
            f"once pages past retention are dropped (days {a.day}-{b.day}): {rate / MB:.1f} MB a day, "
            f"{rate / per_day / 1e3:.1f} KB per fetched article"
        )
    print()
    last = rows[-1]
    print(
        f"Where the bytes are on day {last.day} (each table with its indexes, the full-text index's shadow tables "
        f"as one; per item: over all {last.items:,} items, the {last.pages_kept:,} kept pages included):"
    )
    total = sum(size for _, size in parts)
    for name, size in parts:
        if size >= 1e5:
            count = last.fetch_logs if name == "fetch_log" else last.items
            unit = "row" if name == "fetch_log" else "item"
            print(f"  {name:20} {size / MB:10,.1f} MB  {size / total:6.1%}  {size / count:8,.0f} bytes per {unit}")


if __name__ == "__main__":
    main()
