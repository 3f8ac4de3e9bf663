"""`tracker run`: the scheduler polls at once, and SIGTERM stops it cleanly (exit 0)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import pytest

from tracker.demo.site import NewsSite

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import write_config

pytestmark = pytest.mark.slow


def count_items(db: Path) -> int:
    try:
        return sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0


def start_run(cfg: Path) -> subprocess.Popen[str]:
    """`tracker --config CFG run` in a subprocess, stdout and stderr captured."""
    env = {**os.environ}
    env.pop("TRACKER_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def sigterm_mid_request(cfg: Path, server: HTTPServer, path: str, timeout: float) -> tuple[int, str, float]:
    """Start `tracker run`, send SIGTERM once ``path`` has been requested; returns the exit
    code, stderr and the seconds from the signal to the exit."""
    proc = start_run(cfg)
    try:
        deadline = time.monotonic() + 60
        while server.hits(path) == 0 and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.1)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_polls_then_stops_on_sigterm(tmp_path: Path, news_site: NewsSite) -> None:
    cfg = write_config(tmp_path, news_site, "[poll]\ninterval_minutes = 1\n")
    proc = start_run(cfg)
    db = tmp_path / "data" / "tracker.sqlite"
    try:
        deadline = time.monotonic() + 120
        while count_items(db) < len(news_site.articles) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.5)
        assert count_items(db) == len(news_site.articles)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "cycle done" in err and "stopped" in err
    # The feeds are scheduled for their next poll, about one interval ahead.
    con = sqlite3.connect(db)
    nexts = [r[0] for r in con.execute("SELECT next_poll_at FROM feeds")]
    assert len(nexts) == len(news_site.feed_urls()) and all(nexts)


def test_sigterm_mid_cycle_lets_the_cycle_finish(tmp_path: Path, http_server: HTTPServer) -> None:
    entries = []
    for i in range(4):
        http_server.routes[f"/news/slow{i}.html"] = Response(200, page(f"Slow story {i}"), HTML_HEADERS, delay=0.8)
        entries.append(Entry(slug=f"slow{i}", title=f"Slow story {i}", link=http_server.url(f"/news/slow{i}.html")))
    http_server.routes["/feed.xml"] = Response(200, rss(entries), RSS_HEADERS)
    db = tmp_path / "t.sqlite"
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[fetch]\nper_host_concurrency = 1\nextract_workers = 1\n'
        f'[[feeds]]\nname = "Slow"\nurl = "{http_server.url("/feed.xml")}"\n',
        encoding="utf-8",
    )
    code, err, _ = sigterm_mid_request(cfg, http_server, "/news/slow0.html", timeout=60)
    assert code == 0, err
    assert "claiming no more work" in err
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM items").fetchone()[0] == 4
    assert con.execute("SELECT last_status FROM feeds").fetchone()[0] == "ok"


def test_run_serves_health_and_metrics_on_loopback(tmp_path: Path, news_site: NewsSite) -> None:
    import socket
    import urllib.error
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = write_config(tmp_path, news_site, f"[poll]\ninterval_minutes = 1\n\n[service]\nmetrics_port = {port}\n")
    proc = start_run(cfg)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        metrics = ""
        while "tracker_cycles_total 1.0" not in metrics:
            assert proc.poll() is None and time.monotonic() < deadline, metrics
            time.sleep(0.5)
            try:
                metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
            except (urllib.error.URLError, ConnectionError):
                metrics = ""
        assert f"tracker_items_stored_total {float(len(news_site.articles))}" in metrics
        feeds = float(len(news_site.feed_urls()))
        assert f"tracker_feed_fetch_seconds_count {feeds}" in metrics and f"tracker_feeds_due {feeds}" in metrics
        health = urllib.request.urlopen(base + "/healthz", timeout=5)
        body = json.loads(health.read())
        assert health.status == 200 and body["status"] == "ok"
        assert body["last_cycle_new_items"] == len(news_site.articles) and body["last_cycle_failed_feeds"] == 0
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def test_health_is_stale_before_the_first_tick_and_after_three_missed_ticks() -> None:
    from datetime import UTC, datetime, timedelta

    from tracker.core.types import CycleReport
    from tracker.service.metrics import Metrics

    metrics = Metrics(timedelta(minutes=5))
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert metrics.health(now)[0] is False
    metrics.observe(CycleReport(started_at=now, finished_at=now), due=0)
    assert metrics.health(now + timedelta(minutes=14))[0] is True
    assert metrics.health(now + timedelta(minutes=16)) == (False, ANY)
    metrics.idle(now + timedelta(minutes=16))
    assert metrics.health(now + timedelta(minutes=17))[0] is True


def test_sigterm_abandons_stuck_work_within_the_stop_timeout(tmp_path: Path, http_server: HTTPServer) -> None:
    # One article answers after 25 s; with stop_timeout = 1 the service gives up on it.
    http_server.routes["/news/stuck.html"] = Response(200, page("Stuck story"), HTML_HEADERS, delay=25)
    entry = Entry(slug="stuck", title="Stuck story", link=http_server.url("/news/stuck.html"))
    http_server.routes["/feed.xml"] = Response(200, rss([entry]), RSS_HEADERS)
    db = tmp_path / "t.sqlite"
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[fetch]\nextract_workers = 1\nread_timeout = 60\ntotal_timeout = 90\n'
        f'[service]\nstop_timeout = 1\n[[feeds]]\nname = "Stuck"\nurl = "{http_server.url("/feed.xml")}"\n',
        encoding="utf-8",
    )
    code, err, stopped_in = sigterm_mid_request(cfg, http_server, "/news/stuck.html", timeout=20)
    assert code == 0, err
    assert stopped_in < 8, (stopped_in, err)
    assert "abandoning 1 requests" in err and "feeds abandoned mid-cycle" in err
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM items").fetchone()[0] == 0
    # Not recorded as polled, lease released: the next run polls it again at once.
    assert con.execute("SELECT last_status, claimed_by, next_poll_at FROM feeds").fetchone() == (None, None, None)
    http_server.routes["/news/stuck.html"] = Response(200, page("Stuck story"), HTML_HEADERS)
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    again = subprocess.run(
        [sys.executable, "-m", "tracker", "--config", str(cfg), "poll", "--once"], capture_output=True, env=env
    )
    assert again.returncode == 0
    assert con.execute("SELECT count(*) FROM items").fetchone()[0] == 1


FAULT_HOOK = """
import tracker.pipeline.cycle

_parse = tracker.pipeline.cycle.parse_feed


def _broken(body, url, *args, **kwargs):
    if "/broken/" in url:
        raise RuntimeError("injected: a bug of ours in the parser")
    return _parse(body, url, *args, **kwargs)


tracker.pipeline.cycle.parse_feed = _broken
"""


def test_run_goes_on_when_one_feed_always_raises(tmp_path: Path, http_server: HTTPServer) -> None:
    """One feed raises a bug's exception on every poll (injected into the real service through
    sitecustomize): every tick still stores the good feed's new article, the broken feed is
    recorded as failed and backs off, and /healthz answers 200."""
    import socket
    import urllib.request

    published: list[Entry] = []

    def good_feed(_handler: object) -> Response:
        # Each poll of the good feed finds one more article.
        n = len(published)
        title = f"Harbour works report {n}"
        http_server.routes[f"/good/{n}.html"] = Response(200, page(title), HTML_HEADERS)
        published.append(Entry(slug=f"g{n}", title=title, link=http_server.url(f"/good/{n}.html")))
        return Response(200, rss(published), RSS_HEADERS)

    broken = [Entry(slug="b0", title="Broken", link=http_server.url("/broken/0.html"))]
    http_server.routes["/good/feed.xml"] = good_feed
    http_server.routes["/broken/feed.xml"] = Response(200, rss(broken), RSS_HEADERS)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULT_HOOK, encoding="utf-8")
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/t.sqlite"\n\n'
        '[[feeds]]\nname = "good"\nurl = "' + http_server.url("/good/feed.xml") + '"\n\n'
        '[[feeds]]\nname = "broken"\nurl = "' + http_server.url("/broken/feed.xml") + '"\n\n'
        "[poll]\ninterval_minutes = 0.05\nmin_interval_minutes = 0.01\nmax_interval_minutes = 0.05\n\n"
        f"[fetch]\nextract_workers = 1\n\n[service]\nmetrics_port = {port}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(hook)}
    env.pop("TRACKER_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 90
        while http_server.hits("/good/feed.xml") < 4 or count_items(tmp_path / "t.sqlite") < 3:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, (http_server.hits("/good/feed.xml"), published)
            time.sleep(0.2)
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        body = json.loads(health.read())
        assert health.status == 200 and body["status"] == "ok", body
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "job poll failed" not in err and "Traceback" not in err, err
    con = sqlite3.connect(tmp_path / "t.sqlite")
    status, error, failures = con.execute(
        "SELECT last_status, last_error, consecutive_failures FROM feeds WHERE name = 'broken'"
    ).fetchone()
    assert status == "error" and "RuntimeError: injected" in error and failures >= 1
    # It backs off: polled far less often than the good feed.
    assert http_server.hits("/broken/feed.xml") < http_server.hits("/good/feed.xml")
    good = con.execute("SELECT count(*) FROM items WHERE url LIKE '%/good/%'").fetchone()[0]
    assert good >= 3
