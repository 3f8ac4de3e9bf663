"""tracker.pipeline.workers: per-page time and memory budgets on real worker processes, worker
replacement, and workers that do not outlive their parent."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from tracker.core.config import FetchConfig, parse_config
from tracker.core.errors import ConfigError
from tracker.core.types import FeedEntry, TextSource
from tracker.extraction.extract import ExtractJob
from tracker.pipeline.pool import KILL_GRACE
from tracker.pipeline.processing import CRASHED, MEMORY, TIMEOUT, Processed, over_budget
from tracker.pipeline.workers import Extractor
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import load_rules

from .conftest import REPO
from .feedkit import page

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="budgets are enforced on Linux")

BUDGET_S = 2.0
BUDGET_MB = 200
SLACK_S = 2.0  #: scheduling noise on a busy machine


def nested_spans(repeats: int, depth: int = 200) -> bytes:
    """Deeply nested <span> runs: trafilatura's tree walks slow down with depth and size
    (1.7 MB: about 5 s and 140 MB beyond a warm worker; 7 MB: far more of both)."""
    run = "<span>word " * depth + "</span>" * depth
    return f"<html><head><title>Spans</title></head><body><article>{run * repeats}</article></body></html>".encode()


SLOW_PAGE = nested_spans(450)  # over BUDGET_S + KILL_GRACE (about 5 s), within BUDGET_MB (about 140 MB)
GREEDY_PAGE = nested_spans(2000)  # over BUDGET_MB within a fraction of a second


def job(url: str, html: bytes | None) -> ExtractJob:
    entry = FeedEntry(link=url, guid=None, title="Tram line extended", summary="The feed's own summary.")
    return ExtractJob(url=url, html=html, final_url=url, entry=entry, min_text_chars=200)


def good_job(n: int = 0) -> ExtractJob:
    return job(f"https://gazette.example/news/{n}", page("Tram line extended").encode())


def assert_extracted(fut: Future[Processed]) -> None:
    article, _, _ = fut.result(timeout=60)
    assert article.text_source is TextSource.EXTRACTED
    assert "riverside tram line" in article.text
    assert over_budget(fut) is None


def assert_fallback(fut: Future[Processed], reason: str) -> None:
    article, _, _ = fut.result(timeout=60)
    assert over_budget(fut) == reason
    assert article.text_source is TextSource.FEED_SUMMARY
    assert article.text == "The feed's own summary."
    assert article.title == "Tram line extended"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_rules([REPO / "rules"]))


@pytest.fixture(scope="module")
def pool(matcher: Matcher) -> Iterator[Extractor]:
    with Extractor(matcher, 2, timeout=BUDGET_S, memory_mb=BUDGET_MB) as extractor:
        yield extractor


@pytest.fixture
def ready(pool: Extractor) -> Extractor:
    """The shared pool with both workers started and warm (earlier tests replace some)."""
    assert pool.start(wait=60)
    return pool


@linux_only
def test_a_slow_page_falls_back_and_a_page_beside_it_is_extracted(ready: Extractor) -> None:
    t0 = time.monotonic()
    slow = ready.submit(job("https://spans.example/slow", SLOW_PAGE))
    good = ready.submit(good_job(1))
    assert_extracted(good)
    assert_fallback(slow, TIMEOUT)
    assert time.monotonic() - t0 < BUDGET_S + KILL_GRACE + SLACK_S
    assert ready.budget_fallbacks[TIMEOUT] >= 1
    assert_extracted(ready.submit(good_job(2)))  # the pool goes on


@linux_only
def test_a_page_over_the_memory_budget_falls_back(ready: Extractor) -> None:
    before = set(ready.worker_pids())
    t0 = time.monotonic()
    greedy = ready.submit(job("https://spans.example/greedy", GREEDY_PAGE))
    good = ready.submit(good_job(3))
    assert_fallback(greedy, MEMORY)
    assert time.monotonic() - t0 < BUDGET_S  # the cap, not the clock, stopped it
    assert_extracted(good)
    assert_extracted(ready.submit(good_job(4)))
    assert before - set(ready.worker_pids())  # the worker that ran it was replaced


@linux_only
def test_a_worker_that_dies_costs_only_its_page(ready: Extractor) -> None:
    slow = ready.submit(job("https://spans.example/killed", SLOW_PAGE))
    time.sleep(0.5)
    for pid in ready.worker_pids():  # the busy one among them
        os.kill(pid, signal.SIGKILL)
    assert_fallback(slow, CRASHED)
    assert_extracted(ready.submit(good_job(5)))


@linux_only
def test_a_page_stuck_past_the_soft_timer_is_killed(matcher: Matcher) -> None:
    # Without the in-worker timer only the parent's deadline stops it, by killing the worker;
    # with one worker the pages queued behind it wait for the replacement.
    with Extractor(matcher, 1, timeout=BUDGET_S, memory_mb=0, soft_timer=False) as extractor:
        assert extractor.start(wait=60)
        (pid,) = extractor.worker_pids()
        t0 = time.monotonic()
        slow = extractor.submit(job("https://spans.example/stuck", SLOW_PAGE))
        queued = extractor.submit(good_job(6))
        dropped = extractor.submit(good_job(7))
        assert dropped.cancel()
        assert_fallback(slow, TIMEOUT)
        elapsed = time.monotonic() - t0
        assert BUDGET_S + KILL_GRACE - 0.5 < elapsed < BUDGET_S + KILL_GRACE + SLACK_S
        assert_extracted(queued)
        assert dropped.cancelled()
        assert pid not in extractor.worker_pids()
        assert not _alive(pid)


def test_inline_without_budgets(matcher: Matcher) -> None:
    with Extractor(matcher, 1, timeout=0, memory_mb=0) as extractor:
        assert extractor.inline
        assert_extracted(extractor.submit(good_job(8)))
        assert extractor.worker_pids() == []


def test_one_worker_with_budgets_is_a_process(matcher: Matcher) -> None:
    assert not Extractor(matcher, 1).inline  # the defaults: 20 s, 512 MB


# -- workers die with their parent ---------------------------------------------------------

PARENT = """
import json, sys, time
from pathlib import Path

from tracker.extraction.extract import ExtractJob
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import load_rules
from tracker.pipeline.workers import Extractor

if __name__ == "__main__":
    extractor = Extractor(Matcher(load_rules([Path(sys.argv[1])])), 2, timeout=120)
    assert extractor.start(wait=60)
    run = "<span>word " * 200 + "</span>" * 200
    html = f"<html><body><article>{run * 2000}</article></body></html>".encode()
    extractor.submit(ExtractJob(url="https://spans.example/a", html=html))  # one busy, one idle
    time.sleep(0.5)
    print(json.dumps(extractor.worker_pids()), flush=True)
    time.sleep(300)
"""


@linux_only
def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    with (tmp_path / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(REPO / "rules")], stdout=subprocess.PIPE, stderr=err, cwd=REPO
        )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 90)
        assert readable, (tmp_path / "stderr").read_text()
        pids = json.loads(proc.stdout.readline())
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids if _alive(p)] == []


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# -- configuration -------------------------------------------------------------------------


def test_budget_settings(tmp_path: Path) -> None:
    assert (FetchConfig().extract_timeout, FetchConfig().extract_memory_mb) == (20.0, 512)
    data = {"fetch": {"extract_timeout": 5, "extract_memory_mb": 256}}
    fetch = parse_config(data, tmp_path / "t.toml", {}).fetch
    assert (fetch.extract_timeout, fetch.extract_memory_mb) == (5, 256)
    for bad in ({"extract_timeout": -1}, {"extract_memory_mb": "1G"}, {"extract_memory_mb": 1.5}):
        with pytest.raises(ConfigError):
            parse_config({"fetch": bad}, tmp_path / "t.toml", {})
