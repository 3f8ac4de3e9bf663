"""How much the store grows per fetched byte and per stored article, printed as a table.

Polls a site once into a fresh SQLite database and compares the database's growth (after
a WAL checkpoint, against a freshly migrated empty store) with the bytes the site served
(feeds and pages, uncompressed). Cases: the demo site (small pages), and, when
../shared/corpus is present, 200 real news pages of the extraction corpus behind one feed.

    python bench/store_growth.py
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import HTTPServer, Response  # noqa: E402
from tracker.core.config import Config, FetchConfig  # noqa: E402
from tracker.core.types import FeedSource  # noqa: E402
from tracker.demo.site import NewsSite  # noqa: E402
from tracker.service.app import open_store, poll_once  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"


def db_bytes(path: Path) -> int:
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def measure(feeds: dict[str, str], served: Any, tmp: Path, name: str) -> tuple[int, int, int]:
    """(bytes served, store growth in bytes, articles stored)."""
    empty = tmp / f"{name}-empty.sqlite"
    open_store(Config(database_url=f"sqlite:///{empty}", feeds=(), rule_paths=(REPO / "rules",)))
    db = tmp / f"{name}.sqlite"
    cfg = Config(
        database_url=f"sqlite:///{db}",
        feeds=tuple(FeedSource(url=u, name=n) for n, u in feeds.items()),
        rule_paths=(REPO / "rules",),
        fetch=FetchConfig(per_host_per_minute=0, per_host_concurrency=8),
    )
    report = poll_once(cfg, open_store(cfg))
    return served(), db_bytes(db) - db_bytes(empty), report.new_items


def demo(tmp: Path) -> tuple[int, int, int]:
    site = NewsSite()
    total = [0]
    render = site.render

    def counting(path: str) -> tuple[int, str, str]:
        status, ctype, body = render(path)
        total[0] += len(body.encode("utf-8"))
        return status, ctype, body

    site.render = counting  # type: ignore[method-assign]
    with site:
        return measure(site.feed_urls(), lambda: total[0], tmp, "demo")


def real_pages(tmp: Path, pages: int = 200) -> tuple[int, int, int] | None:
    root = CORPUS / "html"
    if not root.exists():
        return None
    server = HTTPServer().start()
    try:
        records = json.loads((root / "ground_truth.json").read_text())[:pages]
        items = []
        served = 0
        for rec in records:
            body = gzip.decompress((root / rec["file"]).read_bytes())
            served += len(body)
            server.routes[f"/p/{rec['id']}.html"] = Response(200, body, {"Content-Type": "text/html"})
            link = server.url(f"/p/{rec['id']}.html")
            items.append(
                f"<item><title>Page {rec['id']}</title><link>{link}</link>"
                f"<guid isPermaLink='false'>{rec['id']}</guid><description>Page {rec['id']}.</description></item>"
            )
        feed = (
            "<?xml version='1.0'?><rss version='2.0'><channel><title>real</title><link>http://x/</link>"
            f"<description>d</description>{''.join(items)}</channel></rss>"
        ).encode()
        served += len(feed)
        server.routes["/feed.xml"] = Response(200, feed, {"Content-Type": "application/rss+xml"})
        return measure({"real": server.url("/feed.xml")}, lambda: served, tmp, "real")
    finally:
        server.stop()


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("demo site", demo(Path(tmp))))
        real = real_pages(Path(tmp))
        if real is not None:
            rows.append(("200 real news pages", real))
    print("| case | articles | bytes served | store growth | growth per article | growth per fetched byte |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (served, growth, items) in rows:
        print(
            f"| {name} | {items} | {served / 1e6:.2f} MB | {growth / 1e6:.2f} MB | "
            f"{growth / max(items, 1) / 1e3:.1f} KB | {growth / max(served, 1):.2f} |"
        )


if __name__ == "__main__":
    main()
