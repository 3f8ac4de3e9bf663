"""JSON Feed 1.0 and 1.1: read like RSS and Atom, through the same entry conversion, the same
per-entry fault boundary and the same pipeline (end to end through `tracker poll --once`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker.core.errors import ParseError
from tracker.sources.feeds import parse_feed

from .conftest import REPO, HTTPServer, Response
from .feedkit import page
from .test_cli import tracker

URL = "https://example.org/feed.json"


def doc(items: list[Any], version: str = "https://jsonfeed.org/version/1.1", **top: Any) -> bytes:
    return json.dumps({"version": version, "title": "Eastbrook Gazette", "items": items, **top}).encode()


def test_json_feed_1_1_maps_every_field() -> None:
    feed = parse_feed(
        doc(
            [
                {
                    "id": "tag:eastbrook,2026:tram",
                    "url": "https://example.org/news/tram.html",
                    "title": "Council extends the tram line <by four stops>",
                    "summary": "Four new stops.",
                    "content_html": "<p>The council <b>voted</b> on Tuesday.</p>",
                    "date_published": "2026-03-02T09:30:00+01:00",
                    "authors": [{"name": "Ada Quill"}],
                }
            ]
        ),
        URL,
        {"Content-Type": "application/feed+json"},
    )
    assert feed.version == "json11" and feed.title == "Eastbrook Gazette"
    (entry,) = feed.entries
    assert entry.link == "https://example.org/news/tram.html"
    assert entry.guid == "tag:eastbrook,2026:tram"
    assert entry.title == "Council extends the tram line <by four stops>"  # plain text stays text
    assert entry.summary == "Four new stops."
    assert entry.content == "The council voted on Tuesday."
    assert entry.author == "Ada Quill"
    assert entry.published == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def test_json_feed_1_0_author_numeric_id_text_content_and_external_url() -> None:
    feed = parse_feed(
        doc(
            [
                {
                    "id": 42,
                    "external_url": "https://other.example/report",
                    "title": "A link post",
                    "content_text": "Plain text with <angle> brackets & an ampersand.",
                    "date_modified": "2026-03-02T10:00:00Z",
                    "author": {"name": "Bo Reed"},
                }
            ],
            version="https://jsonfeed.org/version/1",
        ),
        URL,
    )
    assert feed.version == "json10"
    (entry,) = feed.entries
    assert entry.guid == "42" and entry.link == "https://other.example/report"
    assert entry.content == "Plain text with <angle> brackets & an ampersand."
    assert entry.author == "Bo Reed" and entry.published == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_bad_items_are_skipped_or_their_bad_values_ignored() -> None:
    good = {"id": "1", "url": "https://example.org/a", "title": "Good"}
    feed = parse_feed(
        doc(
            [
                "not an object",
                {"id": "2", "url": ["https://example.org/b"], "title": 7, "summary": "Odd types"},
                {"id": "3", "url": "https://example.org/c", "title": "Bad date", "date_published": "yesterday"},
                {
                    "id": "4",
                    "url": "https://example.org/d",
                    "title": "Far date",
                    "date_published": "9999-12-31T23:59:59-12:00",
                },
                good,
            ]
        ),
        URL,
    )
    by_guid = {e.guid: e for e in feed.entries}
    assert set(by_guid) == {"2", "3", "4", "1"}
    assert by_guid["2"].link is None and by_guid["2"].title == "" and by_guid["2"].summary == "Odd types"
    assert by_guid["3"].published is None and by_guid["4"].published is None
    assert len(feed.faults) == 1 and "str" in feed.faults[0]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "invalid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"items": []}', "jsonfeed.org version"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "items list"),
        (b"\xef\xbb\xbf{" + b"[" * 100_000, "invalid JSON"),
    ],
)
def test_unusable_json_is_one_parse_error_naming_the_url(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_feed(body, URL, {"Content-Type": "application/json"})
    message = str(err.value)
    assert message.startswith(URL) and reason in message and "\n" not in message


def test_max_entries_applies_to_json_items() -> None:
    items = [{"id": str(n), "url": f"https://example.org/{n}", "title": f"Item {n}"} for n in range(50)]
    feed = parse_feed(doc(items), URL, max_entries=5)
    assert [e.guid for e in feed.entries] == ["0", "1", "2", "3", "4"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "id",
        "url",
        "external_url",
        "title",
        "summary",
        "content_html",
        "content_text",
        "date_published",
        "authors",
        "author",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.one_of(_json, st.dictionaries(_fields, _json, max_size=8)), max_size=6), title=_json)
def test_any_json_feed_gives_entries_or_one_parse_error(items: list[Any], title: Any) -> None:
    """Property: whatever the publisher puts in the fields, parsing never raises anything but ParseError."""
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": title, "items": items}).encode()
    try:
        feed = parse_feed(body, URL)
    except ParseError:
        return
    assert len(feed.entries) + len(feed.faults) <= len(items)
    for entry in feed.entries:
        assert entry.link is None or entry.link.startswith(("http://", "https://"))


@pytest.mark.slow
def test_json_feed_polled_end_to_end(tmp_path: Path, http_server: HTTPServer) -> None:
    titles = {"tram": "Council extends the tram line", "fares": "Fares frozen for another year"}
    items = [
        {
            "id": slug,
            "url": http_server.url(f"/news/{slug}.html"),
            "title": title,
            "date_published": "2026-03-02T09:00:00Z",
        }
        for slug, title in titles.items()
    ]
    http_server.routes["/feed.json"] = Response(200, doc(items), {"Content-Type": "application/feed+json"})
    for slug, title in titles.items():
        http_server.routes[f"/news/{slug}.html"] = Response(
            200, page(title), {"Content-Type": "text/html; charset=utf-8"}
        )
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///t.sqlite"\n\n[rules]\npaths = ["{REPO / "rules"}"]\n\n'
        f'[[feeds]]\nname = "Gazette JSON"\nurl = "{http_server.url("/feed.json")}"\n',
        encoding="utf-8",
    )
    poll = tracker("--config", str(cfg), "poll", "--once")
    assert poll.returncode == 0, poll.stderr
    assert "2 new articles" in poll.stdout
    con = sqlite3.connect(tmp_path / "t.sqlite")
    stored = dict(con.execute("SELECT title, text_source FROM items").fetchall())
    assert set(stored) == set(titles.values())
    assert set(stored.values()) == {"extracted"}


def test_lone_surrogates_never_reach_the_store() -> None:
    """JSON escapes can carry lone surrogates, XML character references too; no store can keep
    them, so they never leave parsing (the feed's other entries are kept)."""
    body = (
        b'{"version":"https://jsonfeed.org/version/1.1","title":"Gaz \\ud800","items":['
        b'{"id":"\\udc00x","url":"https://a.example/\\ud800","title":"\\ud800 t"},'
        b'{"id":"2","url":"https://a.example/2","title":"fine"}]}'
    )
    feed = parse_feed(body, URL)
    assert len(feed.entries) == 2
    for value in (feed.title, *(v for e in feed.entries for v in (e.guid, e.link, e.title))):
        (value or "").encode("utf-8")  # raises on a surrogate
    rss = (
        b'<rss version="2.0"><channel><title>t</title>'
        + b"".join(b"<item><title>ok %d</title><link>https://a.example/%d</link></item>" % (i, i) for i in range(3))
        + b"<item><title>&#xD800; bad &#55296; &#x110000;</title><link>https://a.example/bad</link></item>"
        + b"</channel></rss>"
    )
    entries = parse_feed(rss, URL).entries
    assert len(entries) == 4 and all(e.title.encode("utf-8") for e in entries)
