"""Properties of the fault boundaries: whatever a feed carries, its cycle ends recorded.

Hypothesis writes feeds whose entries have arbitrary links (bad ports, spaces, unicode
hosts, other schemes), dates (year 1, year 9999, nonsense), ``<ttl>`` values (superscript
digits, huge numbers) and response headers (Cache-Control, Expires, Retry-After, ETag,
Last-Modified of any shape), and serves them through httpx.MockTransport to a real cycle
on a real SQLite store. The cycle must return, the feed must be recorded (its outcome in
the fetch log and a next poll time set), and every stored item must have a usable URL.
"""

from __future__ import annotations

import html
import itertools
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tracker.core.config import FetchConfig, PollConfig
from tracker.core.types import FeedSource, FetchStatus
from tracker.core.urls import canonicalize
from tracker.pipeline.cycle import run_cycle
from tracker.pipeline.grouping import StoryGrouper
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import load_rules
from tracker.sources.feeds import EARLIEST, LATEST, parse_feed
from tracker.sources.fetching import Fetcher
from tracker.store.database import Store, make_engine
from tracker.store.migrate import upgrade

from .conftest import REPO
from .test_fault_boundaries import InlineExtractor

LINKS = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda host, port, path: f"http://{host}:{port}/{path}",
        st.sampled_from(["example.com", "ex ample.com", "[::1", "xn--bcher-kva.example", "例え.jp", ""]),
        st.one_of(st.integers(-5, 10**7).map(str), st.text(max_size=6)),
        st.text(max_size=20),
    ),
    st.sampled_from(
        [
            "http://example.com:99999/a",
            "http://example.com:abc/a",
            "https://[::1]:-1/x",
            "http://user:pa@ss@example.com/x",
            "javascript:alert(1)",
            "http://%zz/",
            "http:///nohost",
        ]
    ),
)
DATES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59+14:00",
            "Tue, 10 Feb 2026 09:00:00 +9999",
            "2026-02-30T25:61:61Z",
        ]
    ),
)
TTLS = st.one_of(st.text(max_size=12), st.sampled_from(["²", "¹²", "٣", "99999999999999999999", "-5", "0", "1e9"]))
#: header values httpx can carry (latin-1); the server's choice, not ours
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "cache-control": st.one_of(HEADER_TEXT, st.sampled_from(["max-age=99999999999999999999", "max-age=²"])),
        "expires": st.one_of(HEADER_TEXT, st.just("Mon, 01 Jan 0001 00:00:00 GMT")),
        "date": HEADER_TEXT,
        "retry-after": st.one_of(HEADER_TEXT, st.just("99999999999999999999")),
        "etag": HEADER_TEXT,
        "last-modified": HEADER_TEXT,
    },
)


def _feed(links: list[str], dates: list[str], ttl: str) -> bytes:
    items = "".join(
        f"<item><title>Entry {i}</title><link>{html.escape(link)}</link>"
        f"<guid isPermaLink='false'>g{i}</guid><pubDate>{html.escape(date)}</pubDate>"
        f"<description>Summary of entry {i}.</description></item>"
        for i, (link, date) in enumerate(zip(links, dates, strict=False))
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
        f"<link>http://example.com/</link><description>d</description><ttl>{html.escape(ttl)}</ttl>{items}"
        "</channel></rss>"
    ).encode("utf-8", "replace")


@settings(max_examples=300, deadline=None)
@given(st.lists(LINKS, min_size=1, max_size=6), st.lists(DATES, min_size=6, max_size=6), TTLS)
@example(["http://example.com:99999/a"], ["x"] * 6, "²")
@example(["http://example.com/a"], ["Mon, 01 Jan 0001 00:00:00 GMT"] * 6, "1")
def test_parse_feed_turns_any_entry_values_into_usable_ones(links: list[str], dates: list[str], ttl: str) -> None:
    parsed = parse_feed(_feed(links, dates, ttl), "http://example.com/feed.xml")
    assert parsed.ttl is None or 0 < parsed.ttl < 100_000
    for entry in parsed.entries:
        if entry.link is not None:
            assert entry.link.startswith(("http://", "https://"))
            canonicalize(entry.link)  # never raises for a kept link
        assert entry.published is None or EARLIEST <= entry.published < LATEST


class _World:
    """One store and one compiled rule set for every example; a new feed URL each time."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        engine = make_engine(f"sqlite:///{Path(self.dir.name) / 't.sqlite'}")
        upgrade(engine)
        self.store = Store(engine)
        self.matcher = Matcher(load_rules((REPO / "rules",)))
        self.grouper = StoryGrouper(self.store)
        self.counter = itertools.count()


_world: _World | None = None


def world() -> _World:
    global _world
    if _world is None:
        _world = _World()
    return _world


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(LINKS, min_size=1, max_size=4),
    st.lists(DATES, min_size=4, max_size=4),
    TTLS,
    HEADERS,
    st.sampled_from([200, 200, 200, 304, 429, 503, 404]),
)
@example(["http://example.com:99999/a"], ["Mon, 01 Jan 0001 00:00:00 GMT"] * 4, "²", {"etag": 'W/"é"'}, 200)
def test_any_feed_ends_its_cycle_recorded(
    links: list[str], dates: list[str], ttl: str, headers: dict[str, str], status: int
) -> None:
    w = world()
    feed_url = f"http://feeds.test/{next(w.counter)}.xml"
    body = _feed(links, dates, ttl)

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == feed_url:
            return httpx.Response(status, headers=headers, content=body if status == 200 else b"")
        return httpx.Response(404)  # article pages: the feed's text is used

    [feed] = [f for f in w.store.sync_feeds([FeedSource(url=feed_url, name=feed_url)]) if f.url == feed_url]
    config = FetchConfig(allow_private_addresses=True, per_host_per_minute=0, total_timeout=10)
    with Fetcher(config, transport=httpx.MockTransport(handler)) as fetcher:
        report = run_cycle(
            w.store,
            fetcher,
            w.matcher,
            InlineExtractor(w.matcher),  # type: ignore[arg-type]
            PollConfig(),
            feeds=[feed],
            grouper=w.grouper,
        )
    [outcome] = report.feeds
    assert outcome.status in set(FetchStatus)
    with w.store.engine.connect() as conn:
        row = conn.execute(text("SELECT last_status, next_poll_at FROM feeds WHERE id = :i"), {"i": feed.id}).one()
        logged = conn.execute(text("SELECT count(*) FROM fetch_log WHERE feed_id = :i"), {"i": feed.id}).scalar()
        urls = conn.execute(
            text("SELECT i.url FROM items i JOIN item_sources s ON s.item_id = i.id WHERE s.feed_id = :i"),
            {"i": feed.id},
        ).scalars()
        for url in urls:
            assert url.startswith(("http://", "https://", "urn:guid:")), url
    assert row.last_status == outcome.status.value and row.next_poll_at is not None
    assert logged == 1
    assert datetime.fromisoformat(str(row.next_poll_at)).replace(tzinfo=UTC) > report.started_at
