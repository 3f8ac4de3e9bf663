"""A page's <link rel="canonical"> names the article only when it stays on the page's own
site (the URL it was served from, after redirects) or on a host the feed links to."""

from __future__ import annotations

import pytest

from tracker.core.types import Article
from tracker.extraction.extract import ExtractJob, build_article

from .feedkit import page


def built(
    canonical: str, final_url: str | None, *, url: str | None = None, feed_hosts: frozenset[str] = frozenset()
) -> Article:
    html = page("Tram line extended", canonical=canonical).encode()
    return build_article(
        ExtractJob(
            url=url or final_url or "", html=html, final_url=final_url, feed_hosts=feed_hosts, min_text_chars=200
        )
    )


@pytest.mark.parametrize(
    ("final_url", "canonical"),
    [
        ("https://gazette.example/news/1?utm_source=rss", "https://gazette.example/stories/tram"),
        ("https://www.gazette.example/news/1", "https://gazette.example/stories/tram"),  # www. aside
        ("https://gazette.example/news/1", "https://WWW.Gazette.example/stories/tram"),
        ("https://gazette.example/news/1", "/stories/tram"),  # relative: the page's site by construction
    ],
)
def test_a_canonical_link_on_the_same_site_is_believed(final_url: str, canonical: str) -> None:
    article = built(canonical, final_url)
    assert article.url == article.canonical_url
    assert article.url.endswith("gazette.example/stories/tram")


def test_the_site_is_the_one_the_page_was_served_from() -> None:
    # The feed linked a redirector; the publisher's page names itself.
    article = built(
        "https://gazette.example/stories/tram", "https://gazette.example/news/1", url="https://redirect.example/r/9"
    )
    assert article.url == "https://gazette.example/stories/tram"
    # ... and a page on the redirector's host cannot claim the publisher's article.
    article = built("https://gazette.example/stories/tram", "https://redirect.example/r/9")
    assert article.url == "https://redirect.example/r/9"


def test_a_canonical_link_to_another_outlet_is_ignored() -> None:
    article = built("https://rival.example/their-scoop", "https://copycat.example/news/1?utm_medium=feed")
    assert article.url == "https://copycat.example/news/1"  # the page's own URL, canonicalized
    assert article.canonical_url is None
    assert article.final_url == "https://copycat.example/news/1?utm_medium=feed"


def test_a_subdomain_is_another_site() -> None:
    article = built("https://blogs.gazette.example/x", "https://gazette.example/news/1")
    assert article.url == "https://gazette.example/news/1"


def test_without_a_final_url_the_link_itself_is_the_page() -> None:
    assert built("https://rival.example/x", None, url="https://gazette.example/news/1").url == (
        "https://gazette.example/news/1"
    )
    assert built("https://www.gazette.example/s", None, url="https://gazette.example/news/1").url == (
        "https://www.gazette.example/s"
    )


@pytest.mark.parametrize("host", ["gazette-news.example", "www.gazette-news.example", "Gazette-News.example"])
def test_a_host_the_feed_links_to_is_believed(host: str) -> None:
    article = built(
        "https://www.gazette-news.example/stories/tram",
        "https://gazette.example/news/1",
        feed_hosts=frozenset({"other.example", host}),
    )
    assert article.url == "https://www.gazette-news.example/stories/tram"
    assert article.canonical_url == article.url


def test_feed_hosts_do_not_vouch_for_other_hosts() -> None:
    article = built(
        "https://rival.example/x", "https://gazette.example/news/1", feed_hosts=frozenset({"gazette-news.example"})
    )
    assert article.url == "https://gazette.example/news/1"
