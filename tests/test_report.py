"""`tracker report`: a self-contained HTML report with an inline SVG chart of topic volume
per day and the top stories per topic, checked as text and in headless Chromium."""

from __future__ import annotations

import html
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tracker.demo.site import NewsSite

from .test_cli import tracker, write_config
from .test_digest import CHROMIUM, headless

pytestmark = pytest.mark.slow
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    with NewsSite() as site:
        cfg = write_config(tmp, site)
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    out = tmp / "report.html"
    # The demo articles are dated early 2026: a period long enough to include them.
    done = tracker("--config", str(cfg), "report", "--out", str(out), "--days", "400", "--top", "3")
    assert done.returncode == 0, done.stderr
    return out, tmp / "data" / "tracker.sqlite"


def test_the_report_is_self_contained_with_a_chart_and_top_stories(report: tuple[Path, Path]) -> None:
    out, db = report
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and "<script" not in page and "http://" not in page.split("<svg", 1)[0]
    con = sqlite3.connect(db)
    for topic, n in con.execute("SELECT rule_id, count(*) FROM matches GROUP BY rule_id"):
        assert f'id="topic-{topic}"' in page and f"· {n} tagged items" in page
        assert topic in page.split("<svg", 1)[1].split("</svg>", 1)[0]  # in the chart's legend
    # The most widely reported story of a topic is listed, escaped.
    (headline,) = con.execute(
        "SELECT s.headline FROM stories s WHERE EXISTS (SELECT 1 FROM tagged_items t "
        "WHERE t.story_id = s.story_id AND t.rule_id = 'gm-opposition') "
        "ORDER BY s.n_sources DESC, s.n_items DESC, s.story_id LIMIT 1"
    ).fetchone()
    assert html.escape(headline, quote=False) in page


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's chromium)")
def test_the_report_renders_in_chromium(report: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = report
    browser = headless(tmp_path / "chromium")
    dom = subprocess.run([*browser, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert "Topic report" in dom.stdout and "<svg" in dom.stdout and dom.stdout.count("<path") > 5
    shot = Path(__file__).resolve().parent.parent / "build" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    subprocess.run(
        [*browser, "--hide-scrollbars", "--window-size=1000,1200", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000
