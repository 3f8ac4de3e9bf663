"""Feed discovery from a page (real HTTP server on 127.0.0.1) and OPML 2.0 lists (listparser)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.config import FetchConfig
from tracker.core.errors import ConfigError, FetchError
from tracker.sources.discover import advertised_feeds, discover
from tracker.sources.fetching import Fetcher
from tracker.sources.opml import ListedFeed, read_opml, write_opml

from .conftest import HTTPServer, Response
from .feedkit import Entry, atom, rss

HTML = {"Content-Type": "text/html; charset=utf-8"}
RSS = {"Content-Type": "application/rss+xml"}


def _fetcher() -> Fetcher:
    return Fetcher(FetchConfig(allow_private_addresses=True, total_timeout=10))


def _entries(server: HTTPServer) -> list[Entry]:
    return [Entry(slug="tram", title="Council extends tram line", link=server.url("/news/tram.html"))]


def test_a_feed_url_is_its_own_feed(http_server: HTTPServer) -> None:
    http_server.routes["/feed.xml"] = Response(200, rss(_entries(http_server), title="Gazette"), RSS)
    with _fetcher() as fetcher:
        (found,) = discover(fetcher, http_server.url("/feed.xml"))
    assert found.url == http_server.url("/feed.xml") and found.title == "Gazette"
    assert found.version == "rss20" and found.entries == 1


def test_a_page_offers_the_feeds_it_advertises(http_server: HTTPServer) -> None:
    head = (
        '<link rel="alternate" type="application/rss+xml" title="All news" href="/feeds/all.xml">'
        '<link rel="alternate" type="application/atom+xml" href="feeds/world.atom">'
        '<link rel="alternate" type="application/feed+json" title="JSON" href="/feed.json">'
        '<link rel="alternate" type="application/rss+xml" href="/feeds/broken.xml">'
        '<link rel="stylesheet" type="text/css" href="/style.css">'
        '<link rel="alternate" hreflang="de" href="/de/">'
    )
    http_server.routes["/section/"] = Response(200, f"<html><head>{head}</head><body>Hi</body></html>", HTML)
    http_server.routes["/feeds/all.xml"] = Response(200, rss(_entries(http_server), title=""), RSS)
    http_server.routes["/section/feeds/world.atom"] = Response(
        200, atom(_entries(http_server), title="World"), {"Content-Type": "application/atom+xml"}
    )
    items = [{"id": "1", "url": http_server.url("/news/tram.html"), "title": "Tram"}]
    http_server.routes["/feed.json"] = Response(
        200, json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}), {}
    )
    http_server.routes["/feeds/broken.xml"] = Response(200, "<html>not a feed</html>", HTML)
    with _fetcher() as fetcher:
        found = discover(fetcher, http_server.url("/section/"))
    assert [(f.url.removeprefix(http_server.base_url), f.title, f.version) for f in found] == [
        ("/feeds/all.xml", "All news", "rss20"),  # the feed has no title: the page's label is used
        ("/section/feeds/world.atom", "World", "atom10"),
        ("/feed.json", "J", "json11"),
    ]
    assert http_server.hits("/style.css") == 0 and http_server.hits("/de/") == 0


def test_a_page_without_links_is_probed_at_common_paths(http_server: HTTPServer) -> None:
    http_server.routes["/"] = Response(200, "<html><head><title>Gazette</title></head><body></body></html>", HTML)
    http_server.routes["/rss.xml"] = Response(200, rss(_entries(http_server), title="Gazette"), RSS)
    with _fetcher() as fetcher:
        (found,) = discover(fetcher, http_server.url("/"))
    assert found.url == http_server.url("/rss.xml")
    assert http_server.hits("/atom.xml") == 0  # stops at the first that works


def test_nothing_found_and_a_missing_page(http_server: HTTPServer) -> None:
    http_server.routes["/"] = Response(200, "<html><body>No feeds here</body></html>", HTML)
    with _fetcher() as fetcher:
        assert discover(fetcher, http_server.url("/")) == []
        with pytest.raises(FetchError, match="HTTP 404"):
            discover(fetcher, http_server.url("/gone"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda t: f"<link rel='alternate' {t}>".encode()))
def test_advertised_feeds_never_raises(html: bytes) -> None:
    for url, _title in advertised_feeds(html, "https://example.org/page"):
        assert url.startswith(("http://", "https://"))


_name = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).map(str.strip).filter(bool)
_segment = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=8)
_category = st.lists(_segment, min_size=1, max_size=3).map("/".join)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(_name, st.lists(_category, max_size=3, unique=True).map(lambda c: tuple(sorted(c)))),
        max_size=8,
    )
)
def test_opml_round_trips_names_urls_and_categories(tmp_path_factory: pytest.TempPathFactory, spec: list) -> None:
    feeds = [ListedFeed(f"https://feeds{n}.example/rss", name, cats) for n, (name, cats) in enumerate(spec)]
    path = tmp_path_factory.mktemp("opml") / "feeds.opml"
    path.write_text(write_opml(feeds, now=datetime(2026, 12, 4, tzinfo=UTC)), encoding="utf-8")
    back = read_opml(path)
    assert sorted(back.feeds, key=lambda f: f.url) == sorted(feeds, key=lambda f: f.url)
    assert back.skipped == ()


def test_opml_from_another_reader_with_folders_and_bad_outlines(tmp_path: Path) -> None:
    path = tmp_path / "export.opml"
    path.write_text(
        '<?xml version="1.0"?><opml version="1.0"><head><title>Reader</title></head><body>'
        '<outline text="Autos"><outline text="Autos desk" type="rss" xmlUrl="https://a.example/autos.xml"/>'
        '<outline text="Trade" type="rss" xmlUrl="https://t.example/f" category="/Policy/Trade"/></outline>'
        '<outline text="Script" xmlUrl="javascript:alert(1)"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    got = read_opml(path)
    assert got.feeds == (
        ListedFeed("https://a.example/autos.xml", "Autos desk", ("Autos",)),
        ListedFeed("https://t.example/f", "Trade", ("Autos", "Policy/Trade")),
    )
    assert len(got.skipped) == 1 and "javascript:" in got.skipped[0]


@pytest.mark.parametrize("content", [b"not xml at all", b"", b"<html><body>hello</body></html>"])
def test_a_file_that_is_not_opml_is_one_error_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "feeds.opml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_opml(path)
    assert str(err.value).startswith(f"{path}: not an OPML file")
    with pytest.raises(ConfigError, match="cannot read"):
        read_opml(tmp_path / "missing.opml")


@pytest.mark.parametrize(
    "body",
    [
        '<opml version="2.0"><body><outline text="a"><rdf:rdf></rdf:rdf></outline></body></opml>',
        '<opml version="2.0"><body>'
        + '<outline text="f">' * 40
        + '<outline xmlUrl="https://a.example/f"/>'
        + "</body></opml>",
    ],
    ids=["parser trips", "too deep"],
)
def test_an_opml_file_the_parser_cannot_use_is_one_error(tmp_path: Path, body: str) -> None:
    path = tmp_path / "odd.opml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_opml(path)
    assert str(err.value).startswith(str(path))


@settings(max_examples=150, deadline=None)
@given(name=st.text(max_size=30), category=st.text(max_size=30), tail=st.text(max_size=10))
def test_exported_opml_is_well_formed_whatever_the_names(name: str, category: str, tail: str) -> None:
    import xml.etree.ElementTree as ET

    document = write_opml([ListedFeed("https://a.example/" + "x", name or "n", (category or "c", tail or "t"))])
    ET.fromstring(document.encode("utf-8"))  # parses: no character XML cannot carry, no lone surrogate


@pytest.mark.parametrize(
    "url", ["ht\ttp://a.example/", "http\n://a.example/", "http://a.example/\nx", "http://exa mple.com/"]
)
def test_urls_with_whitespace_or_control_characters_are_refused(url: str) -> None:
    from tracker.core.urls import validate_feed_url

    assert validate_feed_url(url) is not None


def test_unreadable_links_on_a_page_are_skipped() -> None:
    html = (
        b'<base href="http://[x/"><link rel="alternate" type="application/rss+xml" href="http://[oops/feed">'
        b'<link rel="alternate" type="application/rss+xml" href="/good.xml">'
    )
    assert advertised_feeds(html, "https://example.org/") == [("https://example.org/good.xml", None)]
