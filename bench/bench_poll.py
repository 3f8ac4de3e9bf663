"""Wall time of whole poll cycles, printed as a table.

Cases: `tracker demo` (30 articles, 3 feeds); the demo site (served from its own process)
scaled up to N copies of every article under new slugs, with 1 and 2 extraction workers;
and, when ../shared is present, a poll of the labeled dev corpus served by
../shared/eval/newssite.py. Every case uses a fresh SQLite database.

Usage: python bench/bench_poll.py [--scale 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracker.core.config import Config, FetchConfig
from tracker.core.types import FeedSource
from tracker.demo.site import FEEDS
from tracker.service.app import open_store, poll_once

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def serve(args: list[str], tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a site process (``args`` + --ready-file); returns it and its base URL."""
    ready = tmp / f"ready-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, *args, "--ready-file", str(ready)], stdout=subprocess.DEVNULL)
    for _ in range(200):
        if ready.exists() and ready.read_text():
            return proc, ready.read_text().strip()
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{args[0]} did not start")


def poll_config(base_feeds: tuple[FeedSource, ...], db: Path, workers: int) -> Config:
    return Config(
        database_url=f"sqlite:///{db}",
        feeds=base_feeds,
        rule_paths=(REPO / "rules",),
        fetch=FetchConfig(extract_workers=workers),
    )


def timed_cycle(cfg: Config) -> tuple[float, int]:
    store = open_store(cfg)
    t0 = time.perf_counter()
    report = poll_once(cfg, store)
    return time.perf_counter() - t0, report.new_items


def poll_site(scale: int, workers: int, tmp: Path) -> tuple[float, int]:
    """The demo site, in its own process so that serving does not compete with the poller."""
    proc, base = serve(["-m", "tracker.demo.site", "--scale", str(scale)], tmp)
    try:
        feeds = tuple(FeedSource(url=base + path, name=name) for path, (name, _) in FEEDS.items())
        return timed_cycle(poll_config(feeds, tmp / f"bench-{scale}-{workers}.sqlite", workers))
    finally:
        proc.terminate()
        proc.wait()


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **(env or {})}, timeout=1800)
    return time.perf_counter() - t0


def dev_corpus_poll(tmp: Path) -> tuple[float, int] | None:
    corpus = SHARED / "corpus" / "news" / "dev.jsonl"
    if not corpus.exists():
        return None
    site, base = serve([str(SHARED / "eval" / "newssite.py"), str(corpus)], tmp)
    try:
        cfg = tmp / "dev.toml"
        cfg.write_text(
            f'[database]\nurl = "sqlite:///{tmp}/dev.sqlite"\n[[feeds]]\nname = "dev"\nurl = "{base}/feed.xml"\n'
        )
        tracker = [sys.executable, "-m", "tracker", "--config", str(cfg)]
        subprocess.run([*tracker, "init"], check=True, capture_output=True)
        seconds = timed([*tracker, "poll", "--once"])
        return seconds, sum(1 for line in corpus.read_text().splitlines() if line.strip())
    finally:
        site.terminate()
        site.wait()


def real_pages_poll(tmp: Path, workers: int, pages: int = 200) -> tuple[float, int] | None:
    """Real news pages of the extraction corpus (heavier than the demo's), served by newssite.py."""
    root = SHARED / "corpus" / "html"
    if not root.exists():
        return None
    import gzip
    import json

    raw = tmp / "raw"
    if not raw.exists():
        raw.mkdir()
        for rec in json.loads((root / "ground_truth.json").read_text())[:pages]:
            (raw / f"{rec['id']}.html").write_bytes(gzip.decompress((root / rec["file"]).read_bytes()))
    proc, base = serve([str(SHARED / "eval" / "newssite.py"), "--raw-dir", str(raw)], tmp)
    try:
        feeds = (FeedSource(url=base + "/raw.xml", name="raw"),)
        return timed_cycle(poll_config(feeds, tmp / f"raw-{workers}.sqlite", workers))
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=10)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        seconds = timed([sys.executable, "-m", "tracker", "demo"], env={"TRACKER_HOME": str(tmp / "home")})
        rows.append(("tracker demo (subprocess, incl. start-up)", 30, seconds))
        dev = dev_corpus_poll(tmp)
        if dev:
            rows.append(("tracker poll --once, dev corpus (subprocess)", dev[1], dev[0]))
        for workers in (1, 2):
            seconds, n = poll_site(args.scale, workers, tmp)
            rows.append((f"poll cycle, demo site x{args.scale}, {workers} extract worker(s)", n, seconds))
        for workers in (1, 2):
            real = real_pages_poll(tmp, workers)
            if real:
                rows.append((f"poll cycle, 200 real corpus pages, {workers} extract worker(s)", real[1], real[0]))
    print(f"{'case':58} {'articles':>8} {'seconds':>8} {'articles/s':>10}")
    for name, n, seconds in rows:
        print(f"{name:58} {n:8d} {seconds:8.2f} {n / seconds:10.1f}")


if __name__ == "__main__":
    main()
