"""Stories end to end: two outlets on loopback HTTP servers, `tracker poll --once`,
`tracker stories` and `tracker story`, and the `stories` view read with sqlite3."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import tracker

pytestmark = pytest.mark.slow

# Our own writing: a ferry terminal decision in a fictional city, reported by two outlets.
ORIGINAL = (
    "Harlan Bay's harbour board voted 7-2 on Monday to spend $86 million expanding the Quayside "
    "ferry terminal, adding two berths and a covered waiting hall for the island commuter routes.",
    "Board chair Odile Marchetti said the terminal, built in 1974, now handles three times the "
    "passengers it was designed for, and that queues on summer mornings regularly spill onto Dock Road.",
    "Construction is due to start in October and finish in the spring of 2028; the island ferries "
    "will keep running from a temporary pontoon while the old waiting room is demolished.",
    "The two members who voted against the plan said the board should first settle a dispute with "
    "the ferry operator over who pays for dredging the approach channel.",
)
# A syndicated copy: the same text under another headline, trimmed and with an extra line.
COPY = (*ORIGINAL[:3], "This report was supplied by the Harlan Bay News Service.")
# An independent rewrite of the same decision.
REWRITE = (
    "Commuters to the islands will get a bigger Quayside terminal: Harlan Bay's harbour board "
    "approved an $86 million expansion on Monday by seven votes to two.",
    "The plan adds two berths and a covered hall. Chair Odile Marchetti said the 1974 building was "
    "serving triple the passengers it was meant for, with summer queues backing onto Dock Road.",
    "Work starts in October and should be done by spring 2028, with a temporary pontoon in use meanwhile.",
)
# Same board, same terminal, a different event a day later.
OTHER = (
    "Harlan Bay's harbour board has suspended its chief engineer, Tobias Renn, pending an inquiry "
    "into invoices for last winter's breakwater repairs, the board said on Tuesday.",
    "An external auditor will review roughly $2.3 million in payments to two contractors. Renn, who "
    "has run the engineering department since 2019, did not respond to a request for comment.",
    "The board said the inquiry would not delay any of its building projects and named deputy "
    "engineer Priya Anand as acting head of the department.",
)

TERMINAL = "Harbour board backs $86m Quayside ferry terminal expansion"

RULE = """id = "harbour"
title = "Harbour board decisions"
query = 'harbour AND board'
"""


def _serve(
    server: HTTPServer, feed_title: str, articles: list[tuple[str, str, tuple[str, ...], str]], host: str
) -> str:
    base = server.base_url.replace("127.0.0.1", host)
    entries = []
    for slug, title, paragraphs, day in articles:
        server.routes[f"/{slug}.html"] = Response(body=page(title, paragraphs), headers=HTML_HEADERS)
        entries.append(Entry(slug=slug, title=title, link=f"{base}/{slug}.html", guid=f"{slug}-{day}"))
    server.routes["/feed.xml"] = Response(body=rss(entries, title=feed_title), headers=RSS_HEADERS)
    return f"{base}/feed.xml"


@pytest.fixture
def outlets() -> Iterator[tuple[str, str]]:
    gazette = HTTPServer().start()
    courier = HTTPServer().start()
    try:
        yield (
            _serve(
                gazette,
                "Harlan Bay Gazette",
                [
                    ("terminal", TERMINAL, ORIGINAL, "1"),
                    ("engineer", "Harbour board suspends chief engineer over repair invoices", OTHER, "2"),
                ],
                "127.0.0.1",
            ),
            _serve(
                courier,
                "Island Courier",
                [
                    ("ferry-copy", "Bigger ferry terminal approved for Quayside", COPY, "1"),
                    ("ferry-rewrite", "Islanders to get larger Quayside terminal after board vote", REWRITE, "1"),
                ],
                "localhost",  # another host name, so that the two count as two outlets
            ),
        )
    finally:
        gazette.stop()
        courier.stop()


def _config(tmp_path: Path, feeds: tuple[str, str]) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        '[database]\nurl = "sqlite:///data/tracker.sqlite"\n\n'
        f'[rules]\npaths = ["{rules}"]\n\n'
        f'[[feeds]]\nname = "Gazette"\nurl = "{feeds[0]}"\n\n'
        f'[[feeds]]\nname = "Courier"\nurl = "{feeds[1]}"\n',
        encoding="utf-8",
    )
    return cfg


def test_stories_group_copies_and_rewrites_not_other_events(tmp_path: Path, outlets: tuple[str, str]) -> None:
    cfg = _config(tmp_path, outlets)
    polled = tracker("--config", str(cfg), "poll", "--once", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    assert "Stories: 2 new, 1 update of known stories, 1 near-duplicate copy" in polled.stdout

    listed = tracker("--config", str(cfg), "stories", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    stories = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(s["n_items"] for s in stories) == [1, 3]
    terminal = next(s for s in stories if s["n_items"] == 3)
    assert terminal["n_sources"] == 2  # the gazette and the courier
    assert terminal["topics"] == ["harbour"]
    assert "terminal" in terminal["headline"].lower()

    db = sqlite3.connect(tmp_path / "data" / "tracker.sqlite")
    roles = dict(db.execute("SELECT title, story_role FROM items WHERE story_id = ?", (terminal["story_id"],)))
    assert sorted(roles.values()) == ["copy", "new", "update"]
    # The feeds are fetched concurrently: whichever of the two near-duplicates came second is the copy.
    near_duplicates = {roles["Bigger ferry terminal approved for Quayside"], roles[TERMINAL]}
    assert "copy" in near_duplicates
    view = db.execute("SELECT n_items, n_sources, topics FROM stories WHERE story_id = ?", (terminal["story_id"],))
    assert view.fetchone() == (3, 2, "harbour")

    table = tracker("--config", str(cfg), "stories", cwd=tmp_path)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["story", "first", "seen"]

    shown = tracker("--config", str(cfg), "story", str(terminal["story_id"]), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "3 items from 2 outlets" in shown.stdout
    assert "127.0.0.1" in shown.stdout and "localhost" in shown.stdout
    assert shown.stdout.count("/ferry-") == 2 and "/terminal.html" in shown.stdout

    # A second poll stores nothing new and changes no story.
    again = tracker("--config", str(cfg), "poll", "--once", cwd=tmp_path)
    assert again.returncode == 0
    relisted = [
        json.loads(line)
        for line in tracker("--config", str(cfg), "stories", "--json", cwd=tmp_path).stdout.splitlines()
    ]
    assert relisted == stories


def test_stories_filters_and_errors(tmp_path: Path, outlets: tuple[str, str]) -> None:
    cfg = _config(tmp_path, outlets)
    assert tracker("--config", str(cfg), "poll", "--once", cwd=tmp_path).returncode == 0

    by_rule = tracker("--config", str(cfg), "stories", "--json", "--rule", "harbour", cwd=tmp_path)
    assert by_rule.returncode == 0
    assert len(by_rule.stdout.splitlines()) == 2  # both stories mention the harbour board

    future = tracker("--config", str(cfg), "stories", "--json", "--since", "2099-01-01", cwd=tmp_path)
    assert future.returncode == 0 and future.stdout == ""

    unknown = tracker("--config", str(cfg), "stories", "--rule", "no-such-rule", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no-such-rule" in unknown.stderr and "harbour" in unknown.stderr

    missing = tracker("--config", str(cfg), "story", "99999", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no story 99999" in missing.stderr
