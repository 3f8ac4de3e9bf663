"""Analysts' queries on a large store: full-text search and "topic X, last week".

Builds a SQLite store of N synthetic items (default 1,000,000) through the real schema
(migrations, FTS5 triggers included): ~120-word texts from a news-like vocabulary, a year
of publication dates, about 30 % of the items tagged with one or two of five topics, and
stories of one to four items. Then times each query many times and prints a table with the
median and 95th percentile, and the database size per item.

Usage: python bench/bench_store.py [--items 1000000] [--db PATH] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from tracker.analysis.search import search  # noqa: E402
from tracker.store.database import Store, make_engine  # noqa: E402
from tracker.store.migrate import upgrade  # noqa: E402

TOPICS = ("ford-china-jv", "trump-xi-meeting", "gm-opposition", "industry-opposition", "chinese-automakers-us-entry")
#: English words by frequency (wordfreq, a dependency), sampled with Zipf-like weights so
#: that a query word is as rare in these texts as in news: "tariff" is not in every item
VOCABULARY = 30_000
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def fmt(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def build(db: Path, n: int, seed: int = 7) -> None:
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    rng = random.Random(seed)
    from wordfreq import top_n_list

    words_by_rank = top_n_list("en", VOCABULARY)
    weights = [1.0 / (rank + 10) for rank in range(len(words_by_rank))]
    cumulative = list(itertools.accumulate(weights))

    def draw(k: int) -> list[str]:
        return rng.choices(words_by_rank, cum_weights=cumulative, k=k)

    feed_sql = (
        "INSERT INTO feeds (id, url, name, active, consecutive_failures, created_at) VALUES (1, :u, 'bench', 1, 0, :t)"
    )
    item_sql = text(
        "INSERT INTO items (id, url, guid, title, published_at, text, text_source, text_hash, host, fetched_at,"
        " story_id, story_role, story_at, entities) VALUES (:id, :url, :url, :title, :pub, :text, 'extracted',"
        " :hash, :host, :pub, :story, :role, :pub, :entities)"
    )
    match_sql = text(
        "INSERT INTO matches (item_id, rule_id, score, terms, snippet, rule_hash, matched_at, item_at)"
        " VALUES (:id, :rule, :score, '[]', :snippet, 'bench', :pub, :pub)"
    )
    source_sql = text(
        "INSERT INTO item_sources (item_id, feed_id, entry_url, guid, seen_at) VALUES (:id, 1, :url, :url, :pub)"
    )
    with engine.begin() as conn:
        conn.execute(text(feed_sql), {"u": "https://bench.example/feed.xml", "t": fmt(NOW)})
    batch = 10_000
    story = 0
    t0 = time.perf_counter()
    for start in range(1, n + 1, batch):
        items, matches, sources = [], [], []
        for i in range(start, min(start + batch, n + 1)):
            pub = NOW - timedelta(seconds=rng.randrange(365 * 86400))
            words = draw(120)
            title = " ".join(draw(9)).capitalize()
            if rng.random() < 0.6 or story == 0:
                story, role = i, "new"
            else:
                role = "update"
            url = f"https://outlet{i % 400}.example/news/{i}"
            items.append(
                {
                    "id": i,
                    "url": url,
                    "title": title,
                    "pub": fmt(pub),
                    "text": " ".join(words),
                    "hash": f"{i:064x}",
                    "host": f"outlet{i % 400}.example",
                    "story": story,
                    "role": role,
                    "entities": "ford: Ford; byd: BYD" if "car" in words else None,
                }
            )
            sources.append({"id": i, "url": url, "pub": fmt(pub)})
            if rng.random() < 0.3:
                for rule in rng.sample(TOPICS, rng.choice((1, 1, 2))):
                    matches.append({"id": i, "rule": rule, "score": rng.random(), "snippet": title, "pub": fmt(pub)})
        with engine.begin() as conn:
            conn.execute(item_sql, items)
            conn.execute(source_sql, sources)
            if matches:
                conn.execute(match_sql, matches)
        done = min(start + batch - 1, n)
        if done % 100_000 == 0 or done == n:
            print(f"  {done:,} items, {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    with engine.begin() as conn:
        conn.execute(text("PRAGMA optimize"))
        conn.execute(text("ANALYZE"))
    engine.dispose()


def timed(fn, repeat: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    times, rows = [], 0
    fn()  # warm the cache once
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the database (with --db, reuse it if it exists)")
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "bench.sqlite"
    t0 = time.perf_counter()
    if not db.exists():
        build(db, args.items)
    built = time.perf_counter() - t0
    store = Store(make_engine(f"sqlite:///{db}"))
    upgrade(store.engine)  # a kept database from an older schema gets the newer indexes
    week_ago = NOW - timedelta(days=7)

    def fts(q: str) -> object:
        return lambda: len(search(store, q, limit=20))

    def topic_week(rule: str) -> object:
        sql = text(
            "SELECT i.id, i.title, i.published_at, m.score FROM matches m JOIN items i ON i.id = m.item_id"
            " WHERE m.rule_id = :rule AND m.item_at >= :since ORDER BY m.item_at DESC LIMIT 50"
        )

        def run() -> int:
            with store.engine.connect() as conn:
                return len(conn.execute(sql, {"rule": rule, "since": fmt(week_ago)}).all())

        return run

    def topic_week_count(rule: str) -> object:
        sql = text("SELECT count(*) FROM matches m WHERE m.rule_id = :rule AND m.item_at >= :since")

        def run() -> int:
            with store.engine.connect() as conn:
                return int(conn.execute(sql, {"rule": rule, "since": fmt(week_ago)}).scalar_one())

        return run

    cases = [
        ("full text: one word (tariff), top 20 by relevance", fts("tariff")),
        ('full text: phrase ("united states"), top 20', fts('"united states"')),
        ('full text: phrase of the two commonest words ("of the"), top 20', fts('"of the"')),
        ("full text: two words (union AND workers), top 20", fts("union AND workers")),
        ("full text: prefix (regul*), top 20", fts("regul*")),
        ("topic gm-opposition, last week, newest 50", topic_week("gm-opposition")),
        ("topic ford-china-jv, last week, count", topic_week_count("ford-china-jv")),
    ]
    rows = [(name, *timed(fn, args.repeat)) for name, fn in cases]  # type: ignore[arg-type]
    with store.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
    size = db.stat().st_size + sum(p.stat().st_size for p in db.parent.glob(db.name + "-*"))
    print(f"{n:,} items; database {size / 1e9:.2f} GB, {size / n:,.0f} bytes per item; built in {built:.0f}s")
    print("| query | median ms | p95 ms | rows |\n| --- | ---: | ---: | ---: |")
    for name, median, p95, count in rows:
        print(f"| {name} | {median:.1f} | {p95:.1f} | {count} |")
    if args.keep:
        print(f"kept {db}", file=sys.stderr)
        tmp.cleanup = lambda: None  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
