"""Content safety: feed-derived text is stored as plain text; no markup or terminal escape
sequence reaches the terminal, and the digest escapes everything (see test_digest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tracker.analysis.tables import table
from tracker.core.errors import FetchError
from tracker.core.text import html_to_text, normalize_space, plain

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import tracker

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x1b[31mRED\x1b[0m"  # clear screen, set window title, colour
BIDI = "\u202egnp.exe"  # right-to-left override


def test_control_characters_and_bidi_overrides_are_dropped() -> None:
    assert plain("a\x00b\x1b[31mc\x7fd\x9be\u202ef\tg\nh") == "ab[31mcdef\tg\nh"
    assert "\x1b" not in normalize_space(ESCAPES) and "\u202e" not in normalize_space(BIDI)
    assert html_to_text("<p>one &lt;b&gt;\x1b[1m two</p><script>alert(1)</script>") == "one <b>[1m two"


def test_terminal_tables_show_no_escape_sequences() -> None:
    out = table(("title",), [(f"Harbour {ESCAPES} news\nsecond line",)])
    assert "\x1b" not in out and "\x07" not in out and "second line" in out.splitlines()[2]


def test_fetch_errors_carry_no_control_characters() -> None:
    assert "\x1b" not in str(FetchError("http://x.example/", "HTTP 500 \x1b[2JBroken"))


@pytest.mark.slow
def test_hostile_titles_are_stored_and_shown_as_plain_text(tmp_path: Path, http_server: HTTPServer) -> None:
    title = f"Harbour board {ESCAPES} <b>vote</b> {BIDI}"
    http_server.routes["/s.html"] = Response(200, page("Harbour board vote"), HTML_HEADERS)
    entry = Entry(slug="s", title=title, link=http_server.url("/s.html"))
    http_server.routes["/feed.xml"] = Response(200, rss([entry], title=f"Gazette {ESCAPES}"), RSS_HEADERS)
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.sqlite"}"\n[fetch]\nextract_workers = 1\n'
        f'[[feeds]]\nname = "Gazette"\nurl = "{http_server.url("/feed.xml")}"\n',
        encoding="utf-8",
    )
    poll = tracker("--config", str(cfg), "poll", "--once")
    assert poll.returncode == 0, poll.stderr
    con = sqlite3.connect(tmp_path / "t.sqlite")
    (stored,) = con.execute("SELECT title FROM items").fetchone()
    (feed_title,) = con.execute("SELECT title FROM feeds").fetchone()
    for text in (stored, feed_title, poll.stdout, poll.stderr):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    # The markup in the feed's title became its text; the escape sequences lost their ESC.
    assert stored.startswith("Harbour board") and "RED" in stored and " vote " in stored and "<b>" not in stored
    shown = tracker("--config", str(cfg), "stories")
    assert shown.returncode == 0 and "\x1b" not in shown.stdout and "Harbour board" in shown.stdout


def test_html_to_text_skips_scripts_styles_comments_in_one_pass() -> None:
    from tracker.core.text import html_to_text

    fragment = (
        "<p>a<script>x<b>y</b></script>tail<style>s</style> end</p><!-- c -->after<?pi x?>more<noscript>n</noscript>z"
    )
    assert html_to_text(fragment) == "atail end\n\naftermorez"
    many = "<p>" + "<!--c--><script>s</script>x" * 20_000  # linear: thousands of each are cheap
    assert html_to_text(many) == "x" * 20_000
