"""Scale-out on a real PostgreSQL: leases, take-over after a killed worker, one digest.

Needs a server: ``export TRACKER_TEST_PG="$(.ci/postgres)"`` (what `.ci/run` does). Without
``TRACKER_TEST_PG`` these tests skip. Each test gets a database of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import tracker

DSN = os.environ.get("TRACKER_TEST_PG", "")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DSN, reason="TRACKER_TEST_PG is not set (see .ci/postgres)")]

N_FEEDS = 200
RULE = 'id = "harbour"\ntitle = "Harbour board decisions"\nquery = \'harbour AND board\'\n'
TOWNS = ("Eastbrook", "Harlan Bay", "Millford", "Kestrel Point", "Ostry", "Varrow", "Quenby", "Dunmere")
TOPICS = ("ferry terminal", "dredging contract", "quay repairs", "pilot boats", "fish market", "tug fleet")


def article(i: int) -> tuple[str, tuple[str, ...]]:
    """A distinct short article (our own fixture text): the harbour board of a town decides."""
    town, topic = TOWNS[i % len(TOWNS)], TOPICS[(i // len(TOWNS)) % len(TOPICS)]
    title = f"{town} harbour board decision number {i} on the {topic}"
    paragraphs = (
        f"The harbour board of {town} took decision number {i} on Tuesday about the {topic}, after a "
        f"meeting that ran for {i % 5 + 2} hours and drew about {40 + i} residents to the town hall.",
        f"Board members said item {i} on the agenda had been postponed twice, and that the {topic} "
        f"would be reviewed again in {i % 11 + 1} months with a report from the harbour master.",
        f"A spokesperson for the {town} port users' association welcomed the vote on item {i} but "
        "asked the board to publish the cost estimates before work begins next season.",
    )
    return title, paragraphs


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the test server; dropped afterwards."""
    import psycopg

    base = DSN.replace("postgresql+psycopg://", "postgresql://")
    name = f"tracker_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = DSN.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def site() -> Iterator[HTTPServer]:
    """200 feeds of two entries each; every article is in two feeds (feed k: articles k, k+1)."""
    server = HTTPServer().start()
    for i in range(N_FEEDS):
        title, paragraphs = article(i)
        server.routes[f"/a/{i}.html"] = Response(200, page(title, paragraphs), HTML_HEADERS, delay=0.02)
    for k in range(N_FEEDS):
        entries = [
            Entry(slug=f"a{j}", title=article(j)[0], link=server.url(f"/a/{j}.html"), guid=f"a{j}")
            for j in (k, (k + 1) % N_FEEDS)
        ]
        server.routes[f"/feeds/{k}.xml"] = Response(200, rss(entries, title=f"Feed {k}"), RSS_HEADERS)
    try:
        yield server
    finally:
        server.stop()


def write_config(tmp_path: Path, url: str, server: HTTPServer, extra: str = "") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    feeds = "".join(f'[[feeds]]\nname = "Feed {k}"\nurl = "{server.url(f"/feeds/{k}.xml")}"\n' for k in range(N_FEEDS))
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "{url}"\n[rules]\npaths = ["{rules}"]\n'
        "[fetch]\nextract_workers = 1\nper_host_concurrency = 8\nper_host_per_minute = 0\n"
        f"[poll]\ninterval_minutes = 30\n{extra}{feeds}",
        encoding="utf-8",
    )
    return cfg


def start_worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tracker", "--config", str(cfg), "-v", "run"], stdout=out, stderr=out, env=env
        )


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return list(conn.execute(sql).fetchall())


def wait_until(condition: Any, timeout: float, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                pytest.fail(f"worker exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail("timed out:\n" + "\n".join(log.read_text()[-2000:] for log in logs))


def polled_feeds(url: str) -> int:
    try:
        return int(query(url, "SELECT count(*) FROM feeds WHERE last_status IS NOT NULL")[0][0])
    except Exception:  # noqa: BLE001 - the schema may not exist yet
        return 0


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(-9)
    return codes


def assert_everything_once(url: str) -> None:
    items, distinct_urls, distinct_texts = query(
        url, "SELECT count(*), count(DISTINCT url), count(DISTINCT text_hash) FROM items"
    )[0]
    assert items == distinct_urls == distinct_texts == N_FEEDS
    # Every entry of every feed is linked to its item once; every item has its match and story.
    assert query(url, "SELECT count(*), count(DISTINCT (item_id, feed_id)) FROM item_sources")[0] == (
        2 * N_FEEDS,
        2 * N_FEEDS,
    )
    assert query(url, "SELECT count(*) FROM matches WHERE rule_id = 'harbour'")[0][0] == N_FEEDS
    assert query(url, "SELECT count(*) FROM items WHERE story_id IS NULL")[0][0] == 0
    assert query(url, "SELECT count(*) FROM tagged_items")[0][0] == N_FEEDS


def test_two_workers_share_200_feeds_without_polling_one_twice(tmp_path: Path, pg_url: str, site: HTTPServer) -> None:
    cfg = write_config(tmp_path, pg_url, site, "[service]\nclaim_batch = 10\n")
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    # Both start on an empty database: one runs the migrations, the other waits for them.
    procs = [start_worker(cfg, logs[0]), start_worker(cfg, logs[1])]
    try:
        wait_until(lambda: polled_feeds(pg_url) == N_FEEDS, 240, procs, logs)
        time.sleep(1)
    finally:
        codes = stop(procs)
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    hits = Counter(path for path, _ in site.requests if path.startswith("/feeds/"))
    assert len(hits) == N_FEEDS and set(hits.values()) == {1}  # every feed, each exactly once
    assert_everything_once(pg_url)
    done = [log.read_text().count("feed done") for log in logs]
    assert all(n > 0 for n in done) and sum(done) == N_FEEDS, done  # both worked, no feed twice
    assert query(pg_url, "SELECT count(*) FROM feeds WHERE claimed_by IS NOT NULL")[0][0] == 0
    assert query(pg_url, "SELECT count(*) FROM fetch_log")[0][0] == N_FEEDS


def test_a_killed_workers_feeds_are_taken_over_and_nothing_is_lost(
    tmp_path: Path, pg_url: str, site: HTTPServer
) -> None:
    for i in range(N_FEEDS):  # slow pages: the kill lands mid-cycle
        site.routes[f"/a/{i}.html"].delay = 0.1  # type: ignore[union-attr]
    cfg = write_config(tmp_path, pg_url, site, "[service]\nclaim_batch = 20\nlease_minutes = 0.05\n")
    assert tracker("--config", str(cfg), "init").returncode == 0
    first, second = tmp_path / "w1.log", tmp_path / "w2.log"
    doomed = start_worker(cfg, first)
    wait_until(lambda: query(pg_url, "SELECT count(*) FROM items")[0][0] >= 15, 120, [doomed], [first])
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    stored_at_kill = query(pg_url, "SELECT count(*) FROM items")[0][0]
    held = query(pg_url, "SELECT count(*) FROM feeds WHERE claimed_by IS NOT NULL")[0][0]
    assert 0 < stored_at_kill < N_FEEDS and held > 0  # it died holding leases, mid-cycle
    shown = tracker("--config", str(cfg), "status").stdout
    assert f"polling {held} feeds (lease until" in shown, shown
    survivor = start_worker(cfg, second)
    try:
        wait_until(lambda: polled_feeds(pg_url) == N_FEEDS, 240, [survivor], [second])
        time.sleep(1)
    finally:
        codes = stop([survivor])
    assert codes == [0], second.read_text()[-2000:]
    assert_everything_once(pg_url)


def test_two_workers_sending_one_digest_send_it_once(tmp_path: Path, pg_url: str, site: HTTPServer) -> None:
    from .test_digest import Controller, Inbox, free_port

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        digest = (
            f'[smtp]\nhost = "127.0.0.1"\nport = {controller.port}\nsender = "tracker@harlan.example"\n'
            '[[digests]]\nname = "harbour desk"\nto = ["desk@harlan.example"]\nrules = ["harbour"]\n'
            'at = "07:00"\ntimezone = "UTC"\n'
        )
        cfg = write_config(tmp_path, pg_url, site, digest)
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
        # Full-text search on PostgreSQL (a GIN index, web-search syntax).
        found = tracker(
            "--config", str(cfg), "search", '"ferry terminal" Millford', "--format", "jsonl", "--limit", "50"
        )
        assert found.returncode == 0, found.stderr
        hits = [json.loads(line) for line in found.stdout.splitlines()]
        assert hits and all("Millford" in h["title"] and "ferry terminal" in h["title"] for h in hits)
        assert "[Millford]" in hits[0]["snippet"] or "[ferry]" in hits[0]["snippet"]
        env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
        command = [sys.executable, "-m", "tracker", "--config", str(cfg), "digest", "send", "--now"]
        senders = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(4)]
        outputs = [p.communicate(timeout=120) for p in senders]
        assert [p.returncode for p in senders] == [0, 0, 0, 0], outputs
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert query(pg_url, "SELECT count(*), count(DISTINCT item_id) FROM digest_deliveries")[0] == (N_FEEDS, N_FEEDS)
    assert query(pg_url, "SELECT status, count(*) FROM digest_runs WHERE status = 'sent' GROUP BY status") == [
        ("sent", 1)
    ]
