"""One poll cycle against real HTTP servers on 127.0.0.1 (no mocks of the code under test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tracker.core.config import Config, FetchConfig, PollConfig
from tracker.core.types import CycleReport, FeedSource, FetchStatus
from tracker.demo.site import NewsSite
from tracker.service.app import poll_once
from tracker.store.database import Store

from .conftest import REPO, HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, atom, page, rss

FAST = FetchConfig(connect_timeout=2, read_timeout=1.0, total_timeout=5, extract_workers=1)


def config(store: Store, feeds: dict[str, str], fetch: FetchConfig = FAST) -> Config:
    return Config(
        database_url=store.url,
        feeds=tuple(FeedSource(url=u, name=n) for n, u in feeds.items()),
        rule_paths=(REPO / "rules",),
        fetch=fetch,
        poll=PollConfig(min_text_chars=200),
    )


def rows(store: Store, sql: str) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql)).mappings()]


def feed_row(store: Store, name: str) -> dict:
    return rows(store, f"SELECT * FROM feeds WHERE name = '{name}'")[0]


def by_name(report: CycleReport) -> dict:
    return {f.name: f for f in report.feeds}


def serve_story(server: HTTPServer, slug: str, title: str, **kw: object) -> Entry:
    server.routes[f"/news/{slug}.html"] = Response(200, page(title, **kw), HTML_HEADERS)  # type: ignore[arg-type]
    return Entry(slug=slug, title=title, link=server.url(f"/news/{slug}.html"))


# -- the demo site: RSS 2.0, Atom and RSS 1.0 with realistic pages ------------------------


def test_demo_site_all_formats(store: Store, news_site: NewsSite) -> None:
    cfg = config(store, news_site.feed_urls(), FetchConfig(extract_workers=2))
    report = poll_once(cfg, store)
    feeds = by_name(report)
    assert all(f.status is FetchStatus.OK for f in report.feeds), report.feeds
    assert {f.entries > 0 for f in report.feeds} == {True}
    n_articles = len(news_site.articles)
    assert store.count("items") == n_articles == report.new_items
    # The Ledger's business articles are in both its RSS and Atom feeds: stored once, linked twice.
    business = sum(1 for a in news_site.articles if a["section"] == "business" and "outlet" not in a)
    assert store.count("item_sources") == n_articles + business
    assert sum(f.entries for f in report.feeds) == n_articles + business
    items = rows(store, "SELECT url, text, text_source, title, published_at FROM items")
    assert all("utm_" not in i["url"] for i in items)
    assert all(i["published_at"] for i in items)
    extracted = [i for i in items if i["text_source"] == "extracted"]
    assert len(extracted) == n_articles - 1  # one page is gone: feed text instead
    for item in extracted:
        assert "Comments are moderated" not in item["text"]
        assert "Sign up" not in item["text"]
        assert "All rights reserved" not in item["text"]
    gone = [i for i in items if i["text_source"] != "extracted"]
    assert [g["text_source"] for g in gone] == ["feed_summary"]
    assert feeds["Tech, Science & Sports (RSS 1.0)"].fallbacks == 1
    tagged = rows(store, "SELECT DISTINCT rule_id FROM tagged_items")
    assert {r["rule_id"] for r in tagged} >= {"ford-china-jv", "trump-xi-meeting", "gm-opposition"}


def test_second_poll_gets_304_and_adds_nothing(store: Store, news_site: NewsSite) -> None:
    cfg = config(store, news_site.feed_urls())
    poll_once(cfg, store)
    counts = {t: store.count(t) for t in ("items", "item_sources", "matches")}
    page_hits = sum(1 for p in news_site.requests if p.startswith("/articles/"))
    report = poll_once(cfg, store)
    assert {f.status for f in report.feeds} == {FetchStatus.NOT_MODIFIED}
    assert {t: store.count(t) for t in counts} == counts
    assert sum(1 for p in news_site.requests if p.startswith("/articles/")) == page_hits
    assert store.count("fetch_log") == 2 * len(report.feeds)


def test_unchanged_body_with_new_etag_is_not_parsed_again(store: Store, http_server: HTTPServer) -> None:
    entry = serve_story(http_server, "tram", "Council extends tram line")
    body = rss([entry])
    calls = iter(range(1000))
    http_server.routes["/feed.xml"] = lambda h: Response(200, body, {**RSS_HEADERS, "ETag": f'"v{next(calls)}"'})
    cfg = config(store, {"Gazette": http_server.url("/feed.xml")})
    assert by_name(poll_once(cfg, store))["Gazette"].new == 1
    report = poll_once(cfg, store)
    assert by_name(report)["Gazette"].status is FetchStatus.NOT_MODIFIED
    assert http_server.hits("/news/tram.html") == 1
    # The conditional GET carried the stored ETag.
    assert http_server.requests[-1][1].get("If-None-Match") == '"v0"'


def test_atom_feed_and_redirects(store: Store, http_server: HTTPServer) -> None:
    serve_story(http_server, "final", "Tram line opens early")
    http_server.routes["/news/moved.html"] = Response(301, b"", {"Location": "/news/final.html"})
    entry = Entry(slug="moved", title="Tram line opens early", link=http_server.url("/news/moved.html"))
    http_server.routes["/atom.xml"] = Response(200, atom([entry]), {"Content-Type": "application/atom+xml"})
    http_server.routes["/old-feed"] = Response(302, b"", {"Location": "/atom.xml"})
    report = poll_once(config(store, {"Atom": http_server.url("/old-feed")}), store)
    assert by_name(report)["Atom"].new == 1
    (item,) = rows(store, "SELECT url, final_url, text_source FROM items")
    assert item["final_url"] == http_server.url("/news/final.html")
    assert item["text_source"] == "extracted"


def test_failing_feeds_are_recorded_and_the_cycle_goes_on(store: Store, http_server: HTTPServer) -> None:
    good = serve_story(http_server, "ok", "Council approves fare review")
    http_server.routes["/good.xml"] = Response(200, rss([good]), RSS_HEADERS)
    http_server.routes["/slow.xml"] = Response(200, rss([good]), RSS_HEADERS, delay=2.5)
    http_server.routes["/error.xml"] = Response(500, b"oops", {"Content-Type": "text/plain"})
    http_server.routes["/html.xml"] = Response(200, page("Not a feed"), HTML_HEADERS)
    http_server.routes["/broken.xml"] = Response(200, b"<?xml version='1.0'?><rss><channel><item><title>x", RSS_HEADERS)
    feeds = {n: http_server.url(f"/{n}.xml") for n in ("good", "slow", "error", "html", "broken", "missing")}
    report = poll_once(config(store, feeds), store)
    status = {f.name: f.status for f in report.feeds}
    assert status == {
        "good": FetchStatus.OK,
        "slow": FetchStatus.TIMEOUT,
        "error": FetchStatus.HTTP_ERROR,
        "html": FetchStatus.PARSE_ERROR,
        "broken": FetchStatus.PARSE_ERROR,
        "missing": FetchStatus.HTTP_ERROR,
    }
    assert store.count("items") == 1
    error = feed_row(store, "error")
    assert error["last_status"] == "http_error" and "500" in error["last_error"]
    assert error["consecutive_failures"] == 1
    assert "404" in feed_row(store, "missing")["last_error"]
    poll_once(config(store, feeds), store)
    assert feed_row(store, "error")["consecutive_failures"] == 2
    assert feed_row(store, "good")["consecutive_failures"] == 0
    assert feed_row(store, "good")["last_success_at"] is not None


def test_bozo_feed_with_entries_is_used(store: Store, http_server: HTTPServer) -> None:
    entry = serve_story(http_server, "bozo", "Tram fares & timetables")
    body = rss([entry]).replace("<description>", "<description>Caf&eacute; &nbsp; owners ")
    http_server.routes["/feed.xml"] = Response(200, body, RSS_HEADERS)
    report = poll_once(config(store, {"Bozo": http_server.url("/feed.xml")}), store)
    assert by_name(report)["Bozo"].status is FetchStatus.OK
    assert store.count("items") == 1
    assert feed_row(store, "Bozo")["bozo_reason"]


def test_same_article_in_two_feeds_is_stored_once(store: Store, http_server: HTTPServer) -> None:
    entry = serve_story(http_server, "shared", "Tram extension approved")
    tracked = Entry(slug="shared-2", title=entry.title, link=entry.link + "?utm_source=partner&utm_medium=rss#top")
    http_server.routes["/a.xml"] = Response(200, rss([entry]), RSS_HEADERS)
    http_server.routes["/b.xml"] = Response(200, atom([tracked]), {"Content-Type": "application/atom+xml"})
    cfg = config(store, {"A": http_server.url("/a.xml"), "B": http_server.url("/b.xml")})
    poll_once(cfg, store)
    assert store.count("items") == 1
    assert rows(store, "SELECT count(DISTINCT feed_id) AS n FROM item_sources")[0]["n"] == 2
    assert http_server.hits("/news/shared.html") == 1
    # A later cycle in which only feed B has it: still one item, no refetch.
    poll_once(cfg, store)
    assert store.count("items") == 1 and http_server.hits("/news/shared.html") == 1


class OrderedStore(Store):
    """A real store that notes the order of the writes the crash-safety rule is about."""

    def __init__(self, engine: object) -> None:
        super().__init__(engine)  # type: ignore[arg-type]
        self.log: list[tuple[str, int]] = []

    def link_source(self, item: int | str, feed_id: int, entry_url: str | None, guid: str | None) -> bool:
        linked = super().link_source(item, feed_id, entry_url, guid)
        self.log.append(("link", feed_id))
        return linked

    def record_fetch(self, feed: Any, outcome: Any) -> None:
        self.log.append(("record", feed.id))
        super().record_fetch(feed, outcome)

    @contextmanager
    def batch(self) -> Iterator[Any]:
        """Links written in a batch are noted when the batch commits (that is when they exist)."""
        linked: list[int] = []
        with super().batch() as writer:
            plain = writer.link_source

            def link_source(item_id: int, feed_id: int, entry_url: str | None, guid: str | None) -> bool:
                linked.append(feed_id)
                return plain(item_id, feed_id, entry_url, guid)

            writer.link_source = link_source  # type: ignore[method-assign]
            yield writer
        self.log.extend(("link", f) for f in linked)


def test_a_feed_is_recorded_only_after_its_shared_entry_is_linked(store: Store, http_server: HTTPServer) -> None:
    # Feed B carries an article that feed A is still fetching (slowly). B has nothing else to
    # do, but its state (ETag, body hash) must not be recorded before its link exists: a crash
    # in between would leave B's source missing for good, as B's next poll gets a 304.
    http_server.routes["/news/slow.html"] = Response(200, page("Tram extension approved"), HTML_HEADERS, delay=1.0)
    entry = Entry(slug="slow", title="Tram extension approved", link=http_server.url("/news/slow.html"))
    http_server.routes["/a.xml"] = Response(200, rss([entry]), RSS_HEADERS)
    http_server.routes["/b.xml"] = Response(200, rss([entry], title="B"), {**RSS_HEADERS, "ETag": '"b1"'}, delay=0.3)
    ordered = OrderedStore(store.engine)
    cfg = config(ordered, {"A": http_server.url("/a.xml"), "B": http_server.url("/b.xml")})
    poll_once(cfg, ordered)
    b = feed_row(ordered, "B")["id"]
    assert ordered.log.index(("link", b)) < ordered.log.index(("record", b)), ordered.log
    assert rows(ordered, "SELECT count(*) AS n FROM item_sources")[0]["n"] == 2


def test_canonical_url_from_page_and_tracking_parameters(store: Store, http_server: HTTPServer) -> None:
    http_server.routes["/story"] = Response(200, page("Tram story", canonical="/stories/tram-2026"), HTML_HEADERS)
    entry = Entry(slug="s", title="Tram story", link=http_server.url("/story?utm_source=rss&utm_campaign=x&id=7"))
    http_server.routes["/feed.xml"] = Response(200, rss([entry]), RSS_HEADERS)
    poll_once(config(store, {"F": http_server.url("/feed.xml")}), store)
    (item,) = rows(store, "SELECT url FROM items")
    assert item["url"] == http_server.url("/stories/tram-2026")
    (src,) = rows(store, "SELECT entry_url FROM item_sources")
    assert src["entry_url"] == http_server.url("/story?id=7")


def test_extraction_falls_back_to_feed_text(store: Store, http_server: HTTPServer) -> None:
    long_content = "".join(
        f"<p>{p}</p>" for p in ("Full feed content paragraph about the tram line and its new stops. " * 4,) * 3
    )
    gone = Entry(slug="gone", title="Page gone", link=http_server.url("/news/gone.html"), content=long_content)
    thin = serve_story(http_server, "thin", "Thin page", paragraphs=("Subscribe to read.",))
    thin.content = long_content.replace("tram line", "ferry pier")  # another article's text
    only_summary = Entry(
        slug="sum", title="Only summary", link=http_server.url("/news/none.html"), summary="The council met on Tuesday."
    )
    http_server.routes["/feed.xml"] = Response(200, rss([gone, thin, only_summary]), RSS_HEADERS)
    report = poll_once(config(store, {"F": http_server.url("/feed.xml")}), store)
    assert by_name(report)["F"].fallbacks == 3
    got = {r["title"]: r for r in rows(store, "SELECT title, text, text_source FROM items")}
    assert got["Page gone"]["text_source"] == "feed_content"
    assert "new stops" in got["Page gone"]["text"]
    assert got["Thin page"]["text_source"] == "feed_content"
    assert got["Only summary"]["text_source"] == "feed_summary"
    assert got["Only summary"]["text"] == "The council met on Tuesday."


def test_rerun_after_crash_before_feed_state_is_recorded(
    store: Store, news_site: NewsSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(store, news_site.feed_urls())
    calls = {"n": 0}
    real = Store.record_fetch

    def crash_on_second(self: Store, *args: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "record_fetch", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        poll_once(cfg, store)
    stored_before = store.count("items")
    assert stored_before > 0
    monkeypatch.setattr(Store, "record_fetch", real)
    poll_once(cfg, store)
    assert store.count("items") == len(news_site.articles)
    dupes = rows(store, "SELECT url, count(*) AS n FROM items GROUP BY url HAVING n > 1")
    assert dupes == []
    assert (
        rows(
            store,
            "SELECT count(*) AS n FROM (SELECT item_id, feed_id FROM item_sources "
            "GROUP BY item_id, feed_id HAVING count(*) > 1)",
        )[0]["n"]
        == 0
    )


def test_private_article_links_refused_on_other_hosts(store: Store, http_server: HTTPServer) -> None:
    # The feed is on 127.0.0.1 (trusted: configured); an article link to "localhost" is another host
    # that resolves to loopback and must not be fetched, unless allowed.
    http_server.routes["/private.html"] = Response(200, page("Private"), HTML_HEADERS)
    port = http_server.base_url.rsplit(":", 1)[1]
    entry = Entry(
        slug="p",
        title="Private link",
        link=f"http://localhost:{port}/private.html",
        summary="Only the summary may be stored.",
    )
    http_server.routes["/feed.xml"] = Response(200, rss([entry]), RSS_HEADERS)
    poll_once(config(store, {"F": http_server.url("/feed.xml")}), store)
    assert http_server.hits("/private.html") == 0
    (item,) = rows(store, "SELECT text_source FROM items")
    assert item["text_source"] == "feed_summary"


def test_poll_report_names_topics(store: Store, news_site: NewsSite, tmp_path: Path) -> None:
    report = poll_once(config(store, news_site.feed_urls()), store)
    assert report.topics["trump-xi-meeting"]
    assert all(isinstance(t, str) and t for titles in report.topics.values() for t in titles)
