"""Hostile sources: each ends as a recorded feed error (or a partial, safe result) within
bounded time and memory, while the other feeds of the same cycle are processed normally.

Here: the first cases, each alone, and every case of tests/hostile.py (these and the
MORE_CASES of tests/test_hostile_more.py) together in one `tracker poll --once`."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from .hostile import (
    CASES,
    CRED_PASSWORD,
    CRED_TOKEN,
    GOOD_ARTICLE_TITLES,
    MORE_CASES,
    HostileServer,
    build_payloads,
    feed_urls,
    more_feed_urls,
)
from .test_cli import tracker

pytestmark = pytest.mark.slow

#: the [fetch] and [poll] limits the cases run under
LIMITS = (
    "[fetch]\nextract_workers = 1\nconnect_timeout = 3\nread_timeout = 3\ntotal_timeout = 5\n"
    "max_bytes = 2000000\nmax_redirects = 5\n[poll]\nmax_entries_per_feed = 300\n"
)

#: the limits of the new cases and of every case together: room for the 10 MB page and the 11 MB
#: feed of tiny entries, tight extraction budgets
MORE_FETCH: dict[str, int | float] = {
    "extract_workers": 1,
    "connect_timeout": 3,
    "read_timeout": 3,
    "total_timeout": 5,
    "max_bytes": 12_000_000,
    "max_redirects": 5,
    "extract_timeout": 3,
    "extract_memory_mb": 300,
    "per_host_per_minute": 60,
}
MORE_POLL = {"max_entries_per_feed": 300}


def limits(**fetch: int | float) -> str:
    """The [fetch] and [poll] tables of MORE_FETCH and MORE_POLL, with ``fetch`` overriding."""
    values = {**MORE_FETCH, **fetch}
    return (
        "[fetch]\n"
        + "".join(f"{k} = {v}\n" for k, v in values.items())
        + "[poll]\n"
        + "".join(f"{k} = {v}\n" for k, v in MORE_POLL.items())
    )


#: articles of the throttled feed when every case runs together: with per_host_per_minute = 60
#: the first 59 go at once and the rest a minute later, so the cycle lasts about a minute and
#: the other hosts' feeds must not wait for it
THROTTLED_TOGETHER = 80

#: MORE_CASES: the statuses each may end with
MORE_EXPECTED: dict[str, set[str]] = {
    "brotli bomb (800 B → 1 GiB)": {"too_large"},
    "raw deflate bomb (1 MB → 1 GiB)": {"too_large"},
    "zlib deflate bomb (1 MB → 1 GiB)": {"too_large"},
    "stacked gzip, gzip bomb": {"too_large"},
    "zstd bomb (32 KB → 1 GiB)": {"too_large", "refused", "error"},
    "header drip (1 byte every 0.5 s)": {"timeout"},
    "article page of 10 MB of nested spans": {"ok"},
    "380 KB summary repeating a NEAR pair": {"ok"},
    "200,000 tiny entries (11 MB)": {"ok"},
    "1,000 articles on one throttled host": {"ok"},
    "good feed on another host (127.0.0.2)": {"ok"},
    "feed redirect to 127.0.0.2": {"refused", "error"},
    "feed redirect to [::1]": {"refused", "error"},
    "feed redirect to 2130706434 (127.0.0.2)": {"refused", "error"},
    "canonical link claiming another outlet": {"ok"},
    "credentials in the feed URL": {"http_error"},
    "non-ASCII ETag and Last-Modified": {"ok"},
    "malformed entries (port 99999, :abc, ttl ², year 1)": {"ok"},
}
assert set(MORE_EXPECTED) == set(MORE_CASES.values())

EXPECTED = {
    "slow drip (1 byte every 2 s)": "timeout",
    "never-ending body": "too_large",
    "body far over the size cap (3 GiB announced)": "too_large",
    "gzip bomb (1 MB → 1 GiB)": "too_large",
    "redirect loop": "http_error",
    "429 with Retry-After: 120": "http_error",
    "503": "http_error",
    "connection reset": "network",
    "TLS handshake failure": "network",
    "HTML served as a feed": "parse_error",
    "empty 200": "parse_error",
    "billion laughs": "ok",  # a partial, safe result: the entities stay unexpanded
    "external entity (XXE) to /etc/passwd": "ok",
    "invalid UTF-8 under a UTF-8 declaration": "ok",
    "5,000 entries": "ok",
    "good": "ok",
}


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    build_payloads()  # the bombs and big bodies are built before any client waits for them
    with HostileServer() as s:
        yield s


#: runs the command given after the file name and writes its peak RSS (KB) there. The
#: tracker must not be a direct child of pytest: a child forked from a large process counts
#: the parent's pages in its peak until it execs, so the wrapper (small) forks it instead.
PEAK_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


class Child:
    """`tracker -v poll --once` running in a child process, its stdout and stderr going to files
    (so that it never blocks on a full pipe, however long it runs before it is waited for)."""

    def __init__(self, config: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
        self.out, self.err = config.with_suffix(".out"), config.with_suffix(".err")
        self.peak = config.with_suffix(".peak")
        self.t0 = time.monotonic()
        command = [sys.executable, "-m", "tracker", "--config", str(config), "-v", "poll", "--once"]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", PEAK_WRAPPER, str(self.peak), *command],
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,  # the wrapper and the tracker are killed together
            )

    def finish(self, timeout: float = 240.0) -> tuple[int, float, float, str]:
        """Wait for it: (exit code, seconds, peak RSS in MB, stderr). Peak RSS is the largest
        of the tracker process and of its own children (the extraction workers)."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError(f"`tracker poll --once` still running after {timeout:g} s")
            time.sleep(0.05)
        seconds = time.monotonic() - self.t0
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        peak_kb = int(self.peak.read_text()) if self.peak.exists() else usage.ru_maxrss
        return self.proc.returncode, seconds, peak_kb / 1024, self.stderr

    @property
    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """Kill it if it still runs (a test that would have waited for it was not run)."""
        if self.proc.returncode is None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def poll(config: Path) -> tuple[int, float, float, str]:
    """`tracker -v poll --once` in a child: (exit code, seconds, peak RSS in MB, stderr)."""
    return Child(config).finish()


def write_config(tmp_path: Path, feeds: dict[str, str], limits: str = LIMITS) -> Path:
    cfg = tmp_path / "t.toml"
    body = f'[database]\nurl = "sqlite:///{tmp_path / "t.sqlite"}"\n{limits}'
    body += "".join(f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds.items())
    cfg.write_text(body, encoding="utf-8")
    return cfg


def feeds(db: Path) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return {r["name"]: dict(r) for r in con.execute("SELECT * FROM feeds")}


def unrecorded(db: Path, names: Iterable[str]) -> list[str]:
    """The feeds among ``names`` that do not end recorded: a last status, a next poll time and
    a fetch_log row."""
    con = sqlite3.connect(db)
    logged = {n for (n,) in con.execute("SELECT DISTINCT f.name FROM fetch_log l JOIN feeds f ON f.id = l.feed_id")}
    rows = feeds(db)
    return [
        name
        for name in names
        if name not in rows
        or rows[name]["last_status"] is None
        or rows[name]["next_poll_at"] is None
        or name not in logged
    ]


def durations(db: Path) -> dict[str, float]:
    """Seconds of each feed's last fetch_log row (its FeedReport seconds)."""
    con = sqlite3.connect(db)
    query = "SELECT f.name, l.duration_ms FROM fetch_log l JOIN feeds f ON f.id = l.feed_id ORDER BY l.id"
    return {name: ms / 1000 for name, ms in con.execute(query)}


def items_of(db: Path, feed: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    query = (
        "SELECT i.* FROM items i JOIN item_sources s ON s.item_id = i.id JOIN feeds f ON f.id = s.feed_id "
        "WHERE f.name = ? ORDER BY i.id"
    )
    return [dict(r) for r in con.execute(query, (feed,))]


def rule_matches(db: Path, item_id: int) -> set[str]:
    con = sqlite3.connect(db)
    return {r for (r,) in con.execute("SELECT rule_id FROM matches WHERE item_id = ?", (item_id,))}


def secret_leaks(db: Path, *texts: str) -> list[str]:
    """Where a credential of the credentials case shows: in ``texts`` (by index), in
    fetch_log.error or in feeds.last_error."""
    con = sqlite3.connect(db)
    stored = [e or "" for (e,) in con.execute("SELECT error FROM fetch_log")]
    stored += [e or "" for (e,) in con.execute("SELECT last_error FROM feeds")]
    where = [f"text {i}" for i, t in enumerate(texts) if CRED_PASSWORD in t or CRED_TOKEN in t]
    where += [f"stored: {e[:120]}" for e in stored if CRED_PASSWORD in e or CRED_TOKEN in e]
    return where


@dataclass
class Together:
    """Every case in one `tracker poll --once`, as started."""

    child: Child
    config: Path
    db: Path
    urls: dict[str, str]
    internal_hits: int  #: the internal listeners' count before it started


@pytest.fixture(scope="module", autouse=True)
def together(server: HostileServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Together]:
    """Every case of tests/hostile.py, the first ones and MORE_CASES, with the good feed, in one
    `tracker poll --once`: started before this module's tests and checked by its last one. The
    throttled host keeps that cycle going for a minute, mostly waiting, while the cases alone
    run here meanwhile."""
    tmp = tmp_path_factory.mktemp("together")
    urls = {**feed_urls(server), **more_feed_urls(server, throttled=THROTTLED_TOGETHER)}
    config = write_config(tmp, urls, limits())
    started = Together(Child(config), config, tmp / "t.sqlite", urls, server.internal_hits)
    yield started
    started.child.stop()


@pytest.mark.parametrize("case", [c for c in CASES.values() if c != "5,000 entries"])
def test_each_case_alone_is_bounded(tmp_path: Path, server: HostileServer, case: str) -> None:
    cfg = write_config(tmp_path, {case: feed_urls(server)[case]})
    code, seconds, peak_mb, err = poll(cfg)
    assert code == 0, err
    assert seconds < 30 and peak_mb < 800, (seconds, peak_mb)
    assert feeds(tmp_path / "t.sqlite")[case]["last_status"] == EXPECTED[case]


# Last: the cycle started first, by the fixture ``together``.
def test_every_hostile_source_in_one_cycle(together: Together, server: HostileServer) -> None:
    """Every case together: each ends recorded as it should, the good feeds' entries are stored,
    and the cycle completes (exit 0, no traceback) within bounded time and memory."""
    code, seconds, peak_mb, err = together.child.finish()
    assert code == 0, err
    # The throttled host's last articles may start only a minute after its first ones.
    assert seconds < 120 and peak_mb < 600, (seconds, peak_mb)
    db = together.db
    assert unrecorded(db, together.urls) == []
    rows = feeds(db)
    got = {name: row["last_status"] for name, row in rows.items()}
    wrong = {k: (got.get(k), v) for k, v in EXPECTED.items() if got.get(k) != v}
    wrong |= {k: (got.get(k), v) for k, v in MORE_EXPECTED.items() if got.get(k) not in v}
    assert not wrong, wrong
    for name, status in EXPECTED.items():
        if status != "ok":
            assert rows[name]["last_error"], name  # the reason is recorded on the feed
    for name, statuses in MORE_EXPECTED.items():
        if "ok" not in statuses:
            assert rows[name]["last_error"], name
    # 429: Retry-After honored (not before two minutes), instead of the hour of backoff; the
    # fastest poll is ten minutes after the feed is done (the cycle itself lasts over a minute,
    # and a feed may wait for its host's slots: its duration runs from the cycle's start).
    row429 = rows["429 with Retry-After: 120"]
    retry = datetime.fromisoformat(row429["next_poll_at"]).replace(tzinfo=UTC)
    started = datetime.fromisoformat(row429["last_fetched_at"]).replace(tzinfo=UTC)
    done = started + timedelta(seconds=durations(db)["429 with Retry-After: 120"])
    assert row429["schedule_reason"] == "retry-after"
    assert 9 * 60 < (retry - done).total_seconds() < 10 * 60 + 5, (started, done, retry)
    con = sqlite3.connect(db)
    texts = [t for (t,) in con.execute("SELECT title || ' ' || text FROM items")]
    assert not any("root:" in t for t in texts)  # no local file came in through an entity
    assert not any("lollol" in t for t in texts)  # nothing expanded
    assert max((len(i["title"]) + len(i["text"]) for i in items_of(db, "billion laughs")), default=0) < 10_000
    per_feed = dict(
        con.execute("SELECT f.name, count(*) FROM item_sources s JOIN feeds f ON f.id = s.feed_id GROUP BY f.name")
    )
    assert per_feed["good"] == 2 and per_feed["5,000 entries"] == 300
    assert per_feed["invalid UTF-8 under a UTF-8 declaration"] == 2
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # The new cases, each as it should end.
    assert server.internal_hits == together.internal_hits  # no redirect reached an internal address
    assert per_feed["200,000 tiny entries (11 MB)"] == 300
    assert per_feed["malformed entries (port 99999, :abc, ttl ², year 1)"] == 3
    assert per_feed["non-ASCII ETag and Last-Modified"] >= 1
    nested = items_of(db, "article page of 10 MB of nested spans")
    assert len(nested) == 1 and nested[0]["text_source"] != "extracted", nested
    near = items_of(db, "380 KB summary repeating a NEAR pair")
    assert len(near) == 1 and "trump-xi-meeting" in rule_matches(db, near[0]["id"])
    canonical = items_of(db, "canonical link claiming another outlet")
    assert [i["url"] for i in canonical] == [server.url("/canonical/story.html")]
    other = items_of(db, "good feed on another host (127.0.0.2)")
    assert sorted(i["title"] for i in other) == sorted(GOOD_ARTICLE_TITLES)
    assert {i["text_source"] for i in other} == {"extracted"}
    # The throttled host: all its articles in the end, the last ones a minute after the first;
    # the feed on another host did not wait for them.
    assert per_feed["1,000 articles on one throttled host"] == THROTTLED_TOGETHER
    took = durations(db)
    assert took["1,000 articles on one throttled host"] > 55, took
    assert took["good feed on another host (127.0.0.2)"] < 30, took
    # Credentials: neither on the terminal nor in the store's error columns.
    status = tracker("--config", str(together.config), "status")
    listing = tracker("--config", str(together.config), "feeds")
    assert status.returncode == 0 and listing.returncode == 0, (status.stderr, listing.stderr)
    out = together.child.stdout
    assert secret_leaks(db, err, out, status.stdout, listing.stdout, status.stderr, listing.stderr) == []
    assert "Traceback" not in err, err[err.index("Traceback") - 300 :][:3000]
