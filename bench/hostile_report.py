"""Each hostile source alone, then all of them together: outcome, wall time and peak memory.

The sources are those of tests/hostile.py, served on 127.0.0.1 (and 127.0.0.2, [::1]) under
the limits of tests/test_hostile.py: the first cases (CASES) under LIMITS, the newer ones
(MORE_CASES) and the row for all of them together under ``limits()``. Every row is one child
process, so its peak RSS is its own (wait4 reports the largest of the child and of the
extraction worker it started). Run from the repository root:

    python bench/hostile_report.py

Most rows are `tracker poll --once`. Two are not quite that:

- "1,000 articles on one throttled host" runs with per_host_per_minute = 30, beside the good
  feed on another host, in a child that runs the same cycle through ``tracker.pipeline.cycle.run_cycle``
  and stops it once the other host's feed is recorded (the whole backlog would take over half an
  hour); its row says how far host A got by then.
- "non-ASCII ETag and Last-Modified" is polled twice; the outcome gives the second poll's status.

In the row for all of them together, the throttled feed has only THROTTLED_TOGETHER articles,
so the cycle ends about a minute after it starts.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hostile import MORE_CASES, HostileServer, build_payloads, feed_urls, more_feed_url  # noqa: E402
from tests.test_hostile import LIMITS, THROTTLED_TOGETHER, limits  # noqa: E402

Row = tuple[str, str, str, float, float]


def child(args: list[str]) -> tuple[int, float, float]:
    """Run ``python args...`` with no output: (exit code, wall seconds, peak RSS in MB)."""
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO
    )
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - t0, usage.ru_maxrss / 1024


def write_config(path: Path, feeds: dict[str, str], limits_text: str) -> Path:
    db = path.with_suffix(".sqlite")
    body = f'[database]\nurl = "sqlite:///{db}"\n{limits_text}'
    body += "".join(f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds.items())
    path.write_text(body, encoding="utf-8")
    return path


def poll(cfg: Path) -> tuple[int, float, float]:
    return child(["-m", "tracker", "--config", str(cfg), "poll", "--once"])


def short(error: str | None) -> str:
    """The recorded error without the URL it starts with (redacted there anyway)."""
    error = error or ""
    if error.startswith(("http://", "https://")) and ": " in error:
        error = error.split(": ", 1)[1]
    return error[:70].replace("|", "/")


def outcome(db: Path, name: str) -> tuple[str, str]:
    """(outcome, recorded error) of the feed ``name``: its last status, and for a success the
    items stored and where their text came from."""
    con = sqlite3.connect(db)
    row = con.execute("SELECT id, last_status, last_error FROM feeds WHERE name = ?", (name,)).fetchone()
    if row is None or row[1] is None:
        con.close()
        return "not recorded", ""
    feed_id, status, error = row
    if status != "ok":
        con.close()
        return status, short(error)
    sources = Counter(
        s
        for (s,) in con.execute(
            "SELECT i.text_source FROM items i JOIN item_sources s ON s.item_id = i.id WHERE s.feed_id = ?", (feed_id,)
        )
    )
    rules = Counter(
        r
        for (r,) in con.execute(
            "SELECT m.rule_id FROM matches m JOIN item_sources s ON s.item_id = m.item_id WHERE s.feed_id = ?",
            (feed_id,),
        )
    )
    con.close()
    text = f"ok, {sum(sources.values())} items"
    if sources:
        text += " (" + ", ".join(f"{n} {s}" for s, n in sources.most_common()) + ")"
    if rules:
        text += "; matched " + ", ".join(rules)
    return text, short(error)


def alone(tmp: Path, n: int, name: str, url: str, limits_text: str) -> Row:
    cfg = write_config(tmp / f"case{n}.toml", {name: url}, limits_text)
    _, seconds, mb = poll(cfg)
    return (name, *outcome(cfg.with_suffix(".sqlite"), name), seconds, mb)


def twice(tmp: Path, n: int, name: str, url: str) -> Row:
    """Two polls; the first one's time and memory, the second one's status."""
    cfg = write_config(tmp / f"case{n}.toml", {name: url}, limits())
    _, seconds, mb = poll(cfg)
    first, error = outcome(cfg.with_suffix(".sqlite"), name)
    poll(cfg)
    con = sqlite3.connect(cfg.with_suffix(".sqlite"))
    again = con.execute("SELECT last_status FROM feeds WHERE name = ?", (name,)).fetchone()[0]
    con.close()
    return name, f"{first}; second poll: {again}", error, seconds, mb


def redirect(tmp: Path, n: int, name: str, url: str, server: HostileServer) -> Row:
    before = server.internal_hits
    row = alone(tmp, n, name, url, limits())
    reached = server.internal_hits - before
    return row[0], f"{row[1]}; internal server reached: {'yes' if reached else 'no'}", *row[2:]


def throttled(tmp: Path, server: HostileServer) -> list[Row]:
    """Host A (localhost): 1,000 articles at 30 a minute, beside the good feed on 127.0.0.2,
    in a cycle stopped once that feed is recorded."""
    a, other = MORE_CASES["throttled"], MORE_CASES["other-host"]
    feeds = {a: more_feed_url(server, "throttled", throttled=1000), other: more_feed_url(server, "other-host")}
    cfg = write_config(tmp / "throttled.toml", feeds, limits(per_host_per_minute=30))
    before = server.hits_under("/throttled/")
    _, seconds, mb = child([__file__, "--cycle", str(cfg), "--stop-after", other])
    fetched = server.hits_under("/throttled/") - before
    db = cfg.with_suffix(".sqlite")
    con = sqlite3.connect(db)
    took = dict(con.execute("SELECT f.name, l.duration_ms / 1000.0 FROM fetch_log l JOIN feeds f ON f.id = l.feed_id"))
    con.close()
    other_outcome, other_error = outcome(db, other)
    a_outcome, a_error = outcome(db, a)
    if a_outcome == "not recorded":
        a_outcome = "abandoned at the stop"
    return [
        (a, f"{a_outcome}; {fetched} of 1000 articles fetched in {seconds:.0f} s", a_error, seconds, mb),
        (other, f"{other_outcome}; recorded after {took.get(other, float('nan')):.1f} s", other_error, seconds, mb),
    ]


def together(tmp: Path, server: HostileServer) -> Row:
    feeds = feed_urls(server) | {
        name: more_feed_url(server, key, throttled=THROTTLED_TOGETHER) for key, name in MORE_CASES.items()
    }
    cfg = write_config(tmp / "together.toml", feeds, limits())
    _, seconds, mb = poll(cfg)
    con = sqlite3.connect(cfg.with_suffix(".sqlite"))
    statuses = Counter(s or "not recorded" for (s,) in con.execute("SELECT last_status FROM feeds"))
    items = con.execute("SELECT count(*) FROM items").fetchone()[0]
    con.close()
    summary = ", ".join(f"{n} {s}" for s, n in statuses.most_common())
    return f"all {len(feeds)} feeds together", f"{summary}; {items} items", "", seconds, mb


def run_stopped_cycle(config_path: str, stop_after: str) -> None:
    """The child of ``throttled``: one cycle, as `tracker poll --once` wires it, stopped once
    the feed ``stop_after`` is recorded."""
    from tracker.core.config import load_config
    from tracker.pipeline.cycle import run_cycle
    from tracker.service.app import load_matcher, make_extractor, prepare
    from tracker.sources.fetching import Fetcher

    config = load_config(config_path)
    ready = prepare(config)
    stop = threading.Event()
    db = config.database_url.removeprefix("sqlite:///")

    def watch() -> None:
        while not stop.is_set():
            time.sleep(0.2)
            con = sqlite3.connect(db)
            try:
                row = con.execute("SELECT last_status FROM feeds WHERE name = ?", (stop_after,)).fetchone()
            except sqlite3.Error:
                row = None
            finally:
                con.close()
            if row and row[0]:
                stop.set()

    threading.Thread(target=watch, daemon=True).start()
    with Fetcher(config.fetch) as fetcher, make_extractor(config, load_matcher(config)) as extractor:
        run_cycle(
            ready.store,
            fetcher,
            ready.matcher,
            extractor,
            config.poll,
            feeds=ready.feeds,
            grouper=ready.grouper,
            stop=stop,
            stop_timeout=3,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycle", help=argparse.SUPPRESS)
    parser.add_argument("--stop-after", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cycle:
        run_stopped_cycle(args.cycle, args.stop_after)
        return
    build_payloads()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d, HostileServer() as server:
        tmp = Path(d)
        for n, (name, url) in enumerate(feed_urls(server).items()):
            rows.append(alone(tmp, n, name, url, LIMITS))
        for n, (key, name) in enumerate(MORE_CASES.items(), start=100):
            if key == "throttled":
                rows.extend(throttled(tmp, server))
            elif key == "other-host":
                continue  # beside the throttled host
            elif key == "/latin1-validators.xml":
                rows.append(twice(tmp, n, name, more_feed_url(server, key)))
            elif key.startswith("/redirect/"):
                rows.append(redirect(tmp, n, name, more_feed_url(server, key), server))
            else:
                rows.append(alone(tmp, n, name, more_feed_url(server, key), limits()))
        rows.append(together(tmp, server))
    print("| source | outcome | recorded error | wall s | peak MB |")
    print("| --- | --- | --- | ---: | ---: |")
    for name, result, error, seconds, mb in rows:
        print(f"| {name} | {result} | {error} | {seconds:.1f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
