"""What an analyst sees, rendered in headless Chromium at desktop and phone widths from the
demo's store: the digest (each story's link and headline from one item, only identifying
words highlighted, a topic index with counts, no path of the machine) and the report (its
window where the data is). Screenshots go to build/ for a person to look at."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tracker.demo.site import NewsSite

from .conftest import REPO
from .test_cli import tracker, write_config

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BUILD = REPO / "build"
#: words that are everywhere in news: highlighting one points at nothing
GENERIC = {
    "us",
    "u.s.",
    "market",
    "markets",
    "building",
    "talks",
    "company",
    "said",
    "deal",
    "plan",
    "china",
    "chinese",
}


class Digest(HTMLParser):
    """The entries of a rendered digest: (href, headline), the highlighted words, the index."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.hits: list[str] = []
        self.index: list[str] = []
        self._in: str | None = None
        self._href = ""
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "a" and "link" in cls and not (a.get("href") or "").startswith("#"):
            self._in, self._href, self._text = "link", a.get("href") or "", ""
        elif tag == "a" and (a.get("href") or "").startswith("#topic-"):
            self._in, self._text = "index", ""
        elif tag == "b" and "hit" in cls:
            self._in, self._text = "hit", ""

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._in == "link" and tag == "a":
            self.links.append((self._href, self._text.strip()))
        elif self._in == "index" and tag == "a":
            self.index.append(self._text.strip())
        elif self._in == "hit" and tag == "b":
            self.hits.append(self._text.strip())
        else:
            return
        self._in = None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("analyst")
    assert tracker("demo", cwd=where, env={"TRACKER_HOME": str(where / "home")}).returncode == 0
    (where / "tracker.toml").write_text(
        '[database]\nurl = "sqlite:///tracker.sqlite"\n\n'
        '[[digests]]\nname = "autos desk"\nto = ["desk@example.org"]\nrules = ["*"]\nat = "07:00"\n'
        'timezone = "Europe/Berlin"\n',
        encoding="utf-8",
    )
    preview = tracker("digest", "preview", "--out", "out", "--since", "2000-01-01", cwd=where)
    assert preview.returncode == 0, preview.stderr
    return where


def test_each_headline_links_to_its_own_article_and_marks_point_at_something(demo: Path) -> None:
    html = (demo / "out" / "autos-desk.html").read_text(encoding="utf-8")
    page = Digest()
    page.feed(html)
    assert page.links
    titles = dict(sqlite3.connect(demo / "tracker.sqlite").execute("SELECT url, title FROM items"))
    for href, headline in page.links:
        assert titles.get(href) == headline, f"{headline!r} links to {href}, titled {titles.get(href)!r}"
    assert page.hits, "the matches' names and phrases are highlighted"
    assert not [h for h in page.hits if h.lower() in GENERIC]
    topics = {t for (t,) in sqlite3.connect(demo / "tracker.sqlite").execute("SELECT DISTINCT rule_id FROM matches")}
    assert len(page.index) == len(topics)  # every topic with news, once, in the index
    counts = re.findall(r'class="muted count"[^>]*>(\d+) new, (\d+) update', html)
    assert len(counts) == len(topics) and sum(int(n) + int(u) for n, u in counts) > 0
    for machine in (str(demo), str(REPO), "/home/", "tracker.toml"):
        assert machine not in html


def test_dates_of_another_year_carry_it() -> None:
    from tracker.digest.render import local

    now = datetime(2026, 12, 4, 9, tzinfo=UTC)
    assert "2025" in local(datetime(2025, 11, 30, 9, tzinfo=UTC), "Europe/Berlin", now)
    assert "2026" not in local(datetime(2026, 11, 30, 9, tzinfo=UTC), "Europe/Berlin", now)


def test_the_demo_is_dated_to_the_days_before_it_runs(demo: Path) -> None:
    con = sqlite3.connect(demo / "tracker.sqlite")
    newest, oldest = con.execute("SELECT max(published_at), min(published_at) FROM items").fetchone()
    today = datetime.now(UTC).date()
    assert (today - datetime.fromisoformat(newest).date()).days in (1, 2)
    assert datetime.fromisoformat(oldest).date() < today
    week = tracker("stories", "--since", str(today.fromordinal(today.toordinal() - 7)), "--format", "json", cwd=demo)
    assert week.returncode == 0 and json.loads(week.stdout), "this week has stories"


def test_the_report_covers_where_the_data_is(demo: Path) -> None:
    report = tracker("report", "--out", "report.html", cwd=demo)
    assert report.returncode == 0, report.stderr
    html = (demo / "report.html").read_text(encoding="utf-8")
    assert "The last 30 days" in html and "up to the newest one" not in html
    assert html.count("<path") > 5  # the chart has lines, not "no tagged items"
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>", html, re.S)
    assert rows and all(re.match(r'<a href="https?://[^"]+">[^<]+</a>$', r.strip()) for r in rows)


def test_a_report_whose_window_is_empty_moves_to_the_data_and_says_so(tmp_path: Path, news_site: NewsSite) -> None:
    cfg = write_config(tmp_path, news_site)  # the site's articles keep their dates of early 2026
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    report = tracker("--config", str(cfg), "report", "--out", "-", "--days", "7")
    assert report.returncode == 0, report.stderr
    con = sqlite3.connect(tmp_path / "data" / "tracker.sqlite")
    newest = con.execute("SELECT max(day) FROM topic_daily").fetchone()[0]
    assert f"this report covers the 7 days up to the newest one ({newest})" in report.stdout
    assert report.stdout.count("<path") > 3


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("width", [1200, 400])
@pytest.mark.parametrize("page", ["out/autos-desk.html", "report.html"])
def test_pages_render_in_chromium(demo: Path, tmp_path: Path, page: str, width: int) -> None:
    if page == "report.html" and not (demo / page).exists():
        assert tracker("report", "--out", page, cwd=demo).returncode == 0
    BUILD.mkdir(exist_ok=True)
    shot = BUILD / f"{Path(page).stem}-{width}.png"
    shot.unlink(missing_ok=True)
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            f"--window-size={width},2400",
            f"--screenshot={shot}",
            (demo / page).as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), result.stderr
    assert shot.stat().st_size > 10_000


def test_one_set_of_counts(demo: Path) -> None:
    """The digest's header, `tracker status` and the send summary count the same things:
    distinct stories and distinct articles waiting."""
    html = (demo / "out" / "autos-desk.html").read_text(encoding="utf-8")
    stories, articles = map(int, re.search(r"(\d+) stor(?:y|ies), (\d+) articles? new since", html).groups())
    headline = re.search(r"<h1[^>]*>(\d+) new stor(?:y|ies) in \d+ topics?</h1>", html)
    assert headline and int(headline.group(1)) == stories  # a first digest: every story is new, counted once
    status = tracker("status", cwd=demo).stdout
    waiting = int(re.search(r"autos desk: (\d+) articles waiting", status).group(1))
    assert articles == waiting
    con = sqlite3.connect(demo / "tracker.sqlite")
    tagged = con.execute("SELECT count(DISTINCT item_id), count(DISTINCT story_id) FROM tagged_items").fetchone()
    assert (articles, stories) == tagged


def test_a_long_window_is_charted_per_week(demo: Path) -> None:
    year = tracker("report", "--out", "-", "--days", "365", cwd=demo)
    assert year.returncode == 0 and "tagged items per week" in year.stdout
    month = tracker("report", "--out", "-", "--days", "30", cwd=demo)
    assert "tagged items per day" in month.stdout


def test_the_report_reads_in_the_readers_time_zone_and_links_to_timelines(demo: Path) -> None:
    web = "http://127.0.0.1:8001/tracker"
    zone = "Asia/Tokyo"
    report = tracker("report", "--out", "-", "--days", "365", "--timezone", zone, "--web-url", web, cwd=demo)
    assert report.returncode == 0, report.stderr
    html = report.stdout
    assert f"times in {zone}" in html
    con = sqlite3.connect(demo / "tracker.sqlite")
    shown = re.findall(r'<td class="t">([^<]*)</td>\s*<td class="t last">[^<]*</td>.*?story_id=(\d+)"', html, re.S)
    assert shown
    for first_seen, story_id in shown:
        stored = con.execute("SELECT first_seen FROM stories WHERE story_id = ?", (int(story_id),)).fetchone()[0]
        when = datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
        assert first_seen.startswith(when.strftime("%a %d %b")) and when.strftime("%H:%M JST") in first_seen
    links = re.findall(r'class="timeline" href="([^"]+)"', html)
    assert links and all(link.startswith(web + "/story_timeline?story_id=") for link in links)


def test_a_day_is_the_readers_day(demo: Path) -> None:
    """An item counts on the day it was published where the reader is: the chart's totals per
    zone differ only in which day they fall on, never in how many there are."""
    from tracker.analysis.htmlreport import topic_volume
    from tracker.store.database import Store
    from tracker.store.engine import make_engine

    store = Store(make_engine(f"sqlite:///{demo / 'tracker.sqlite'}"))
    since, until = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    utc, tokyo = topic_volume(store, since, until, "UTC"), topic_volume(store, since, until, "Asia/Tokyo")
    con = sqlite3.connect(demo / "tracker.sqlite")
    for topic, n in con.execute("SELECT rule_id, count(*) FROM matches GROUP BY rule_id"):
        assert sum(utc[topic].values()) == sum(tokyo[topic].values()) == n
    late = con.execute(
        "SELECT m.rule_id, i.story_at FROM matches m JOIN items i ON i.id = m.item_id "
        "WHERE time(i.story_at) >= '15:00:00' LIMIT 1"
    ).fetchone()  # after 15:00 UTC is the next day in Tokyo
    if late:
        day = datetime.fromisoformat(late[1]).date()
        assert tokyo[late[0]].get(day.fromordinal(day.toordinal() + 1).isoformat(), 0) >= 1


@pytest.mark.parametrize("days", [30, 365])
def test_the_chart_axis_spans_the_window_of_the_data(demo: Path, days: int) -> None:
    report = tracker("report", "--out", "-", "--days", str(days), cwd=demo)
    assert report.returncode == 0, report.stderr
    svg = re.search(r"<svg[^>]*>", report.stdout)
    assert svg, "an inline chart"
    axis = re.search(r'data-axis-from="([\d-]+)" data-axis-to="([\d-]+)"', svg.group(0))
    assert axis
    first, last = (datetime.fromisoformat(d).date() for d in axis.groups())
    window = re.search(r"\((\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d)", report.stdout)
    assert window
    since, until = (datetime.fromisoformat(d).date() for d in window.groups())
    slack = 7 if days > 62 else 1  # a weekly axis starts on the Monday of the first week
    assert since.toordinal() - slack <= first.toordinal() <= last.toordinal() <= until.toordinal() + slack
    con = sqlite3.connect(demo / "tracker.sqlite")
    inside = con.execute("SELECT count(*) FROM topic_daily WHERE day BETWEEN ? AND ?", (str(since), str(until)))
    assert inside.fetchone()[0] > 0  # the window holds data
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", report.stdout)
    assert labels and not any("1970" in label for label in labels)
