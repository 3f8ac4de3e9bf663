"""tracker.core.urls: canonical URLs, feed-URL validation and the private-address checks."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.core.urls import canonicalize, is_private_address, validate_feed_url

# --- canonicalize -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # tracking parameters go, whatever their case
        ("https://news.example/a?utm_source=rss&utm_medium=feed&utm_campaign=x", "https://news.example/a"),
        ("https://news.example/a?UTM_Content=top", "https://news.example/a"),
        ("https://news.example/a?fbclid=IwAR0abc", "https://news.example/a"),
        ("https://news.example/a?gclid=Cj0K&id=7", "https://news.example/a?id=7"),
        # fragments are dropped
        ("https://news.example/a#comments", "https://news.example/a"),
        # scheme and host are lower-cased, the path is not
        ("HTTPS://News.EXAMPLE/Section/Story", "https://news.example/Section/Story"),
        # default ports are dropped, other ports kept
        ("http://news.example:80/a", "http://news.example/a"),
        ("https://news.example:443/a", "https://news.example/a"),
        ("https://news.example:8443/a", "https://news.example:8443/a"),
        ("http://news.example:443/a", "http://news.example:443/a"),
        # the remaining query is sorted
        ("https://news.example/a?page=2&id=9", "https://news.example/a?id=9&page=2"),
        # an empty path becomes "/"
        ("https://news.example", "https://news.example/"),
        # www. is kept: it can be another site
        ("https://www.news.example/a", "https://www.news.example/a"),
    ],
)
def test_canonicalize(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


def test_canonicalize_keeps_parameters_that_select_content() -> None:
    url = "https://news.example/story?id=42&lang=fr&utm_source=newsletter&p=3"
    assert canonicalize(url) == "https://news.example/story?id=42&lang=fr&p=3"


def test_canonicalize_all_of_it_at_once() -> None:
    url = "HTTP://Example.COM:80/a/b?utm_source=x&b=2&a=1&fbclid=z#frag"
    assert canonicalize(url) == "http://example.com/a/b?a=1&b=2"


def test_two_spellings_of_one_article_are_equal() -> None:
    a = "https://News.example:443/world/harbour-reopens?utm_campaign=morning#top"
    b = "https://news.example/world/harbour-reopens"
    assert canonicalize(a) == canonicalize(b)


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("../c?utm_campaign=1", "https://Ex.example/a/b/", "https://ex.example/a/c"),
        ("/x?b=1&a=2", "https://ex.example/a/b", "https://ex.example/x?a=2&b=1"),
        ("story.html", "https://ex.example/news/index.html", "https://ex.example/news/story.html"),
        ("//cdn.example/p", "https://ex.example/", "https://cdn.example/p"),
        # an absolute URL ignores the base
        ("https://other.example/p", "https://ex.example/a/", "https://other.example/p"),
    ],
)
def test_canonicalize_resolves_relative_urls_against_base(href: str, base: str, expected: str) -> None:
    assert canonicalize(href, base=base) == expected


# A generated http(s) URL: mixed-case host, optional port, path, query with some tracking
# parameters, optional fragment.
_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10)
_host = st.lists(_label, min_size=1, max_size=3).map(lambda labels: ".".join([*labels, "example"]))
_port = st.one_of(st.none(), st.sampled_from([80, 443, 8080]), st.integers(1, 65535))
_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~%", max_size=12)
_path = st.lists(_segment, max_size=4).map(lambda segs: "/" + "/".join(segs))
_key = st.one_of(
    st.sampled_from(["utm_source", "utm_medium", "fbclid", "gclid", "id", "page", "q", "lang", "UTM_Term"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6),
)
_value = st.text(alphabet=st.characters(blacklist_characters="#&=", blacklist_categories=("Cs", "Cc")), max_size=8)
_query = st.lists(st.tuples(_key, _value), max_size=5).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv))
_fragment = st.one_of(st.just(""), _segment.map(lambda s: "#" + s))


@st.composite
def http_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    port = draw(_port)
    netloc = draw(_host) + (f":{port}" if port is not None else "")
    query = draw(_query)
    return f"{scheme}://{netloc}{draw(_path)}{'?' + query if query else ''}{draw(_fragment)}"


@given(http_urls())
def test_canonicalize_is_idempotent(url: str) -> None:
    once = canonicalize(url)
    assert canonicalize(once) == once


@given(http_urls())
def test_canonical_form_has_no_tracking_parameters_or_fragment(url: str) -> None:
    parts = urlsplit(canonicalize(url))
    keys = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    assert parts.fragment == ""
    assert not any(k.startswith("utm_") for k in keys)
    assert not keys & {"fbclid", "gclid"}


# --- validate_feed_url ------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://news.example/feed.xml", "http://news.example:8080/rss?x=1"])
def test_validate_feed_url_accepts_http_urls(url: str) -> None:
    assert validate_feed_url(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://news.example/feed.xml", "http"),
        ("feed.xml", "http"),
        ("javascript:alert(1)", "http"),
        ("file:///etc/passwd", "http"),
        ("http:///feed.xml", "no host"),
        ("http://news.example:99999/feed", "not a valid URL"),
    ],
)
def test_validate_feed_url_explains_the_problem(url: str, problem: str) -> None:
    message = validate_feed_url(url)
    assert message is not None
    assert problem in message


# --- private addresses ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",  # loopback
        "10.20.30.40",  # RFC 1918
        "192.168.1.1",
        "172.16.5.4",
        "169.254.169.254",  # cloud metadata, link-local
        "::1",  # IPv6 loopback
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:10.0.0.1",
        "fe80::1%eth0",  # link-local with a zone
        "fc00::1",  # unique local
        "0.0.0.0",
        "224.0.0.1",  # multicast
        "100.64.0.1",  # carrier-grade NAT
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::7f00:1",  # IPv4-compatible 127.0.0.1
    ],
)
def test_private_addresses(ip: str) -> None:
    assert is_private_address(ip)


@pytest.mark.parametrize(
    "ip", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]
)
def test_public_addresses(ip: str) -> None:
    assert not is_private_address(ip)


def test_is_private_address_rejects_names() -> None:
    with pytest.raises(ValueError):
        is_private_address("localhost")
