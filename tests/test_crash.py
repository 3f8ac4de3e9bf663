"""Crash consistency: the poller and the digest sender killed with SIGKILL at random points,
again and again, lose nothing and duplicate nothing."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_digest import Controller, Inbox, free_port

pytestmark = pytest.mark.slow

KILLS = 24
N_FEEDS = 6
RULE = 'id = "harbour"\ntitle = "Harbour board decisions"\nquery = \'harbour AND board\'\n'


def publish(server: HTTPServer, n_articles: int) -> None:
    """Articles 0..n-1, each in two of the feeds; pages answer a little slowly."""
    for a in range(n_articles):
        title = f"Harbour board decision {a} on berth {a % 7}"
        paragraphs = (
            f"The harbour board voted on item {a} of its agenda on Tuesday, approving work on berth {a % 7} "
            f"after a debate about costs that lasted {a % 4 + 1} hours.",
            f"Board members said the work on item {a} would start within {a % 9 + 2} weeks and that the quay "
            "would stay open to ferries during the works.",
            f"Residents asked the board to publish the contract for item {a} before the next meeting.",
        )
        server.routes[f"/a/{a}.html"] = Response(200, page(title, paragraphs), HTML_HEADERS, delay=0.2)
    for f in range(N_FEEDS):
        entries = [
            Entry(slug=f"a{a}", title=f"Harbour board decision {a} on berth {a % 7}", link=server.url(f"/a/{a}.html"))
            for a in range(n_articles)
            if f in (a % N_FEEDS, (a + 1) % N_FEEDS)
        ]
        server.routes[f"/f/{f}.xml"] = Response(200, rss(entries, title=f"Feed {f}"), RSS_HEADERS)


def run(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path, http_server: HTTPServer) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261124")))
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    db = tmp_path / "t.sqlite"
    feeds = "".join(f'[[feeds]]\nname = "Feed {f}"\nurl = "{http_server.url(f"/f/{f}.xml")}"\n' for f in range(N_FEEDS))
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[rules]\npaths = ["{rules}"]\n'
        "[fetch]\nextract_workers = 1\nper_host_concurrency = 4\nper_host_per_minute = 0\n"
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsender = "tracker@harlan.example"\ntimeout = 5\n'
        '[[digests]]\nname = "desk"\nto = ["desk@harlan.example"]\nrules = ["harbour"]\nat = "07:00"\n'
        f'timezone = "UTC"\n{feeds}',
        encoding="utf-8",
    )
    assert subprocess.run([sys.executable, "-m", "tracker", "--config", str(cfg), "init"], check=False).returncode == 0
    killed_mid_work = 0
    try:
        n_articles = 0
        for kill in range(KILLS):
            n_articles += 6
            publish(http_server, n_articles)
            if kill % 3 == 2:
                proc = run(cfg, "digest", "send", "--now")
                time.sleep(rng.uniform(0.0, 0.9))
            else:
                proc = run(cfg, "poll", "--once")
                time.sleep(rng.uniform(0.3, 3.0))
            if proc.poll() is None:
                killed_mid_work += 1
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        # The kill times span a run as long as it now takes (a poll here about 2.4 s, a digest
        # send about 0.7 s), so some runs end before their kill: a good share of the kills must
        # still land inside real work.
        assert killed_mid_work >= KILLS // 3, killed_mid_work
        # Then it runs to the end: two clean polls (the second finds everything stored).
        for _ in range(2):
            assert run(cfg, "poll", "--once").wait(120) == 0
        con = sqlite3.connect(db)
        # Time passes: digests a kill left unconfirmed become due for their re-send, and the
        # send lock a killed sender held expires.
        con.execute("UPDATE digest_runs SET created_at = '2000-01-01 00:00:00.000000' WHERE status = 'pending'")
        con.execute("UPDATE digest_locks SET until = '2000-01-01 00:00:00.000000' WHERE until IS NOT NULL")
        con.commit()
        assert run(cfg, "digest", "send", "--now").wait(60) == 0
    finally:
        smtp.stop()

    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    items, urls = con.execute("SELECT count(*), count(DISTINCT url) FROM items").fetchone()
    assert items == urls == n_articles
    assert con.execute("SELECT count(*), count(DISTINCT item_id || '/' || feed_id) FROM item_sources").fetchone() == (
        2 * n_articles,
        2 * n_articles,
    )
    assert con.execute("SELECT count(*) FROM matches WHERE rule_id = 'harbour'").fetchone()[0] == n_articles
    assert con.execute("SELECT count(*) FROM items WHERE story_id IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM feeds WHERE last_status NOT IN ('ok', 'not_modified')").fetchone()[0] == 0

    # Digests: every article went out in exactly one digest. A digest re-sent after a kill
    # keeps its Message-ID, so a receiver keeps one copy.
    assert con.execute("SELECT count(*) FROM digest_runs WHERE status = 'pending'").fetchone()[0] == 0
    delivered = con.execute(
        "SELECT count(*), count(DISTINCT d.item_id) FROM digest_deliveries d "
        "JOIN digest_runs r ON r.id = d.run_id WHERE r.status = 'sent'"
    ).fetchone()
    assert delivered == (n_articles, n_articles)
    # Every digest recorded as sent reached the mail server, and nothing else did (a re-send
    # after a kill carries the same Message-ID as the copy that may have gone out before).
    sent = {m for (m,) in con.execute("SELECT message_id FROM digest_runs WHERE status = 'sent'")}
    received = {str(msg["Message-ID"]).strip("<>") for msg in inbox.messages}
    assert {m.strip("<>") for m in sent} == received
