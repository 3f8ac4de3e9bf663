"""`tracker web`: Datasette over the store, read-only, with metadata, facets, search and
canned queries; checked over HTTP and in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracker.analysis import webcells
from tracker.demo.site import NewsSite

from .test_cli import tracker, write_config
from .test_digest import CHROMIUM, free_port, headless

pytestmark = pytest.mark.slow
pytest.importorskip("datasette")

TOPIC = "ford-china-jv"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("web")
    with NewsSite() as site:
        cfg = write_config(tmp, site)
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), "web", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/-/versions.json", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.3)
        yield base, tmp / "data" / "tracker.sqlite"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()


def get(base: str, path: str, **params: str) -> Any:
    query = urllib.parse.urlencode({**params, "_shape": "array"})
    with urllib.request.urlopen(f"{base}{path}.json?{query}", timeout=10) as response:
        return json.loads(response.read())


def test_views_are_described_faceted_and_filterable(served: tuple[str, Path]) -> None:
    base, db = served
    rows = get(base, "/tracker/tagged_items", rule_id=TOPIC, _size="max")
    expected = sqlite3.connect(db).execute("SELECT count(*) FROM tagged_items WHERE rule_id = ?", (TOPIC,)).fetchone()
    assert rows and len(rows) == expected[0] and {r["rule_id"] for r in rows} == {TOPIC}
    with urllib.request.urlopen(base + "/-/metadata.json", timeout=10) as response:
        meta = json.loads(response.read())
    tables = meta["databases"]["tracker"]["tables"]
    assert tables["tagged_items"]["facets"] == ["rule_id", "source"]
    assert tables["stories"]["columns"]["n_sources"] == "Distinct outlets."


def test_search_and_canned_queries(served: tuple[str, Path]) -> None:
    base, _ = served
    found = get(base, "/tracker/items", _search="Farley")
    assert found and all("Farley" in (r["title"] + r["text"]) for r in found)
    volume = get(base, "/tracker/topic_volume_per_day")
    assert volume and {"day", "topic", "items"} <= set(volume[0])
    outlets = get(base, "/tracker/outlets_covering_topic", topic=TOPIC)
    assert outlets and all(r["items"] >= 1 for r in outlets)
    story = get(base, "/tracker/stories")[0]
    timeline = get(base, "/tracker/story_timeline", story_id=str(story["story_id"]))
    assert len(timeline) == story["n_items"] and {"time", "outlet", "role", "title", "url"} <= set(timeline[0])
    with urllib.request.urlopen(f"{base}/-/metadata.json", timeout=10) as response:
        described = json.loads(response.read())["databases"]["tracker"]["queries"]
    assert TOPIC in described["outlets_covering_topic"]["description"]  # the valid topics are named


def test_the_landing_page_leads_with_views_and_questions(served: tuple[str, Path]) -> None:
    base, _ = served
    with urllib.request.urlopen(f"{base}/tracker", timeout=10) as response:
        page = response.read().decode("utf-8")
    views, queries, tables = (page.index(m) for m in ("Start here", "Questions, ready to ask", "<details"))
    assert views < queries < tables  # internal tables last, folded away
    for described in ("One row per story", "A story&#39;s timeline", "Topics: ", TOPIC):
        assert described in page or described.replace("&#39;", "'") in page


def test_it_cannot_write(served: tuple[str, Path]) -> None:
    base, db = served
    before = sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone()[0]
    query = urllib.parse.urlencode({"sql": "DELETE FROM items"})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{base}/tracker.json?{query}", timeout=10)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM items").fetchone()[0] == before


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's chromium)")
def test_a_topic_filtered_page_in_chromium(served: tuple[str, Path], tmp_path: Path) -> None:
    base, db = served
    url = f"{base}/tracker/tagged_items?rule_id={TOPIC}"
    browser = headless(tmp_path / "chromium")
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    n = sqlite3.connect(db).execute("SELECT count(*) FROM tagged_items WHERE rule_id = ?", (TOPIC,)).fetchone()[0]
    assert "Tagged items" in dom  # the title from our metadata
    assert f'{n} rows where rule_id = "{TOPIC}"' in dom  # the filter as Datasette shows it
    assert 'class="facet-info' in dom or "facet-results" in dom  # facets by topic and source
    title = sqlite3.connect(db).execute("SELECT title FROM tagged_items WHERE rule_id = ? LIMIT 1", (TOPIC,))
    assert title.fetchone()[0].split(" ")[0] in dom
    assert re.search(r'<details class="column-notes"><summary>What the columns mean</summary><dl', dom)
    shot = Path(__file__).resolve().parent.parent / "build" / "web.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    subprocess.run(
        [*browser, "--hide-scrollbars", "--window-size=1280,1000", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000


def test_sigterm_stops_the_server_and_cleans_up(tmp_path: Path) -> None:
    """A service manager stops `tracker web` with SIGTERM: the Datasette child goes too, the
    port is free again and the temporary metadata is gone."""
    with NewsSite() as site:
        cfg = write_config(tmp_path, site)
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), "web", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/-/versions.json"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base, timeout=2).read()
            break
        except (urllib.error.URLError, ConnectionError):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.3)
    assert list((tmp_path / "tmp").iterdir())  # the metadata file, while it serves
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(base, timeout=2).read()
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's chromium)")
@pytest.mark.parametrize("width", [1200, 400])
@pytest.mark.parametrize("page", ["tracker", "tracker/story_timeline?story_id=1"], ids=["landing", "timeline"])
def test_pages_at_desktop_and_phone_width(served: tuple[str, Path], tmp_path: Path, page: str, width: int) -> None:
    base, _ = served
    shot = Path(__file__).resolve().parent.parent / "build" / f"web-{page.split('/')[-1].split('?')[0]}-{width}.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    browser = headless(tmp_path / "chromium")
    subprocess.run(
        [*browser, "--hide-scrollbars", f"--window-size={width},1600", f"--screenshot={shot}", f"{base}/{page}"],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    dom = subprocess.run([*browser, "--dump-dom", f"{base}/{page}"], capture_output=True, text=True, timeout=120).stdout
    assert ("Start here" if page == "tracker" else "A story&#39;s timeline") in dom or "A story's timeline" in dom


def html_of(base: str, path: str) -> str:
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
        return str(response.read().decode("utf-8"))


def links(page: str, column: str) -> list[tuple[str, str]]:
    """(href, text) of the links in a column's cells."""
    return re.findall(rf'<td class="col-{column}[^"]*"><a href="([^"]+)"[^>]*>([^<]*)</a>', page)


def test_stories_and_items_link_to_each_other(served: tuple[str, Path]) -> None:
    base, db = served
    con = sqlite3.connect(db)
    stories = html_of(base, "/tracker/stories?_size=max")
    by_id = links(stories, "story_id")
    expected = {row[0] for row in con.execute("SELECT story_id FROM stories")}
    assert {int(text) for _, text in by_id} == expected
    assert all(href == f"/tracker/story_timeline?story_id={text}" for href, text in by_id)
    headlines = links(stories, "headline")
    assert len(headlines) == len(expected) and all("story_timeline?story_id=" in href for href, _ in headlines)

    story_id, n_items = con.execute("SELECT story_id, n_items FROM stories ORDER BY n_items DESC LIMIT 1").fetchone()
    timeline = html_of(base, f"/tracker/story_timeline?story_id={story_id}")
    items = links(timeline, "item_id")
    members = {row[0] for row in con.execute("SELECT id FROM items WHERE story_id = ?", (story_id,))}
    assert len(items) == n_items and {int(text) for _, text in items} == members
    for href, text in items:  # and each item's page leads back to the story
        assert href == f"/tracker/items/{text}"
        back = links(html_of(base, href), "story_id")
        assert back == [(f"/tracker/story_timeline?story_id={story_id}", str(story_id))]
    titles = links(timeline, "title")  # headlines open the articles themselves
    urls = {row[0] for row in con.execute("SELECT url FROM items WHERE story_id = ?", (story_id,))}
    assert {html.unescape(href) for href, _ in titles} == urls

    tagged = html_of(base, f"/tracker/tagged_items?rule_id={TOPIC}")
    item_links = links(tagged, "item_id")
    assert item_links and all(href == f"/tracker/items/{text}" for href, text in item_links)
    assert links(tagged, "story_id")


def test_cells_read_short(served: tuple[str, Path]) -> None:
    """Matched terms as one short line, stored times to the minute."""
    base, _ = served
    page = html_of(base, "/tracker/tagged_items?_size=max")
    cells = re.findall(r'<span class="terms" title="[^"]*">([^<]*)</span>', page)
    assert cells and all(text.count(",") < webcells.TERMS_SHOWN for text in cells)
    assert not re.search(r"\.000000</", page)
    assert re.search(r"<time datetime=\"[^\"]+\"[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d</time>", page)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's chromium)")
def test_a_topic_is_chosen_from_a_list(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    browser = headless(tmp_path / "chromium")
    url = f"{base}/tracker/outlets_covering_topic"
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    select = re.search(r'<select name="topic"[^>]*>(.*?)</select>', dom, re.S)
    assert select, dom[:2000]
    options = re.findall(r"<option[^>]*>([^<]*)</option>", select.group(1))
    with urllib.request.urlopen(f"{base}/-/metadata.json", timeout=10) as response:
        topics = json.loads(response.read())["plugins"]["newstracker"]["topics"]
    assert options == topics and TOPIC in options
    assert not re.search(r'<input[^>]*name="topic"', dom)  # no free-text field left


def test_cells_escape_what_they_show() -> None:
    hostile = '["<script>x</script>", "a\\"b"]'
    cell = str(webcells.terms_cell(hostile))
    assert "<script>" not in cell and "&lt;script&gt;" in cell
    assert webcells.terms_cell("[1, 2]") is None and webcells.terms_cell("not json") is None
    link = str(webcells.url_cell('https://example.com/a"><script>alert(1)</script>'))
    assert "<script>" not in link
    script = webcells.topics_script(["a</script><script>alert(1)//"])
    assert "</script>" not in script
