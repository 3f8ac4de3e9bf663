"""Alerts killed with SIGKILL at random points while sending lose nothing, and send
nothing twice except as the same message (the same ``ref``): at least once, with an
idempotency key."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from .alertkit import RULE, Receiver, article, publish
from .conftest import HTTPServer

pytestmark = pytest.mark.slow

KILLS = 16
PER_ROUND = 4  #: new stories published before each run


def run(cfg: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def test_sigkill_while_sending_loses_nothing_and_duplicates_only_by_ref(
    tmp_path: Path, http_server: HTTPServer
) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261205")))
    hook = Receiver(hang=0.3)  # each POST takes a while: kills land inside sends
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    db = tmp_path / "t.sqlite"
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[rules]\npaths = ["{rules}"]\n'
        "[fetch]\nallow_private_addresses = true\nextract_workers = 1\nper_host_per_minute = 0\n"
        "[poll]\nalert_budget = 60\n"
        f'[[feeds]]\nname = "Gazette"\nurl = "{http_server.url("/feed.xml")}"\n'
        f'[[alerts]]\nname = "desk"\nurls = {json.dumps([hook.url("/a"), hook.url("/b")])}\nburst = 1000\n',
        encoding="utf-8",
    )
    assert subprocess.run([sys.executable, "-m", "tracker", "--config", str(cfg), "init"], check=False).returncode == 0
    articles: dict[int, tuple[str, tuple[str, ...]]] = {}
    mid_send = 0
    try:
        for kill in range(KILLS):
            for n in range(kill * PER_ROUND, (kill + 1) * PER_ROUND):
                articles[n] = article(n)
            publish(http_server, articles)
            tried = len(hook.tries)
            proc = run(cfg, "poll", "--once")
            if kill % 4 == 3:  # anywhere in the run: mid-cycle, mid-compose, mid-send
                time.sleep(rng.uniform(0.5, 4.0))
            else:  # at a random point after the first POST of this run
                deadline = time.monotonic() + 30
                while len(hook.tries) == tried and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 1.0))
            if proc.poll() is None and len(hook.tries) > tried:
                mid_send += 1  # alive, and it had started sending
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert mid_send >= 10, mid_send
        # Time passes: sends a kill left claimed count as interrupted and are due again.
        con = sqlite3.connect(db)
        con.execute("UPDATE alert_sends SET next_attempt_at = '2000-01-01 00:00:00.000000' WHERE status = 'pending'")
        con.commit()
        hook.hang = 0
        for _ in range(2):
            assert run(cfg, "poll", "--once").wait(120) == 0
    finally:
        hook.stop()

    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stories = {s for (s,) in con.execute("SELECT DISTINCT story_id FROM items")}
    assert len(stories) == len(articles)  # each article its own story
    # Every story was taken on once, carried by one message, and that message was sent to both URLs.
    events = con.execute("SELECT story_id, message_id FROM alert_events WHERE alert = 'desk'").fetchall()
    assert sorted(s for s, _ in events) == sorted(stories)
    assert all(m is not None for _, m in events)
    assert con.execute("SELECT count(*) FROM alert_sends WHERE status != 'sent'").fetchone()[0] == 0
    refs = dict(con.execute("SELECT id, ref FROM alert_messages").fetchall())
    carried = {refs[m] for _, m in events}
    for path in ("/a", "/b"):
        received = Counter(p.ref for p in hook.at(path))
        assert set(received) == carried, path  # each at least once, and nothing that was not recorded
        # A copy is the same message: same ref, same text.
        for ref, n in received.items():
            bodies = {json.dumps(p.body, sort_keys=True) for p in hook.at(path) if p.ref == ref}
            assert len(bodies) == 1, (ref, n)
    doubled = sum(n - 1 for path in ("/a", "/b") for n in Counter(p.ref for p in hook.at(path)).values())
    print(f"kills {KILLS} ({mid_send} while sending); stories {len(stories)}; re-sent copies {doubled}")
