"""Server-side request forgery: article links may only reach public addresses, checked on
the address actually connected to; the configured feed's own host is trusted."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracker.sources.netguard as netguard
from tracker.core.config import FetchConfig
from tracker.core.errors import FetchError
from tracker.core.types import FetchStatus
from tracker.sources.fetching import Fetcher
from tracker.sources.netguard import GuardedBackend, RefusedAddress

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import tracker


@pytest.fixture
def other_host() -> Iterator[HTTPServer]:
    """A second server on 127.0.0.2: an internal service the feed's links point at."""
    server = HTTPServer(host="127.0.0.2").start()
    server.routes["/admin"] = Response(200, page("Internal admin page"), HTML_HEADERS)
    yield server
    server.stop()


def test_poll_fetches_own_host_links_and_refuses_internal_ones(
    tmp_path: Path, http_server: HTTPServer, other_host: HTTPServer
) -> None:
    port = http_server.base_url.rsplit(":", 1)[1]
    http_server.routes["/own.html"] = Response(200, page("Harbour board approves the quay"), HTML_HEADERS)
    http_server.routes["/hop"] = Response(302, "", {"Location": other_host.url("/admin")})
    http_server.routes["/local.html"] = Response(200, page("Reached through localhost"), HTML_HEADERS)
    entries = [
        Entry(slug="own", title="Own host", link=http_server.url("/own.html")),
        Entry(slug="other", title="Other loopback host", link=other_host.url("/admin")),
        Entry(slug="localhost", title="Localhost by name", link=f"http://localhost:{port}/local.html"),
        Entry(slug="metadata", title="Cloud metadata", link="http://169.254.169.254/latest/meta-data/"),
        Entry(slug="hop", title="Own host redirecting inside", link=http_server.url("/hop")),
    ]
    http_server.routes["/feed.xml"] = Response(200, rss(entries), RSS_HEADERS)
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.sqlite"}"\n[fetch]\nextract_workers = 1\nconnect_timeout = 3\n'
        f'[[feeds]]\nname = "Gazette"\nurl = "{http_server.url("/feed.xml")}"\n',
        encoding="utf-8",
    )
    run = tracker("--config", str(cfg), "-v", "poll", "--once")
    assert run.returncode == 0, run.stderr
    assert other_host.requests == []  # neither directly nor through the redirect
    assert http_server.hits("/local.html") == 0  # "localhost" is not the feed's host
    assert http_server.hits("/own.html") == 1 and http_server.hits("/hop") == 1
    for what in ("127.0.0.2", "localhost", "169.254.169.254"):
        assert f"refused: {what} resolves to non-public address" in run.stderr, what
    con = sqlite3.connect(tmp_path / "t.sqlite")
    sources = dict(con.execute("SELECT url, text_source FROM items"))
    # Every entry is stored; only the own-host page was fetched and extracted.
    assert sources.pop(http_server.url("/own.html")) == "extracted"
    assert set(sources.values()) == {"feed_summary"} and len(sources) == 4


def test_allow_private_addresses_lets_them_through(
    tmp_path: Path, http_server: HTTPServer, other_host: HTTPServer
) -> None:
    entry = Entry(slug="other", title="Other loopback host", link=other_host.url("/admin"))
    http_server.routes["/feed.xml"] = Response(200, rss([entry]), RSS_HEADERS)
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.sqlite"}"\n'
        "[fetch]\nextract_workers = 1\nallow_private_addresses = true\n"
        f'[[feeds]]\nname = "Gazette"\nurl = "{http_server.url("/feed.xml")}"\n',
        encoding="utf-8",
    )
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert other_host.hits("/admin") == 1


def test_the_allowlist_trusts_named_hosts(other_host: HTTPServer) -> None:
    fetcher = Fetcher(FetchConfig(allowed_hosts=("127.0.0.2",)))
    from tracker.pipeline.guards import article_guard

    guard = article_guard("http://news.example/feed.xml", fetcher.config)
    with fetcher:
        assert fetcher.get(other_host.url("/admin"), guard=guard).status_code == 200
    with Fetcher(FetchConfig()) as strict, pytest.raises(FetchError) as err:
        strict.get(other_host.url("/admin"), guard=article_guard("http://news.example/feed.xml", strict.config))
    assert err.value.status is FetchStatus.REFUSED


def test_the_check_is_on_the_address_connected_to(http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # "news.test" does not exist in the system resolver: the only way to reach the server is
    # through the one address the guard resolved and checked. Treat loopback as public here.
    http_server.routes["/x"] = Response(200, "hello", {"Content-Type": "text/plain"})
    port = int(http_server.base_url.rsplit(":", 1)[1])
    calls: list[str] = []

    def resolver(host: str, _port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(netguard, "is_private_address", lambda ip: False)
    with Fetcher(FetchConfig(), resolver=resolver) as fetcher:
        result = fetcher.get(f"http://news.test:{port}/x", guard=lambda url: False)
    assert result.body == b"hello" and calls == ["news.test"]
    assert http_server.requests[0][1]["Host"] == f"news.test:{port}"


def test_a_name_resolving_to_any_private_address_only_connects_to_public_ones() -> None:
    backend = GuardedBackend(lambda host, port: ["10.0.0.7", "::1", "169.254.169.254"])
    with pytest.raises(RefusedAddress) as err:
        backend.connect_tcp("rebind.test", 80)
    assert err.value.addresses == ("10.0.0.7", "::1", "169.254.169.254")
    # IPv4-mapped IPv6 is unwrapped before the check.
    mapped = Fetcher(FetchConfig(), resolver=lambda h, p: ["::ffff:127.0.0.1"])
    with mapped as fetcher, pytest.raises(FetchError) as refused:
        fetcher.get("http://mapped.test/", guard=lambda url: False)
    assert refused.value.status is FetchStatus.REFUSED and "::ffff:127.0.0.1" in str(refused.value)
