"""Fault injection: whatever one feed raises at any stage, the cycle stores every other feed.

Each stage of the pipeline in turn (fetch, parse, entry conversion, canonicalization,
article fetch, extraction, matching, story placement, store) is made to raise on the
entries of one chosen feed only, with exceptions the code never expects (ValueError,
OverflowError, MemoryError, UnicodeError, a bug's KeyError). The cycle must complete,
store every entry of the other feeds, record the chosen feed as failed (so it backs off
and its conditional-GET state is not saved), and store its entries once the fault is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

import tracker.pipeline.cycle
import tracker.pipeline.processing
import tracker.sources.feeds
from tracker.core.config import FetchConfig, PollConfig
from tracker.core.types import FeedSource
from tracker.extraction.extract import ExtractJob
from tracker.pipeline.cycle import run_cycle
from tracker.pipeline.grouping import StoryGrouper
from tracker.pipeline.processing import Processed, process
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import load_rules
from tracker.sources.fetching import Fetcher
from tracker.store.database import Store

from .conftest import REPO, HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, page

GOOD = ("alpha", "beta", "gamma")
CHOSEN = "chosen"
PER_FEED = 2


class InlineExtractor:
    """The worker pool's interface, run in this process so that the test's faults reach it."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher

    def submit(self, job: ExtractJob) -> Future[Processed]:
        fut: Future[Processed] = Future()
        try:
            fut.set_result(process(job, self.matcher))
        except BaseException as exc:  # noqa: BLE001 - handed over like a worker's exception
            fut.set_exception(exc)
        return fut

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def _item(server: HTTPServer, feed: str, n: int) -> str:
    link = server.url(f"/{feed}/story-{n}.html")
    day = "11" if feed == CHOSEN else "10"
    title = f"{feed.title()} council report number {n}"
    return (
        f"<item><title>{title}</title><link>{link}</link><guid isPermaLink='false'>{feed}-{n}</guid>"
        f"<pubDate>Wed, {day} Feb 2026 09:00:00 GMT</pubDate>"
        f"<description>The {feed} desk reports on council decision {n} about the tram line.</description></item>"
    )


@pytest.fixture
def site(http_server: HTTPServer) -> HTTPServer:
    for feed in (*GOOD, CHOSEN):
        items = "".join(_item(http_server, feed, n) for n in range(PER_FEED))
        http_server.routes[f"/{feed}/feed.xml"] = Response(
            200,
            f"<?xml version='1.0'?><rss version='2.0'><channel><title>{feed}</title><link>http://x/</link>"
            f"<description>d</description>{items}</channel></rss>",
            RSS_HEADERS,
        )
        for n in range(PER_FEED):
            http_server.routes[f"/{feed}/story-{n}.html"] = Response(
                200, page(f"{feed.title()} council report number {n}"), HTML_HEADERS
            )
    return http_server


def _chosen(value: object) -> bool:
    return f"/{CHOSEN}/" in str(value)


def _raiser(exc: type[BaseException]) -> BaseException:
    if exc is UnicodeDecodeError:
        return UnicodeDecodeError("utf-8", b"\xff", 0, 1, "injected")
    return exc("injected")


def _inject(monkeypatch: pytest.MonkeyPatch, stage: str, exc: type[BaseException]) -> None:
    """Make ``stage`` raise ``exc`` for the chosen feed (or its entries) only."""

    def wrap(owner: Any, name: str, chosen: Callable[..., bool]) -> None:
        original = getattr(owner, name)

        def patched(*args: Any, **kwargs: Any) -> Any:
            if chosen(*args, **kwargs):
                raise _raiser(exc)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, patched)

    if stage == "fetch":
        wrap(Fetcher, "get", lambda self, url, **kw: _chosen(url) and url.endswith("feed.xml"))
    elif stage == "parse":
        wrap(tracker.pipeline.cycle, "parse_feed", lambda body, url, *a, **kw: _chosen(url))
    elif stage == "entry conversion":
        wrap(tracker.sources.feeds, "_entry", lambda raw: _chosen(raw.get("link")))
    elif stage == "canonicalization":
        wrap(tracker.pipeline.cycle, "canonicalize", lambda url, *a, **kw: _chosen(url))
    elif stage == "article fetch":
        wrap(Fetcher, "get", lambda self, url, **kw: _chosen(url) and url.endswith(".html"))
    elif stage == "extraction":
        wrap(tracker.pipeline.processing, "build_article", lambda job: _chosen(job.url) and job.html is not None)
    elif stage == "matching":
        wrap(Matcher, "match", lambda self, title, body: CHOSEN.title() in title)
    elif stage == "story placement":
        wrap(StoryGrouper, "place", lambda self, sig, when: when.date() == date(2026, 2, 11))
    elif stage == "store":
        # Every write of an article goes through here, in a batch or on its own.
        wrap(Store, "_add_item", lambda self, conn, article, *a, **kw: _chosen(article.url))
    else:
        raise AssertionError(stage)


def _cycle(store: Store, matcher: Matcher, grouper: StoryGrouper) -> None:
    fetch = FetchConfig(connect_timeout=2, read_timeout=2, total_timeout=5, concurrency=4, per_host_concurrency=4)
    with Fetcher(fetch) as fetcher:
        run_cycle(
            store,
            fetcher,
            matcher,
            InlineExtractor(matcher),  # type: ignore[arg-type]
            PollConfig(min_text_chars=200),
            feeds=store.feeds(),
            grouper=grouper,
        )


def _items_by_feed(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        urls = conn.execute(text("SELECT url FROM items")).scalars().all()
    counts: dict[str, int] = {}
    for url in urls:
        feed = url.split("/")[3] if "://" in url else "guid"
        counts[feed] = counts.get(feed, 0) + 1
    return counts


def _feed_row(store: Store, name: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM feeds WHERE name = :n"), {"n": name}).mappings().one())


STAGES = (
    "fetch",
    "parse",
    "entry conversion",
    "canonicalization",
    "article fetch",
    "extraction",
    "matching",
    "story placement",
    "store",
)
#: whether the chosen feed's entries are still stored during the fault (with the feed's text)
KEPT_WITH_FEED_TEXT = {"article fetch", "extraction"}
ERRORS = (ValueError, OverflowError, MemoryError, UnicodeDecodeError, KeyError)


@pytest.fixture
def matcher() -> Matcher:
    return Matcher(load_rules((REPO / "rules",)))


def _cases() -> Iterator[Any]:
    for i, stage in enumerate(STAGES):
        for exc in (ERRORS[i % len(ERRORS)], ERRORS[(i + 2) % len(ERRORS)]):
            yield pytest.param(stage, exc, id=f"{stage}-{exc.__name__}")


@pytest.mark.parametrize(("stage", "exc"), list(_cases()))
def test_a_fault_at_any_stage_costs_only_its_feed(
    stage: str, exc: type[BaseException], site: HTTPServer, store: Store, matcher: Matcher
) -> None:
    store.sync_feeds([FeedSource(url=site.url(f"/{f}/feed.xml"), name=f) for f in (*GOOD, CHOSEN)])
    store.adopt_rules((r.id, r.content_hash) for r in matcher.ruleset.rules)
    grouper = StoryGrouper(store)
    with pytest.MonkeyPatch.context() as mp:
        _inject(mp, stage, exc)
        before = datetime.now(UTC)
        _cycle(store, matcher, grouper)

    counts = _items_by_feed(store)
    for feed in GOOD:
        assert counts.get(feed) == PER_FEED, (feed, counts)
        assert _feed_row(store, feed)["last_status"] == "ok"
    chosen = _feed_row(store, CHOSEN)
    assert chosen["last_status"] not in ("ok", "not_modified"), chosen
    assert chosen["consecutive_failures"] == 1
    assert chosen["body_hash"] is None and chosen["etag"] is None  # its state is not saved
    next_poll = datetime.fromisoformat(str(chosen["next_poll_at"])).replace(tzinfo=UTC)
    assert next_poll > before + timedelta(minutes=5)  # it backs off
    assert chosen["last_error"], chosen
    if stage in KEPT_WITH_FEED_TEXT:
        assert counts.get(CHOSEN) == PER_FEED  # kept with the feed's text
        assert stage in chosen["last_error"]
    elif stage == "entry conversion":
        assert not counts.get(CHOSEN) and "no usable entry" in chosen["last_error"]
    else:
        assert not counts.get(CHOSEN)
        assert stage in chosen["last_error"] or exc.__name__ in chosen["last_error"], chosen["last_error"]

    # Without the fault, the next cycle stores what the failed one could not, and nothing twice.
    _cycle(store, matcher, grouper)
    counts = _items_by_feed(store)
    assert counts == {**{f: PER_FEED for f in GOOD}, CHOSEN: PER_FEED}, counts
    assert _feed_row(store, CHOSEN)["last_status"] == "ok"
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        sources = conn.execute(text("SELECT count(*) FROM item_sources")).scalar()
    assert sources == PER_FEED * (len(GOOD) + 1)
