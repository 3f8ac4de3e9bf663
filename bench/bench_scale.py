"""Scale: many feeds on a slow site, polled by one or more workers; prints a table.

A loopback site (its own process, asyncio) serves N feeds of M entries each and their
article pages, adding a fixed latency to every response, with ETags so that an unchanged
feed answers 304. For each case the database is fresh: the first cycle stores every
article; then every feed is made due again and the second cycle (all 304s) is timed too.

Cycle time is measured in the database, from the first fetch's start to the last fetch's
end (``fetch_log``), so worker start-up is not counted. The site is one host: the per-host
budget is lifted for it (``per_host_per_minute = 0``); the politeness budget is per host.

Usage:
    python bench/bench_scale.py                         # 2,000 x 20, SQLite, 1 worker
    python bench/bench_scale.py --pg DSN                # and PostgreSQL with 1 and 2 workers
    python bench/bench_scale.py --feeds 200 --entries 5 # a quick run
DSN: a server URL such as postgresql+psycopg://tracker@127.0.0.1:54329/postgres (see .ci/postgres);
each case creates and drops a database of its own there.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = [
    *("harbour", "board", "council", "ferry", "quay", "budget", "vote", "plan", "report", "port", "tram"),
    *("road", "school", "bridge", "market", "contract", "repair", "museum", "library", "river", "station"),
    *("funding", "tender", "review", "study", "permit", "audit", "meeting", "resident", "mayor", "district"),
    *("tunnel", "dock", "freight", "terminal", "grant", "season", "delay", "cost", "safety", "expansion"),
]


# -- the site ------------------------------------------------------------------------------------


def article_html(k: int, j: int) -> bytes:
    rng = random.Random(k * 100_003 + j)
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(45)).capitalize() + "." for _ in range(3)]
    body = "".join(f"<p>Item {k}-{j}. {p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Story {k}-{j}</title></head>"
        f"<body><nav><a href='/'>Home</a></nav><article><h1>Story {k}-{j}</h1>{body}</article>"
        "<footer>Bench Gazette</footer></body></html>"
    ).encode()


def feed_xml(base: str, k: int, entries: int) -> bytes:
    items = "".join(
        f"<item><title>Story {k}-{j}</title><link>{base}/a/{k}/{j}.html</link><guid>s-{k}-{j}</guid>"
        f"<pubDate>Tue, 10 Feb 2026 09:{j % 60:02d}:00 GMT</pubDate><description>Summary {k}-{j}</description></item>"
        for j in range(entries)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Feed {k}</title>"
        f"<link>{base}/</link><description>bench</description>{items}</channel></rss>"
    ).encode()


async def _serve(port_file: Path, entries: int, latency: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        base = ""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
                base = f"http://{headers.get('host', '')}"
                await asyncio.sleep(latency)
                status, body, ctype, etag = 404, b"not found", "text/plain", ""
                parts = path.strip("/").split("/")
                if parts[0] == "f" and len(parts) == 2:
                    k = int(parts[1].removesuffix(".xml"))
                    etag = f'"feed-{k}"'
                    if headers.get("if-none-match") == etag:
                        status, body = 304, b""
                    else:
                        status, body, ctype = 200, feed_xml(base, k, entries), "application/rss+xml"
                elif parts[0] == "a" and len(parts) == 3:
                    status, body, ctype = (
                        200,
                        article_html(int(parts[1]), int(parts[2].removesuffix(".html"))),
                        "text/html",
                    )
                reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
                extra = f"ETag: {etag}\r\n" if etag else ""
                head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                writer.write(f"{head}{extra}\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


# -- the workers ---------------------------------------------------------------------------------------


def work(config_path: str) -> None:
    """One worker: claim and poll due feeds until none is due (the service's poll job)."""
    from tracker.core.config import load_config
    from tracker.pipeline.cycle import poll_due
    from tracker.service.app import make_extractor, prepare
    from tracker.sources.fetching import Fetcher
    from tracker.store.lock import worker_name

    config = load_config(Path(config_path))
    ready = prepare(config)
    with Fetcher(config.fetch) as fetcher, make_extractor(config, ready.matcher) as extractor:
        poll_due(
            ready.store,
            fetcher,
            ready.matcher,
            extractor,
            config.poll,
            owner=worker_name(),
            lease=timedelta(minutes=60),
            batch=config.service.claim_batch,
            grouper=ready.grouper,
        )


# -- the cases -------------------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    cycle: str
    feeds: int
    fetches: int
    items: int
    seconds: float
    peak_rss_mb: float


def run_workers(config: Path, n: int) -> float:
    """Start ``n`` workers, wait for all; returns the largest peak RSS (MB) of any of them."""
    import resource

    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(config)]) for _ in range(n)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a worker failed ({p.returncode})")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def window(url: str, since: datetime) -> tuple[int, int, float]:
    """Fetches, new items and first-start-to-last-end seconds of the fetch-log rows after ``since``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT started_at, duration_ms, new_items FROM fetch_log"),
        ).all()
    engine.dispose()
    parsed = []
    for started, ms, new in rows:
        when = started if isinstance(started, datetime) else datetime.fromisoformat(str(started))
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if when >= since:
            parsed.append((when, when + timedelta(milliseconds=ms), new))
    first = min(p[0] for p in parsed)
    last = max(p[1] for p in parsed)
    return len(parsed), sum(p[2] for p in parsed), (last - first).total_seconds()


def case(name: str, url: str, workers: int, base: str, n_feeds: int, tmp: Path) -> list[Row]:
    from sqlalchemy import create_engine, text

    from tracker.core.config import load_config
    from tracker.service.app import prepare

    cfg = tmp / f"{uuid.uuid4().hex[:6]}.toml"
    feeds = "".join(f'[[feeds]]\nname = "f{k}"\nurl = "{base}/f/{k}.xml"\n' for k in range(n_feeds))
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[rules]\npaths = ["{REPO / "rules"}"]\n'
        "[fetch]\nconcurrency = 100\nper_host_concurrency = 100\nper_host_per_minute = 0\nextract_workers = 2\n"
        "[service]\nclaim_batch = 500\n" + feeds
    )
    prepare(load_config(cfg))  # migrate and sync the feeds once, before the workers start
    rows = []
    for cycle in ("first (all new)", "second (all 304)"):
        since = datetime.now(UTC)
        t0 = time.perf_counter()
        rss = run_workers(cfg, workers)
        wall = time.perf_counter() - t0
        fetches, items, seconds = window(url, since)
        rows.append(Row(name, cycle, n_feeds, fetches, items, seconds, rss))
        print(f"  {name}, {cycle}: {seconds:.1f}s in the database, {wall:.1f}s with start-up", file=sys.stderr)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE feeds SET next_poll_at = NULL"))
        engine.dispose()
    return rows


def pg_database(dsn: str) -> tuple[str, str]:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return dsn.rpartition("/")[0] + "/" + name, name


def drop_pg(dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--entries", type=int, default=20)
    ap.add_argument("--latency", type=float, default=0.1, help="seconds added to every response")
    ap.add_argument("--pg", default="", help="PostgreSQL server DSN; adds the 1- and 2-worker PostgreSQL cases")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        work(args.worker)
        return
    if args.serve:
        asyncio.run(_serve(Path(args.serve), args.entries, args.latency))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port_file = tmp / "port"
        site = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port_file), "--entries", str(args.entries),
             "--latency", str(args.latency)]
        )  # fmt: skip
        try:
            while not (port_file.exists() and port_file.read_text()):
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}"
            rows: list[Row] = []
            if not args.skip_sqlite:
                rows += case("SQLite, 1 worker", f"sqlite:///{tmp}/bench.sqlite", 1, base, args.feeds, tmp)
            if args.pg:
                for workers in (1, 2):
                    url, name = pg_database(args.pg)
                    try:
                        rows += case(f"PostgreSQL, {workers} worker(s)", url, workers, base, args.feeds, tmp)
                    finally:
                        drop_pg(args.pg, name)
        finally:
            site.terminate()
            site.wait()
    print(f"{args.feeds} feeds x {args.entries} entries, {args.latency * 1000:.0f} ms added to every response")
    columns = ("feeds", "items", "seconds", "items/s", "feeds/s", "peak MB")
    print(f"{'case':24} {'cycle':18} " + " ".join(f"{c:>8}" for c in columns))
    for r in rows:
        print(
            f"{r.case:24} {r.cycle:18} {r.fetches:8d} {r.items:8d} {r.seconds:8.1f} "
            f"{r.items / r.seconds:8.1f} {r.fetches / r.seconds:8.1f} {r.peak_rss_mb:8.0f}"
        )


if __name__ == "__main__":
    main()
