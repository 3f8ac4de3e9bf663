"""Spikes end to end: a real feed server whose topic has had about one article a day for
three weeks and then a dozen today; `tracker poll --once` records the surge once in the
`topic_spikes` view with the stories behind it, a second cycle does not record it again,
and the digest names it."""

from __future__ import annotations

import email.utils
import html
import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .alertkit import Receiver
from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, page
from .test_cli import tracker

pytestmark = pytest.mark.slow

WORDS = tuple(
    [
        "dredging",
        "pontoon",
        "ferry",
        "berth",
        "crane",
        "quay",
        "tariff",
        "pilot",
        "tugboat",
        "cargo",
        "container",
        "warehouse",
        "inspector",
        "contract",
        "lease",
        "channel",
        "beacon",
        "lighthouse",
        "ticket",
        "timetable",
        "commuter",
        "island",
        "council",
        "budget",
        "audit",
        "tender",
        "engineer",
        "survey",
        "storm",
        "repair",
        "harbourmaster",
        "mooring",
        "marina",
        "fishery",
        "permit",
        "customs",
        "levy",
        "freight",
        "schedule",
        "vessel",
        "captain",
        "crew",
        "dock",
        "gantry",
    ]
)
RULE = 'id = "harbour"\ntitle = "Harbour news"\nquery = \'harbour\'\n'


SYLLABLES = tuple(
    [
        "ka",
        "lo",
        "ven",
        "tar",
        "mi",
        "sul",
        "dra",
        "pe",
        "quo",
        "ris",
        "bel",
        "nor",
        "tu",
        "gam",
        "zi",
        "hex",
        "vo",
        "lun",
        "cre",
        "dax",
    ]
)


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def _article(rng: random.Random, n: int) -> tuple[str, tuple[str, ...]]:
    """An article about the harbour on a subject of its own: names and figures no other
    article has, so each is a story of its own."""
    who, what, where = _name(rng), _name(rng), _name(rng)
    title = f"{who} {_name(rng).lower()} {where} {_name(rng).lower()} harbour {what} {_name(rng).lower()}"
    paragraphs = tuple(
        f"{_name(rng)} {rng.choice(WORDS)} {_name(rng)} {rng.randint(100, 99999)} {_name(rng)} "
        f"{rng.choice(WORDS)} {_name(rng)} {who} {rng.randint(100, 99999)} {_name(rng)} harbour {_name(rng)}."
        for _ in range(4)
    )
    return title, paragraphs


def publish(server: HTTPServer, dated: list[tuple[datetime, str, tuple[str, ...]]]) -> None:
    items = []
    for n, (when, title, paragraphs) in enumerate(dated):
        slug = f"/a{n}.html"
        server.routes[slug] = Response(body=page(title, paragraphs), headers=HTML_HEADERS)
        items.append(
            f"<item><title>{html.escape(title)}</title><link>{server.url(slug)}</link><guid>g{n}</guid>"
            f"<pubDate>{email.utils.format_datetime(when)}</pubDate><description>{html.escape(paragraphs[0])}"
            "</description></item>"
        )
    server.routes["/feed.xml"] = Response(
        body="<?xml version='1.0'?><rss version='2.0'><channel><title>Harbour Wire</title>"
        f"<link>http://example.invalid/</link><description>d</description>{''.join(items)}</channel></rss>",
        headers=RSS_HEADERS,
    )


def write_config(tmp_path: Path, server: HTTPServer, extra: str = "") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/tracker.sqlite"\n\n[rules]\npaths = ["{rules}"]\n\n'
        f'[[feeds]]\nname = "Harbour Wire"\nurl = "{server.url("/feed.xml")}"\n\n'
        "[poll]\nmax_entries_per_feed = 500\n\n"
        '[[digests]]\nname = "desk"\nto = ["desk@example.org"]\nrules = ["harbour"]\n' + extra,
        encoding="utf-8",
    )
    return cfg


def test_a_surge_is_recorded_once_with_its_stories_and_reaches_the_digest(
    tmp_path: Path, http_server: HTTPServer
) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    dated = []
    for day in range(1, 22):  # three quiet weeks: about one article a day
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            dated.append((now - timedelta(days=day, hours=rng.randint(0, 8)), *_article(rng, len(dated))))
    burst = [(now - timedelta(minutes=3 + 2 * k), *_article(rng, len(dated) + k)) for k in range(14)]
    publish(http_server, dated + burst)
    cfg = write_config(tmp_path, http_server)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0

    con = sqlite3.connect(tmp_path / "tracker.sqlite")
    con.row_factory = sqlite3.Row
    spikes = con.execute("SELECT * FROM topic_spikes WHERE topic = 'harbour'").fetchall()
    daily = [s for s in spikes if s["bucket"] == "day" and s["measure"] == "items"]
    assert daily, [dict(s) for s in spikes]
    (spike,) = daily
    assert spike["observed"] >= len(burst) and spike["expected"] < 3
    stories = json.loads(spike["stories"])
    burst_titles = {title for _, title, _ in burst}
    assert stories and all(s["headline"] in burst_titles for s in stories)
    assert {"story_id", "headline", "n_sources", "url"} <= set(stories[0])
    assert {s["measure"] for s in spikes} == {"items", "stories"}  # each burst article is its own story

    # The next cycle sees the same surge and records nothing new.
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert con.execute("SELECT count(*) FROM topic_spikes").fetchone()[0] == len(spikes)

    out = tmp_path / "preview"
    preview = tracker("--config", str(cfg), "digest", "preview", "--out", str(out))
    assert preview.returncode == 0, preview.stderr
    text = (out / "desk.txt").read_text(encoding="utf-8")
    assert "Surge: Harbour news:" in text and stories[0]["headline"] in text
    assert 'class="spike"' in (out / "desk.html").read_text(encoding="utf-8")

    report = tracker("--config", str(cfg), "report", "--out", "-", "--days", "30")
    assert report.returncode == 0, report.stderr
    assert ">surge (topic_spikes)</text>" in report.stdout  # the chart marks it, and says what the mark is


def test_quiet_coverage_records_no_spike(tmp_path: Path, http_server: HTTPServer) -> None:
    rng = random.Random(11)
    now = datetime.now(UTC).replace(microsecond=0)
    dated = [(now - timedelta(days=d, hours=2), *_article(rng, d)) for d in range(0, 22)]
    publish(http_server, dated)
    cfg = write_config(tmp_path, http_server)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert sqlite3.connect(tmp_path / "tracker.sqlite").execute("SELECT count(*) FROM topic_spikes").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("setting", "key"),
    [("sensitivity = 11", "spikes.sensitivity"), ('hourly = "yes"', "spikes.hourly"), ("louder = 1", "spikes.louder")],
)
def test_bad_spike_settings_are_one_line(tmp_path: Path, http_server: HTTPServer, setting: str, key: str) -> None:
    publish(http_server, [])
    cfg = write_config(tmp_path, http_server, f"\n[spikes]\n{setting}\n")
    result = tracker("--config", str(cfg), "poll", "--once")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert key in result.stderr and str(cfg) in result.stderr


def test_a_surge_reaches_the_alerts_that_ask_for_spikes_once(tmp_path: Path, http_server: HTTPServer) -> None:
    hook = Receiver()
    try:
        rng = random.Random(5)
        now = datetime.now(UTC).replace(microsecond=0)
        dated = [(now - timedelta(days=d, hours=3), *_article(rng, d)) for d in range(1, 22)]
        burst = [(now - timedelta(minutes=2 + k), *_article(rng, 100 + k)) for k in range(12)]
        publish(http_server, dated + burst)
        alerts = (
            f'\n[[alerts]]\nname = "surges"\nrules = ["harbour"]\nurls = ["{hook.url("/spikes")}"]\n'
            'events = ["spike"]\n'
        )
        cfg = write_config(tmp_path, http_server, alerts)
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
        (message,) = hook.at("/spikes")  # one surge, one message, though seen per day and hour, in items and stories
        text = message.body["message"]
        assert "harbour" in text.lower() and any(title in text for _, title, _ in burst)
        publish(http_server, [*dated, *burst, (now - timedelta(minutes=1), *_article(rng, 999))])
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
        assert len(hook.at("/spikes")) == 1  # recorded once, announced once
    finally:
        hook.stop()
