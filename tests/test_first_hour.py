"""The new user's first hour, walked end to end through the `tracker` command in a fresh
directory: the demo, then the read commands on the demo's store without flags, feeds found
on a site's page, exported to OPML and imported into a fresh store. Read commands never
create or change a file, and a store that is not there is one line and exit 2."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tracker.demo.site import NewsSite

from .test_cli import tracker

pytestmark = pytest.mark.slow

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``directory``: content hash and modification time."""
    return {
        str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    where = tmp_path_factory.mktemp("newcomer")
    env = {"TRACKER_HOME": str(where / "home")}  # where the default store would go: never used here
    result = tracker("demo", cwd=where, env=env)
    assert result.returncode == 0, result.stderr
    assert "tracker stories" in result.stdout and "--db" not in result.stdout
    assert (where / "tracker.sqlite").is_file()
    return where, env


READ_COMMANDS = [
    ("stories",),
    ("stories", "--format", "json"),
    ("story", "1"),
    ("search", "joint venture", "--format", "jsonl"),
    ("explain", "1"),
    ("status",),
    ("feeds",),
    ("feeds", "--format", "json"),
    ("feeds", "export"),
    ("rules", "check"),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_read_commands_work_on_the_demo_store_and_change_nothing(
    demo_dir: tuple[Path, dict[str, str]], args: tuple[str, ...]
) -> None:
    where, env = demo_dir
    before = snapshot(where)
    result = tracker(*args, cwd=where, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert snapshot(where) == before, f"`tracker {' '.join(args)}` changed a file"
    assert not (where / "home").exists()


def test_what_the_read_commands_say(demo_dir: tuple[Path, dict[str, str]]) -> None:
    where, env = demo_dir
    stories = json.loads(tracker("stories", "--format", "json", "--limit", "0", cwd=where, env=env).stdout)
    con = sqlite3.connect(where / "tracker.sqlite")
    assert len(stories) == con.execute("SELECT count(*) FROM stories").fetchone()[0]
    grouped = [s for s in stories if s["n_items"] > 1]
    assert grouped and all(isinstance(s["topics"], list) and ISO.match(s["first_seen"]) for s in stories)
    story = json.loads(tracker("story", str(grouped[0]["story_id"]), "--format", "json", cwd=where, env=env).stdout)
    assert story["headline"] == grouped[0]["headline"] and len(story["items"]) == grouped[0]["n_items"]
    # The demo has two outlets, and stories they both report count both.
    assert any(s["n_sources"] >= 2 for s in grouped)
    assert len({item["outlet"] for s in grouped for item in _story(s, where, env)["items"]}) >= 2
    hits = tracker("search", "joint venture", "--format", "jsonl", cwd=where, env=env).stdout.splitlines()
    assert hits and all(isinstance(json.loads(h)["topics"], list) for h in hits)
    explain = tracker("explain", "1", cwd=where, env=env)
    assert explain.returncode == 0 and explain.stdout.strip()
    status = tracker("status", cwd=where, env=env).stdout
    assert str(where / "tracker.sqlite") in status
    items = tracker("export", "--out", "-", "--format", "jsonl", cwd=where, env=env)
    rows = [json.loads(line) for line in items.stdout.splitlines()]
    bad = [r for r in rows if not (isinstance(r["terms"], list) and ISO.match(r["published_at"] or ""))]
    assert rows and not bad, bad[:1]
    assert "rows written to standard output" in items.stderr
    exported = tracker("export", "--what", "stories", "--out", "-", "--format", "jsonl", cwd=where, env=env)
    assert all(isinstance(json.loads(line)["topics"], list) for line in exported.stdout.splitlines())
    report = tracker("report", "--out", "report.html", cwd=where, env=env)
    assert report.returncode == 0, report.stderr
    assert (where / "report.html").stat().st_size > 1000


def _story(story: dict[str, Any], where: Path, env: dict[str, str]) -> dict[str, Any]:
    shown = tracker("story", str(story["story_id"]), "--format", "json", cwd=where, env=env)
    found: dict[str, Any] = json.loads(shown.stdout)
    return found


@pytest.mark.parametrize("args", [a for a in READ_COMMANDS if a[0] not in ("rules",)], ids=" ".join)
def test_a_store_that_is_not_there_is_one_line_and_nothing_is_created(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = tracker("--db", "typo/tracker.sqlite", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no database at" in result.stderr and "typo/tracker.sqlite" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_feeds_found_on_a_page_exported_and_imported_into_a_fresh_store(tmp_path: Path, news_site: NewsSite) -> None:
    mine = ["--db", str(tmp_path / "mine.sqlite")]
    add = tracker(*mine, "feeds", "add", news_site.base_url + "/", "--yes", "--category", "Demo/Ledger", cwd=tmp_path)
    assert add.returncode == 0, add.stderr
    assert add.stdout.count("added ") == 3
    listed = json.loads(tracker(*mine, "feeds", "--format", "json", cwd=tmp_path).stdout)
    assert {f["url"] for f in listed} == set(news_site.feed_urls("ledger").values())
    assert {f["origin"] for f in listed} == {"cli"}
    exported = tracker(*mine, "feeds", "export", "feeds.opml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "<opml" in (tmp_path / "feeds.opml").read_text(encoding="utf-8")

    fresh = ["--db", str(tmp_path / "fresh.sqlite")]
    assert tracker(*fresh, "init", cwd=tmp_path).returncode == 0
    imported = tracker(*fresh, "feeds", "import", "feeds.opml", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "3 added, 0 already polled, 0 skipped" in imported.stdout
    again = json.loads(tracker(*fresh, "feeds", "--format", "json", cwd=tmp_path).stdout)
    assert {(f["url"], f["name"]) for f in again} == {(f["url"], f["name"]) for f in listed}
    assert {f["origin"] for f in again} == {"opml"}
    back = tracker(*fresh, "feeds", "export", cwd=tmp_path).stdout
    assert back.count('category="') == 0 and back.count(">Ledger<") == 0 and 'text="Ledger"' in back

    first = next(iter(news_site.feed_urls().values()))
    assert "paused" in tracker(*fresh, "feeds", "pause", first, cwd=tmp_path).stdout
    states = {
        f["url"]: f["state"] for f in json.loads(tracker(*fresh, "feeds", "--format", "json", cwd=tmp_path).stdout)
    }
    assert states[first] == "paused"
    poll = tracker(*fresh, "poll", "--once", cwd=tmp_path)
    assert poll.returncode == 0, poll.stderr
    assert "2 feeds" in poll.stdout  # the paused one is not polled
    assert tracker(*fresh, "feeds", "remove", first, cwd=tmp_path).returncode == 0
    gone = {f["url"] for f in json.loads(tracker(*fresh, "feeds", "--format", "json", cwd=tmp_path).stdout)}
    assert first not in gone


def test_adding_a_page_without_feeds_says_so(tmp_path: Path, news_site: NewsSite) -> None:
    page = news_site.base_url + "/articles/" + news_site.articles[0]["slug"] + ".html"
    result = tracker("--db", str(tmp_path / "mine.sqlite"), "feeds", "add", page, "--yes", cwd=tmp_path)
    assert result.returncode == 2
    assert "no feed found at" in result.stderr and result.stderr.count("\n") == 1


def test_progress_shows_on_a_terminal_and_not_in_a_pipe(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    env = {**os.environ, "TRACKER_HOME": str(tmp_path / "home")}
    env.pop("TRACKER_CONFIG", None)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "demo"], cwd=tmp_path, env=env, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=300) == 0
    os.close(primary)
    assert b"polling the demo site: 4/4 feeds, 30 articles stored" in seen
    piped = tracker("demo", "--db", "again.sqlite", cwd=tmp_path, env={"TRACKER_HOME": str(tmp_path / "home")})
    assert piped.returncode == 0 and "polling the demo site" not in piped.stdout + piped.stderr


@pytest.mark.parametrize(
    "args",
    [("feeds", "pause", "x"), ("feeds", "resume", "x"), ("feeds", "remove", "x"), ("rematch",), ("maintain",)],
    ids=" ".join,
)
def test_commands_that_change_a_store_never_create_one(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = tracker("--db", "typo.sqlite", *args, cwd=tmp_path)
    assert result.returncode == 2 and "no database at" in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_demo_store_keeps_its_feeds_apart_and_explains_its_window(demo_dir: tuple[Path, dict[str, str]]) -> None:
    where, env = demo_dir
    feeds = json.loads(tracker("feeds", "--format", "json", cwd=where, env=env).stdout)
    assert {(f["origin"], f["state"], f["next_poll_at"]) for f in feeds} == {("demo", "paused", None)}
    report = tracker("report", "--out", "-", "--days", "7", cwd=where, env=env)
    assert report.returncode == 0, report.stderr
    assert "The last 7 days" in report.stdout and "No stories in this period" not in report.stdout.split("</h2>")[1]
    url = json.loads(tracker("explain", "1", "--format", "json", cwd=where, env=env).stdout)["url"]
    pasted = tracker("explain", f"{url}?utm_source=rss&utm_medium=feed#top", cwd=where, env=env)
    assert pasted.returncode == 0 and pasted.stdout.startswith("item 1:")


def test_feeds_by_name_and_a_database_url_nobody_knows(tmp_path: Path, news_site: NewsSite) -> None:
    mine = ["--db", str(tmp_path / "mine.sqlite")]
    assert (
        tracker(*mine, "feeds", "add", news_site.base_url + "/feeds/autos.xml", "--yes", cwd=tmp_path).returncode == 0
    )
    name = json.loads(tracker(*mine, "feeds", "--format", "json", cwd=tmp_path).stdout)[0]["name"]
    paused = tracker(*mine, "feeds", "pause", name, cwd=tmp_path)
    assert paused.returncode == 0 and "paused" in paused.stdout
    assert "1 paused" in tracker(*mine, "status", cwd=tmp_path).stdout
    odd = tracker("--db", "sqlte:///x.sqlite", "stories", cwd=tmp_path)
    assert odd.returncode == 2 and "not a database URL" in odd.stderr
