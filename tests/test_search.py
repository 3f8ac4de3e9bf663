"""`tracker search`: full-text search over title, text and entities, kept in sync on every write."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from tracker.demo.site import NewsSite

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import tracker, write_config

pytestmark = pytest.mark.slow

ARTICLES = {
    "quay": (
        "Harbour board approves the new quay",
        (
            "The harbour board of Eastbrook approved the new deep-water quay on Tuesday after a long debate.",
            "Dredging is due to start in the spring, and the board expects the quay to open within two years.",
            "Ferry operators welcomed the vote but asked for a new timetable during the works on the quay.",
        ),
    ),
    "tram": (
        "Council extends the riverside tram line",
        (
            "The city council voted to extend the riverside tram line by four stops in the northern districts.",
            "Construction is expected to last two years, with buses replacing trams on the affected section.",
            "Residents of the northern districts have asked for the extension for most of the past decade.",
        ),
    ),
    "market": (
        "Fish market moves to the old ferry terminal",
        (
            "The fish market will move to the old ferry terminal next month, the harbour master said.",
            "Traders said the new hall is larger and closer to the boats, though parking remains a worry.",
            "The harbour board will decide on the rent for the new hall at its meeting in March.",
        ),
    ),
}
RULE = 'id = "harbour"\ntitle = "Harbour board"\nquery = \'harbour AND board\'\n'


@pytest.fixture
def polled(tmp_path: Path, http_server: HTTPServer) -> Path:
    entries = []
    for slug, (title, paragraphs) in ARTICLES.items():
        http_server.routes[f"/{slug}.html"] = Response(200, page(title, paragraphs), HTML_HEADERS)
        entries.append(Entry(slug=slug, title=title, link=http_server.url(f"/{slug}.html")))
    http_server.routes["/feed.xml"] = Response(200, rss(entries), RSS_HEADERS)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.sqlite"}"\n[rules]\npaths = ["{rules}"]\n'
        f'[fetch]\nextract_workers = 1\n[[feeds]]\nname = "Gazette"\nurl = "{http_server.url("/feed.xml")}"\n',
        encoding="utf-8",
    )
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    return cfg


def search(cfg: Path, *args: str) -> list[dict]:
    result = tracker("--config", str(cfg), "search", *args, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_search_ranks_marks_and_filters(polled: Path) -> None:
    hits = search(polled, "quay")
    assert [h["title"] for h in hits] == ["Harbour board approves the new quay"]
    assert "[quay]" in hits[0]["snippet"] and hits[0]["topics"] == ["harbour"]
    # Stemming: "votes" finds "voted" and "vote"; ranked, the title hit first.
    assert {h["title"] for h in search(polled, "votes")} == {
        "Harbour board approves the new quay",
        "Council extends the riverside tram line",
    }
    ranked = search(polled, "harbour")
    assert ranked[0]["title"] == "Harbour board approves the new quay" and len(ranked) == 2
    assert ranked[0]["score"] >= ranked[1]["score"]
    assert [h["title"] for h in search(polled, '"ferry terminal"')] == ["Fish market moves to the old ferry terminal"]
    assert [h["title"] for h in search(polled, "harbour NOT quay")] == ["Fish market moves to the old ferry terminal"]
    assert len(search(polled, "harbour OR tram")) == 3
    assert search(polled, "tram", "--rule", "harbour") == []
    assert search(polled, "harbour", "--since", "2999-01-01") == []
    assert len(search(polled, "harbour", "--until", "2999-01-01")) == 2
    assert len(search(polled, "harbour", "--source", "Gazette")) == 2
    assert search(polled, "harbour", "--source", "elsewhere.example") == []
    assert len(search(polled, "harbour OR tram", "--limit", "1")) == 1


def test_table_and_csv_output(polled: Path) -> None:
    shown = tracker("--config", str(polled), "search", "quay")
    assert shown.returncode == 0 and "Harbour board approves the new quay" in shown.stdout and "[quay]" in shown.stdout
    out = tracker("--config", str(polled), "search", "harbour", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and set(rows[0]) >= {"item_id", "title", "url", "snippet", "score"}


def test_a_bad_query_is_one_line_and_exit_2(polled: Path) -> None:
    result = tracker("--config", str(polled), "search", '"unbalanced')
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a valid query" in result.stderr


def test_the_index_follows_every_write(polled: Path) -> None:
    db = sqlite3.connect(polled.parent / "t.sqlite")
    db.execute("UPDATE items SET title = 'Lighthouse keeper retires' WHERE title LIKE 'Council%'")
    db.commit()
    assert [h["title"] for h in search(polled, "lighthouse")] == ["Lighthouse keeper retires"]
    assert search(polled, "riverside tram", "--format", "jsonl")  # the text is still indexed
    db.execute("DELETE FROM items WHERE title = 'Lighthouse keeper retires'")
    db.commit()
    assert search(polled, "lighthouse") == [] and search(polled, "riverside") == []


def test_entities_are_searchable(tmp_path: Path, news_site: NewsSite) -> None:
    cfg = write_config(tmp_path, news_site)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    db = sqlite3.connect(tmp_path / "data" / "tracker.sqlite")
    found = db.execute("SELECT id, entities FROM items WHERE entities IS NOT NULL ORDER BY id").fetchall()
    assert found, "the demo articles' matches name catalogue entities"
    item_id, entities = found[0]
    entity = entities.split(":", 1)[0]  # "ford: Ford, Ford Motor; ..." → ford
    hits = search(cfg, f'"{entity}"', "--limit", "100")  # quoted: ids such as chinese-automakers have hyphens
    assert item_id in {h["item_id"] for h in hits}
