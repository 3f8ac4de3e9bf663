"""Adaptive polling: publish rate, server hints, graded backoff, parking, per-host budgets."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tracker.core.config import FetchConfig
from tracker.core.schedule import Cadence, cache_hint, failure_weight, plan, retry_after, update_rate
from tracker.core.types import FetchStatus
from tracker.sources.fetching import Fetcher, _Window

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import tracker

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXACT = Cadence(jitter=0.0)


def minutes(p: object) -> float:
    return (p.next_poll_at - NOW).total_seconds() / 60  # type: ignore[attr-defined]


# -- the publish rate ------------------------------------------------------------------------


def test_a_new_feed_is_polled_at_the_base_interval() -> None:
    p = plan(NOW, EXACT, failed=False, rate=None)
    assert minutes(p) == 30 and p.reason == "new"


@pytest.mark.parametrize(
    ("per_day", "expected"),
    [(48.0, 30.0), (4.0, 360.0), (8.0, 180.0), (1000.0, 10.0), (0.0, 360.0)],
)
def test_interval_follows_the_publish_rate_within_bounds(per_day: float, expected: float) -> None:
    assert minutes(plan(NOW, EXACT, failed=False, rate=per_day)) == pytest.approx(expected)


def test_the_rate_is_a_decaying_average_and_repeats_count_for_less() -> None:
    hour_ago = NOW - timedelta(hours=1)
    assert update_rate(None, 5, 0, None, NOW) is None  # the first fetch is the backlog
    assert update_rate(None, 2, 0, hour_ago, NOW) == pytest.approx(48.0)
    only_repeats = update_rate(None, 0, 8, hour_ago, NOW)
    assert only_repeats == pytest.approx(48.0)  # 8 repeats weigh as 2 new entries
    # A quiet fetch pulls a busy feed's average down, a little after an hour, a lot after days.
    after_hour = update_rate(48.0, 0, 0, hour_ago, NOW)
    after_days = update_rate(48.0, 0, 0, NOW - timedelta(days=4), NOW)
    assert after_hour is not None and after_days is not None
    assert 40 < after_hour < 48 and after_days < 13


def test_a_feed_that_mostly_repeats_others_is_polled_less_often() -> None:
    hour_ago = NOW - timedelta(hours=1)
    fresh = plan(NOW, EXACT, failed=False, rate=update_rate(None, 4, 0, hour_ago, NOW))
    echo = plan(NOW, EXACT, failed=False, rate=update_rate(None, 0, 4, hour_ago, NOW))
    assert minutes(echo) == 4 * minutes(fresh)


# -- server hints ------------------------------------------------------------------------------


def test_cache_control_expires_and_ttl_lengthen_the_interval() -> None:
    assert cache_hint({"cache-control": "public, max-age=7200"}, NOW) == timedelta(hours=2)
    assert cache_hint({"cache-control": "no-cache, max-age=7200"}, NOW) is None
    assert cache_hint(
        {"expires": "Mon, 02 Mar 2026 15:00:00 GMT", "date": "Mon, 02 Mar 2026 12:00:00 GMT"}, NOW
    ) == timedelta(hours=3)
    assert cache_hint({"expires": "0"}, NOW) is None  # "already expired"
    assert cache_hint({}, NOW, ttl_minutes=90) == timedelta(minutes=90)
    busy = plan(NOW, EXACT, failed=False, rate=1000.0, cache=timedelta(hours=2))
    assert minutes(busy) == 120 and busy.reason == "cache"
    # A hint shorter than the rate's interval changes nothing: hints never make polls more frequent.
    quiet = plan(NOW, EXACT, failed=False, rate=4.0, cache=timedelta(minutes=5))
    assert minutes(quiet) == 360 and quiet.reason == "rate"


def test_retry_after_in_seconds_or_as_a_date_is_honored() -> None:
    assert retry_after({"retry-after": "120"}, NOW) == timedelta(minutes=2)
    assert retry_after({"retry-after": "Mon, 02 Mar 2026 14:00:00 GMT"}, NOW) == timedelta(hours=2)
    assert retry_after({"retry-after": "soon"}, NOW) is None
    assert retry_after({"retry-after": "99999999"}, NOW) == timedelta(days=1)  # capped
    p = plan(NOW, EXACT, failed=True, failure_score=1.0, retry=timedelta(hours=5))
    assert minutes(p) == 300 and p.reason == "retry-after"


# -- failures ------------------------------------------------------------------------------------


def test_backoff_is_exponential_graded_by_kind_and_capped() -> None:
    assert failure_weight(FetchStatus.TIMEOUT, None) < failure_weight(FetchStatus.HTTP_ERROR, 503)
    assert failure_weight(FetchStatus.HTTP_ERROR, 503) < failure_weight(FetchStatus.HTTP_ERROR, 404)
    delays = []
    for failures in range(1, 8):
        score = failures * failure_weight(FetchStatus.TIMEOUT, None)
        delays.append(minutes(plan(NOW, EXACT, failed=True, failure_score=score, failing_since=NOW)))
    assert delays[:3] == pytest.approx([30 * 2**0.5, 60, 30 * 2**1.5])
    assert delays == sorted(delays) and delays[-1] <= 12 * 60
    not_found = minutes(plan(NOW, EXACT, failed=True, failure_score=2 * PERMANENT, failing_since=NOW))
    timeouts = minutes(plan(NOW, EXACT, failed=True, failure_score=2 * 0.5, failing_since=NOW))
    assert not_found == 8 * timeouts
    assert minutes(plan(NOW, EXACT, failed=True, failure_score=40, failing_since=NOW)) == 12 * 60


PERMANENT = failure_weight(FetchStatus.HTTP_ERROR, 404)


def test_jitter_spreads_polls_within_ten_percent() -> None:
    rng = random.Random(1)
    got = {round(minutes(plan(NOW, Cadence(), failed=False, rate=48.0, rng=rng)), 3) for _ in range(200)}
    assert len(got) > 150 and min(got) >= 27 and max(got) <= 33


def test_a_feed_failing_for_days_is_parked_and_retried_daily() -> None:
    p = plan(NOW, EXACT, failed=True, failure_score=9, failing_since=NOW - timedelta(days=3, minutes=1))
    assert p.parked and p.reason == "parked" and minutes(p) == 24 * 60
    p = plan(NOW, EXACT, failed=True, failure_score=9, failing_since=NOW - timedelta(days=2))
    assert not p.parked


# -- per-host budgets ------------------------------------------------------------------------------


def test_the_per_minute_window_lets_a_burst_through_then_spaces_starts() -> None:
    window = _Window(3)
    waits = [window.reserve() for _ in range(7)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 59 < waits[3] <= 60 and 59 < waits[5] <= 60 and 119 < waits[6] <= 120


def test_at_most_k_requests_at_once_to_one_host(http_server: HTTPServer) -> None:
    active = peak = 0
    lock = threading.Lock()

    def slow(_handler: object) -> Response:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.3)
        with lock:
            active -= 1
        return Response(200, "ok", {"Content-Type": "text/plain"})

    http_server.routes["/slow"] = slow
    with Fetcher(FetchConfig(concurrency=16, per_host_concurrency=2)) as fetcher:
        threads = [threading.Thread(target=fetcher.get, args=(http_server.url("/slow"),)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert peak == 2 and http_server.hits("/slow") == 8


def test_requests_over_the_rate_budget_wait_and_a_stop_ends_the_wait(http_server: HTTPServer) -> None:
    http_server.routes["/a"] = Response(200, "ok", {"Content-Type": "text/plain"})
    fetcher = Fetcher(FetchConfig(per_host_per_minute=2))
    fetcher.get(http_server.url("/a"))
    fetcher.get(http_server.url("/a"))
    errors: list[Exception] = []

    def third() -> None:
        try:
            fetcher.get(http_server.url("/a"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=third)
    t0 = time.monotonic()
    t.start()
    time.sleep(0.5)
    assert t.is_alive() and http_server.hits("/a") == 2  # waiting for the budget, not requesting
    fetcher.stop()
    t.join(5)
    fetcher.close()
    assert time.monotonic() - t0 < 5 and http_server.hits("/a") == 2
    assert errors and "shutting down" in str(errors[0])


# -- through the CLI, against a real server -----------------------------------------------------------


def _config(tmp_path: Path, server: HTTPServer, feeds: dict[str, str], fetch: str = "") -> Path:
    cfg = tmp_path / "t.toml"
    body = f'[database]\nurl = "sqlite:///{tmp_path / "t.sqlite"}"\n[fetch]\nextract_workers = 1\n{fetch}'
    body += "".join(f'[[feeds]]\nname = "{n}"\nurl = "{server.url(p)}"\n' for n, p in feeds.items())
    cfg.write_text(body, encoding="utf-8")
    return cfg


def _feeds(db: Path) -> dict[str, tuple]:
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT name, last_status, consecutive_failures, parked, schedule_reason, next_poll_at, failure_score "
        "FROM feeds"
    )
    return {r[0]: r[1:] for r in rows}


def _minutes_ahead(when: str) -> float:
    return (datetime.fromisoformat(when).replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() / 60


@pytest.mark.slow
def test_poll_honors_server_hints_and_grades_failures(tmp_path: Path, http_server: HTTPServer) -> None:
    story = Entry(slug="s1", title="Harbour board approves the new quay", link=http_server.url("/s1.html"))
    http_server.routes["/s1.html"] = Response(200, page(story.title), HTML_HEADERS)
    cached = {**RSS_HEADERS, "Cache-Control": "public, max-age=14400"}
    http_server.routes["/cached.xml"] = Response(200, rss([story]), cached)
    http_server.routes["/busy.xml"] = Response(429, "slow down", {"Content-Type": "text/plain", "Retry-After": "7200"})
    http_server.routes["/slowpoke.xml"] = Response(200, rss([]), RSS_HEADERS, delay=3)
    feeds = {"Cached": "/cached.xml", "Busy": "/busy.xml", "Gone": "/gone.xml", "Slowpoke": "/slowpoke.xml"}
    cfg = _config(tmp_path, http_server, feeds, fetch="total_timeout = 1.0\nread_timeout = 1.0\n")
    run = tracker("--config", str(cfg), "poll", "--once")
    assert run.returncode == 0, run.stderr
    feeds = _feeds(tmp_path / "t.sqlite")
    status, failures, parked, reason, when, _ = feeds["Cached"]
    assert (status, failures, parked, reason) == ("ok", 0, 0, "cache")
    assert 239 < _minutes_ahead(when) < 265  # max-age 4 h (jitter only adds), not the 30-minute first interval
    status, failures, parked, reason, when, _ = feeds["Busy"]
    assert (status, failures, reason) == ("http_error", 1, "retry-after")
    assert 118 < _minutes_ahead(when) < 121  # Retry-After: 7200, not the backoff
    gone, slow = feeds["Gone"], feeds["Slowpoke"]
    assert gone[0] == "http_error" and slow[0] == "timeout"
    assert gone[5] > slow[5]  # a 404 weighs more than a timeout, and waits longer
    assert _minutes_ahead(gone[4]) > _minutes_ahead(slow[4])
    shown = tracker("--config", str(cfg), "feeds")
    assert "retry-after" in shown.stdout and "failing" in shown.stdout


@pytest.mark.slow
def test_a_dead_feed_is_parked_shown_and_revives_on_its_own(tmp_path: Path, http_server: HTTPServer) -> None:
    cfg = _config(tmp_path, http_server, {"Flaky": "/flaky.xml"})
    db = tmp_path / "t.sqlite"
    http_server.routes["/flaky.xml"] = Response(503, "down", {"Content-Type": "text/plain"})
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    # It has been failing for four days (as if each retry had failed).
    con = sqlite3.connect(db)
    four_days = (datetime.now(UTC) - timedelta(days=4)).strftime("%Y-%m-%d %H:%M:%S.%f")
    con.execute("UPDATE feeds SET failing_since = ?", (four_days,))
    con.commit()
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    status, failures, parked, reason, when, _ = _feeds(db)["Flaky"]
    assert (status, failures, parked, reason) == ("http_error", 2, 1, "parked")
    assert 21 * 60 < _minutes_ahead(when) < 27 * 60
    shown = tracker("--config", str(cfg), "feeds")
    assert "parked" in shown.stdout
    # The source comes back: the next (rare) poll succeeds and the feed is active again.
    story = Entry(slug="s1", title="Harbour board approves the new quay", link=http_server.url("/s1.html"))
    http_server.routes["/s1.html"] = Response(200, page(story.title), HTML_HEADERS)
    http_server.routes["/flaky.xml"] = Response(200, rss([story]), RSS_HEADERS)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    status, failures, parked, reason, when, score = _feeds(db)["Flaky"]
    assert (status, failures, parked, score) == ("ok", 0, 0, 0.0)
    assert sqlite3.connect(db).execute("SELECT failing_since FROM feeds").fetchone()[0] is None


def test_a_feed_silent_for_months_or_a_hostile_header_cannot_break_the_schedule() -> None:
    # Found in review: a decayed rate (1e-9 a day) or a 20-digit max-age overflowed timedelta.
    quiet = update_rate(4.0, 0, 0, NOW - timedelta(days=62), NOW)
    assert quiet is not None and quiet < 1e-8
    assert minutes(plan(NOW, EXACT, failed=False, rate=quiet)) == 360
    huge = "9" * 20
    assert cache_hint({"cache-control": f"max-age={huge}"}, NOW) == timedelta(days=365)
    assert minutes(plan(NOW, EXACT, failed=False, rate=48.0, cache=timedelta(days=365))) == 24 * 60
    assert retry_after({"retry-after": huge}, NOW) == timedelta(days=1)
    for odd in ("\u00b2", "\u0663", "1e9", "-5"):  # latin-1 "²", an Arabic-Indic digit, not delta-seconds
        assert cache_hint({"cache-control": f"max-age={odd}"}, NOW) is None
        assert retry_after({"retry-after": odd}, NOW) is None
