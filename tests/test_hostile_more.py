"""More hostile sources (MORE_CASES of tests/hostile.py), each alone with a good feed beside it.

Every case must end *recorded* (the feed's last status and next poll time, a fetch_log row)
within its budget, while the good feed's entries are stored and the cycle completes. Most
cycles run in this process through ``tracker.pipeline.cycle.run_cycle``, wired as ``tracker.service.app``
wires it but with one extraction worker kept warm for the whole module (its budgets are
those of the config), so that a case costs its own seconds and not a worker's start-up.
The bombs and the pathological page also run together through `tracker poll --once`, whose
peak memory is measured, and the credentials case runs through the CLI, whose output is
what must not show them. Every case together: tests/test_hostile.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tracker.core.config import Config, load_config
from tracker.core.types import CycleReport, FeedReport
from tracker.core.urls import canonicalize
from tracker.extraction.extract import ExtractJob
from tracker.pipeline.cycle import run_cycle
from tracker.pipeline.pool import KILL_GRACE
from tracker.pipeline.workers import Extractor
from tracker.service.app import load_matcher, make_extractor, prepare
from tracker.sources.fetching import Fetcher

from .hostile import (
    BOMBS,
    GOOD_ARTICLE_TITLES,
    MORE_CASES,
    NEAR_SENTENCE,
    NESTED_SUMMARY,
    RIVAL_URL,
    HostileServer,
    build_payloads,
    more_feed_url,
)
from .test_cli import tracker
from .test_hostile import (
    MORE_EXPECTED,
    MORE_FETCH,
    Child,
    durations,
    feeds,
    items_of,
    limits,
    poll,
    rule_matches,
    secret_leaks,
    unrecorded,
    write_config,
)

pytestmark = pytest.mark.slow

GOOD = "good"
TOTAL_TIMEOUT = float(MORE_FETCH["total_timeout"])
EXTRACT_TIMEOUT = float(MORE_FETCH["extract_timeout"])


def case(key: str) -> str:
    """The name of a MORE_CASES case (the feed's name in the config)."""
    return MORE_CASES[key]


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    build_payloads()
    with HostileServer() as s:
        yield s


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Extractor]:
    """One warm extraction worker with the config's budgets (as the app makes it), for the
    whole module."""
    config = load_config(write_config(tmp_path_factory.mktemp("warm"), {}, limits()))
    with make_extractor(config, load_matcher(config)) as ex:
        warm = ExtractJob(url="https://warm-up.invalid/", html=b"<html><body><p>warm</p></body></html>")
        ex.submit(warm).result(timeout=120)
        yield ex


@dataclass
class Cycle:
    report: CycleReport
    db: Path
    config: Config
    seconds: float

    def feed(self, name: str) -> FeedReport:
        return next(f for f in self.report.feeds if f.name == name)


def cycle(
    tmp_path: Path,
    urls: dict[str, str],
    extractor: Extractor,
    *,
    fetch: dict[str, int | float] | None = None,
    stop: threading.Event | None = None,
    stop_timeout: float = 30.0,
) -> Cycle:
    """One cycle over ``urls`` (name → URL) in this process, as `tracker poll --once` runs it."""
    config = load_config(write_config(tmp_path, urls, limits(**(fetch or {}))))
    assert (extractor.timeout, extractor.memory_mb) == (config.fetch.extract_timeout, config.fetch.extract_memory_mb)
    ready = prepare(config)
    t0 = time.monotonic()
    with Fetcher(config.fetch) as fetcher:
        report = run_cycle(
            ready.store,
            fetcher,
            ready.matcher,
            extractor,
            config.poll,
            feeds=ready.feeds,
            grouper=ready.grouper,
            stop=stop,
            stop_timeout=stop_timeout,
        )
    ready.store.engine.dispose()
    return Cycle(report, tmp_path / "t.sqlite", config, time.monotonic() - t0)


def alone(
    tmp_path: Path, server: HostileServer, extractor: Extractor, key: str, *, again: bool = False, **kw: object
) -> Cycle:
    """The case ``key`` with the good feed beside it; both end recorded, the good feed's two
    entries are stored (``again``: in an earlier cycle, the good feed is unchanged since)."""
    urls = {case(key): more_feed_url(server, key), GOOD: server.url("/good.xml")}
    run = cycle(tmp_path, urls, extractor, **kw)  # type: ignore[arg-type]
    assert unrecorded(run.db, urls) == []
    assert {f.name for f in run.report.feeds} == set(urls)  # the cycle completed: every feed reported
    good = run.feed(GOOD)
    assert good.status.value == ("not_modified" if again else "ok") and len(items_of(run.db, GOOD)) == 2, good
    status = run.feed(case(key)).status.value
    assert status in MORE_EXPECTED[case(key)], (status, run.feed(case(key)).error)
    return run


# -- 1. decompression bombs --------------------------------------------------------------------


@pytest.mark.parametrize("key", list(BOMBS))
def test_bomb_alone(tmp_path: Path, server: HostileServer, extractor: Extractor, key: str) -> None:
    run = alone(tmp_path, server, extractor, key)
    report = run.feed(case(key))
    assert report.seconds < TOTAL_TIMEOUT + 2, report
    error = feeds(run.db)[case(key)]["last_error"] or ""
    if BOMBS[key][0] == "zstd":
        assert "zstd" in error and "refused" in error, error  # a clear refusal, before the body is read
    else:
        assert "cap" in error, error


def test_bombs_and_big_bodies_in_one_cli_cycle(tmp_path: Path, server: HostileServer) -> None:
    """The bombs, the 10 MB page and the 11 MB feed of tiny entries together through the CLI:
    its peak memory (the extraction worker's included) stays under 600 MB, and the page's
    extraction ends within extract_timeout (plus the kill grace) of the moment a worker was
    ready for it."""
    keys = [*BOMBS, "/nested.xml", "/tiny-entries.xml"]
    urls = {case(k): more_feed_url(server, k) for k in keys} | {GOOD: server.url("/good.xml")}
    cfg = write_config(tmp_path, urls, limits())
    code, seconds, peak_mb, err = poll(cfg)
    assert code == 0 and "Traceback" not in err, err
    assert peak_mb < 600, peak_mb
    db = tmp_path / "t.sqlite"
    assert unrecorded(db, urls) == []
    got = {name: row["last_status"] for name, row in feeds(db).items()}
    assert all(got[case(k)] in MORE_EXPECTED[case(k)] for k in keys) and got[GOOD] == "ok", got
    nested = items_of(db, case("/nested.xml"))
    assert len(nested) == 1 and nested[0]["text_source"] != "extracted", nested
    assert len(items_of(db, case("/tiny-entries.xml"))) == 300
    # The good feed's entries wait for the worker to start, as the page does: its duration
    # stands for the start-up.
    took = durations(db)
    assert took[case("/nested.xml")] < took[GOOD] + EXTRACT_TIMEOUT + KILL_GRACE + 3, took
    assert seconds < 45, seconds


# -- 2. header drip --------------------------------------------------------------------------


def test_header_drip_alone(tmp_path: Path, server: HostileServer, extractor: Extractor) -> None:
    run = alone(tmp_path, server, extractor, "/drip-headers.xml")
    report = run.feed(case("/drip-headers.xml"))
    assert report.seconds < TOTAL_TIMEOUT + 2, report


# -- 4. the NEAR stall -----------------------------------------------------------------------


def test_near_stall_alone(tmp_path: Path, server: HostileServer, extractor: Extractor) -> None:
    before = sum(extractor.budget_fallbacks.values())
    run = alone(tmp_path, server, extractor, "/near-stall.xml")
    report = run.feed(case("/near-stall.xml"))
    [stored] = items_of(run.db, case("/near-stall.xml"))
    assert "trump-xi-meeting" in rule_matches(run.db, stored["id"])
    assert stored["text"].startswith(NEAR_SENTENCE.strip())
    # Matched within the worker's budget (else the feed text would be matched again, here,
    # with no budget at all), and stored soon after.
    assert sum(extractor.budget_fallbacks.values()) == before, extractor.budget_fallbacks
    assert report.seconds < EXTRACT_TIMEOUT + 5, report


# -- 5. 200,000 tiny entries -----------------------------------------------------------------


def test_tiny_entries_alone(tmp_path: Path, server: HostileServer, extractor: Extractor) -> None:
    run = alone(tmp_path, server, extractor, "/tiny-entries.xml")
    report = run.feed(case("/tiny-entries.xml"))
    assert report.entries == 300 and report.new == 300, report
    assert len(items_of(run.db, case("/tiny-entries.xml"))) == 300
    assert report.seconds < 30, report


# -- 6. per-host politeness ------------------------------------------------------------------


def test_throttled_host_does_not_hold_back_other_hosts(
    tmp_path: Path, server: HostileServer, extractor: Extractor
) -> None:
    """Host A (localhost) has 1,000 articles at 30 a minute; the feed on 127.0.0.2 and the good
    feed on 127.0.0.1 are done within seconds. The cycle is stopped once they are recorded
    (else it would take over half an hour)."""
    throttled, other = case("throttled"), case("other-host")
    urls = {
        throttled: more_feed_url(server, "throttled", throttled=1000),
        other: more_feed_url(server, "other-host"),
        GOOD: server.url("/good.xml"),
    }
    db = tmp_path / "t.sqlite"
    stop = threading.Event()
    before = server.hits_under("/throttled/")

    def stop_when_recorded() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.2)
            if db.exists():
                try:
                    if not unrecorded(db, [other, GOOD]):
                        break
                except sqlite3.Error:
                    continue  # the schema is still being created
        stop.set()

    watcher = threading.Thread(target=stop_when_recorded, daemon=True)
    watcher.start()
    run = cycle(tmp_path, urls, extractor, fetch={"per_host_per_minute": 30}, stop=stop, stop_timeout=3)
    watcher.join(5)
    assert unrecorded(db, [other, GOOD]) == []
    for name in (other, GOOD):
        report = run.feed(name)
        assert report.status.value == "ok" and report.seconds < 10, report
    assert sorted(i["title"] for i in items_of(db, other)) == sorted(GOOD_ARTICLE_TITLES)
    assert {i["text_source"] for i in items_of(db, other)} == {"extracted"}
    # Host A's feed was still waiting for its budget (or was recorded later); in this first
    # minute at most 30 requests started to it, the feed's own included.
    assert throttled not in {f.name for f in run.report.feeds} or run.feed(throttled).seconds > 55
    assert 0 < server.hits_under("/throttled/") - before <= 29
    assert run.seconds < 30, run.seconds


# -- 7. feed redirects leaving the configured host -------------------------------------------


@pytest.mark.parametrize("key", ["/redirect/v4", "/redirect/v6", "/redirect/decimal"])
def test_feed_redirect_off_its_host_is_refused(
    tmp_path: Path, server: HostileServer, extractor: Extractor, key: str
) -> None:
    before = server.internal_hits
    run = alone(tmp_path, server, extractor, key)
    assert not run.config.fetch.allow_private_addresses
    assert server.internal_hits == before  # not one connection reached the internal listener
    assert run.feed(case(key)).seconds < TOTAL_TIMEOUT, run.feed(case(key))
    assert not items_of(run.db, case(key))


# -- 8. a canonical link claiming another outlet ---------------------------------------------


def test_canonical_link_to_another_outlet_is_not_believed(
    tmp_path: Path, server: HostileServer, extractor: Extractor
) -> None:
    run = alone(tmp_path, server, extractor, "/canonical.xml")
    [stored] = items_of(run.db, case("/canonical.xml"))
    assert stored["url"] == canonicalize(server.url("/canonical/story.html")), stored["url"]
    assert stored["text_source"] == "extracted"
    con = sqlite3.connect(run.db)
    assert con.execute("SELECT count(*) FROM items WHERE url LIKE ?", (f"%{RIVAL_URL[8:30]}%",)).fetchone()[0] == 0


# -- 9. credentials in the feed URL ----------------------------------------------------------


def test_credentials_in_the_feed_url_are_never_shown(tmp_path: Path, server: HostileServer) -> None:
    urls = {case("credentials"): more_feed_url(server, "credentials"), GOOD: server.url("/good.xml")}
    cfg = write_config(tmp_path, urls, limits())
    child = Child(cfg)
    code, _, _, err = child.finish()
    assert code == 0 and "Traceback" not in err, err
    db = tmp_path / "t.sqlite"
    assert unrecorded(db, urls) == []
    assert feeds(db)[case("credentials")]["last_status"] == "http_error"
    assert feeds(db)[GOOD]["last_status"] == "ok" and len(items_of(db, GOOD)) == 2
    assert "private.xml" in err  # the failure is logged, with the URL redacted
    status = tracker("--config", str(cfg), "status")
    listing = tracker("--config", str(cfg), "feeds")
    assert status.returncode == 0 and listing.returncode == 0, (status.stderr, listing.stderr)
    assert "REDACTED" in listing.stdout + status.stdout  # the failure is shown, with the URL redacted
    texts = (err, child.stdout, status.stdout, status.stderr, listing.stdout, listing.stderr)
    assert secret_leaks(db, *texts) == []


# -- 10. non-ASCII validators ----------------------------------------------------------------


def test_non_ascii_validators_do_not_fail_the_next_poll(
    tmp_path: Path, server: HostileServer, extractor: Extractor
) -> None:
    name, path = case("/latin1-validators.xml"), "/latin1-validators.xml"
    first = alone(tmp_path, server, extractor, path)
    assert first.feed(name).new >= 1, first.feed(name)
    second = alone(tmp_path, server, extractor, path, again=True)
    assert second.feed(name).status.value == "ok" and second.feed(name).new >= 1, second.feed(name)
    row = feeds(second.db)[name]
    assert row["last_status"] == "ok" and row["consecutive_failures"] == 0
    # Whatever was sent back as a validator is printable ASCII.
    sent = [h for p, h in server.requests if p == path]
    assert len(sent) >= 2
    for headers in sent:
        for key in ("if-none-match", "if-modified-since"):
            assert all(" " <= c <= "~" for c in headers.get(key, "")), headers


# -- 11. malformed entries -------------------------------------------------------------------


def test_malformed_entries_keep_the_feed_text(tmp_path: Path, server: HostileServer, extractor: Extractor) -> None:
    name = case("/malformed-entries.xml")
    run = alone(tmp_path, server, extractor, "/malformed-entries.xml")
    assert run.feed(name).status.value == "ok" and run.feed(name).new == 3, run.feed(name)
    stored = items_of(run.db, name)
    assert {i["text_source"] for i in stored} == {"feed_summary"}
    assert all("quay office" in i["text"] for i in stored)
    assert [i["published_at"] for i in stored if i["title"] == "Published in the year one"] == [None]
    assert feeds(run.db)[name]["schedule_reason"] != "cache"  # the <ttl> of "²" is no cache hint


# -- 3. the pathological page (last: the worker it exhausts is replaced) ---------------------


def test_pathological_page_alone(tmp_path: Path, server: HostileServer, extractor: Extractor) -> None:
    name = case("/nested.xml")
    before = sum(extractor.budget_fallbacks.values())
    run = alone(tmp_path, server, extractor, "/nested.xml")
    [stored] = items_of(run.db, name)
    assert stored["text_source"] != "extracted" and NESTED_SUMMARY in stored["text"], stored["text_source"]
    assert sum(extractor.budget_fallbacks.values()) == before + 1, extractor.budget_fallbacks
    report = run.feed(name)
    assert report.seconds < EXTRACT_TIMEOUT + KILL_GRACE + 3, report
