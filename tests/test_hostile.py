"""Hostile sources: each ends as a recorded feed error (or a partial, safe result) within
bounded time and memory, while the other feeds of the same cycle are processed normally."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .hostile import CASES, HostileServer, feed_urls, gzip_bomb

pytestmark = pytest.mark.slow

#: the [fetch] and [poll] limits the cases run under
LIMITS = (
    "[fetch]\nextract_workers = 1\nconnect_timeout = 3\nread_timeout = 3\ntotal_timeout = 5\n"
    "max_bytes = 2000000\nmax_redirects = 5\n[poll]\nmax_entries_per_feed = 300\n"
)

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
    gzip_bomb()  # built before any client waits for it
    with HostileServer() as s:
        yield s


def poll(config: Path) -> tuple[int, float, float, str]:
    """`tracker poll --once` in a child: (exit code, seconds, peak RSS in MB, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(config), "-v", "poll", "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - t0, usage.ru_maxrss / 1024, err


def write_config(tmp_path: Path, feeds: dict[str, str]) -> Path:
    cfg = tmp_path / "t.toml"
    body = f'[database]\nurl = "sqlite:///{tmp_path / "t.sqlite"}"\n{LIMITS}'
    body += "".join(f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds.items())
    cfg.write_text(body, encoding="utf-8")
    return cfg


def feeds(db: Path) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return {r["name"]: dict(r) for r in con.execute("SELECT * FROM feeds")}


def test_every_hostile_source_in_one_cycle(tmp_path: Path, server: HostileServer) -> None:
    cfg = write_config(tmp_path, feed_urls(server))
    code, seconds, peak_mb, err = poll(cfg)
    assert code == 0, err
    assert seconds < 60 and peak_mb < 800, (seconds, peak_mb)
    db = tmp_path / "t.sqlite"
    got = {name: row["last_status"] for name, row in feeds(db).items()}
    assert got == EXPECTED, {k: (got.get(k), v) for k, v in EXPECTED.items() if got.get(k) != v}
    rows = feeds(db)
    for name, status in EXPECTED.items():
        if status != "ok":
            assert rows[name]["last_error"], name  # the reason is recorded on the feed
    # 429: Retry-After honored (not before two minutes), instead of the hour of backoff; the
    # fastest poll is ten minutes.
    retry = datetime.fromisoformat(rows["429 with Retry-After: 120"]["next_poll_at"]).replace(tzinfo=UTC)
    assert rows["429 with Retry-After: 120"]["schedule_reason"] == "retry-after"
    assert 9 * 60 < (retry - datetime.now(UTC)).total_seconds() < 10 * 60 + 5
    con = sqlite3.connect(db)
    texts = [t for (t,) in con.execute("SELECT title || ' ' || text FROM items")]
    assert not any("root:" in t for t in texts)  # no local file came in through an entity
    assert max(len(t) for t in texts) < 10_000 and not any("lollol" in t for t in texts)  # nothing expanded
    per_feed = dict(
        con.execute("SELECT f.name, count(*) FROM item_sources s JOIN feeds f ON f.id = s.feed_id GROUP BY f.name")
    )
    assert per_feed["good"] == 2 and per_feed["5,000 entries"] == 300
    assert per_feed["invalid UTF-8 under a UTF-8 declaration"] == 2
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("case", [c for c in CASES.values() if c != "5,000 entries"])
def test_each_case_alone_is_bounded(tmp_path: Path, server: HostileServer, case: str) -> None:
    cfg = write_config(tmp_path, {case: feed_urls(server)[case]})
    code, seconds, peak_mb, err = poll(cfg)
    assert code == 0, err
    assert seconds < 30 and peak_mb < 800, (seconds, peak_mb)
    assert feeds(tmp_path / "t.sqlite")[case]["last_status"] == EXPECTED[case]
