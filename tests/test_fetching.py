"""tracker.sources.fetching.Fetcher: conditional GET, redirects, limits and errors.

Unit tests run against ``httpx.MockTransport``; timeouts, gzip and the per-host limit run
against the real loopback server from conftest (``http_server``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tracker.core.config import FetchConfig
from tracker.core.errors import FetchError
from tracker.core.types import FetchStatus
from tracker.sources.fetching import DEFAULT_USER_AGENT, Fetcher

from .conftest import HTTPServer, Response

Handler = Callable[[httpx.Request], httpx.Response]
FEED = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


class Recorder:
    """A MockTransport handler from a URL → response table; remembers every request."""

    def __init__(self, routes: dict[str, Handler | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get(str(request.url))
        if route is None:
            return httpx.Response(404, text="no route")
        return route(request) if callable(route) else route

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]


def mock_fetcher(recorder: Recorder, **config: object) -> Fetcher:
    return Fetcher(FetchConfig(**config), transport=httpx.MockTransport(recorder))  # type: ignore[arg-type]


def fetch_error(fetcher: Fetcher, url: str, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetcher.get(url, **kwargs)  # type: ignore[arg-type]
    return info.value


def redirect(to: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": to})


# --- basics ----------------------------------------------------------------------------------


def test_plain_get_returns_body_and_metadata() -> None:
    rec = Recorder(
        {
            "https://feeds.example/rss": httpx.Response(
                200,
                content=FEED,
                headers={
                    "Content-Type": "application/rss+xml",
                    "ETag": '"v7"',
                    "Last-Modified": "Tue, 03 Mar 2026 08:00:00 GMT",
                },
            )
        }
    )
    with mock_fetcher(rec) as fetcher:
        result = fetcher.get("https://feeds.example/rss")
    assert result.status_code == 200
    assert result.body == FEED
    assert not result.not_modified
    assert result.url == result.final_url == "https://feeds.example/rss"
    assert result.etag == '"v7"'
    assert result.last_modified == "Tue, 03 Mar 2026 08:00:00 GMT"
    assert result.headers["content-type"] == "application/rss+xml"  # header names lower-cased
    assert result.elapsed >= 0


def test_user_agent_is_sent() -> None:
    rec = Recorder({"https://feeds.example/rss": httpx.Response(200, content=FEED)})
    with mock_fetcher(rec) as fetcher:
        fetcher.get("https://feeds.example/rss")
    ua = rec.requests[0].headers["User-Agent"]
    assert ua == DEFAULT_USER_AGENT
    assert ua.startswith("newstracker/")


def test_configured_user_agent_is_sent() -> None:
    rec = Recorder({"https://feeds.example/rss": httpx.Response(200, content=FEED)})
    with mock_fetcher(rec, user_agent="HarbourMonitor/2.0 (ops@harbour.example)") as fetcher:
        fetcher.get("https://feeds.example/rss")
    assert rec.requests[0].headers["User-Agent"] == "HarbourMonitor/2.0 (ops@harbour.example)"


def test_accept_header_is_sent() -> None:
    rec = Recorder({"https://feeds.example/rss": httpx.Response(200, content=FEED)})
    with mock_fetcher(rec) as fetcher:
        fetcher.get("https://feeds.example/rss", accept="application/rss+xml")
    assert rec.requests[0].headers["Accept"] == "application/rss+xml"


# --- conditional GET ----------------------------------------------------------------------------


def test_conditional_headers_are_sent() -> None:
    rec = Recorder({"https://feeds.example/rss": httpx.Response(200, content=FEED)})
    with mock_fetcher(rec) as fetcher:
        fetcher.get("https://feeds.example/rss", etag='"abc"', last_modified="Mon, 02 Mar 2026 10:00:00 GMT")
    headers = rec.requests[0].headers
    assert headers["If-None-Match"] == '"abc"'
    assert headers["If-Modified-Since"] == "Mon, 02 Mar 2026 10:00:00 GMT"


def test_no_conditional_headers_without_validators() -> None:
    rec = Recorder({"https://feeds.example/rss": httpx.Response(200, content=FEED)})
    with mock_fetcher(rec) as fetcher:
        fetcher.get("https://feeds.example/rss")
    assert "If-None-Match" not in rec.requests[0].headers
    assert "If-Modified-Since" not in rec.requests[0].headers


def test_304_is_a_not_modified_result_without_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("If-None-Match") == '"abc"':
            return httpx.Response(304, headers={"ETag": '"abc"'})
        return httpx.Response(200, content=FEED)

    rec = Recorder({"https://feeds.example/rss": handler})
    with mock_fetcher(rec) as fetcher:
        result = fetcher.get("https://feeds.example/rss", etag='"abc"')
    assert result.not_modified
    assert result.status_code == 304
    assert result.body is None
    assert result.etag == '"abc"'


# --- HTTP errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404, 410, 500, 503])
def test_error_statuses_raise_http_error(status: int) -> None:
    rec = Recorder({"https://feeds.example/rss": httpx.Response(status, text="nope")})
    with mock_fetcher(rec) as fetcher:
        err = fetch_error(fetcher, "https://feeds.example/rss")
    assert err.status is FetchStatus.HTTP_ERROR
    assert str(status) in str(err)
    assert err.url == "https://feeds.example/rss"


def test_connection_failure_is_a_network_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with Fetcher(FetchConfig(), transport=httpx.MockTransport(refuse)) as fetcher:
        err = fetch_error(fetcher, "https://down.example/rss")
    assert err.status is FetchStatus.NETWORK


def test_transport_timeout_is_a_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow", request=request)

    with Fetcher(FetchConfig(), transport=httpx.MockTransport(slow)) as fetcher:
        err = fetch_error(fetcher, "https://slow.example/rss")
    assert err.status is FetchStatus.TIMEOUT


def test_corrupt_gzip_body_is_an_error_not_a_crash() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip"))

    with mock_fetcher(Recorder({"https://feeds.example/rss": handler})) as fetcher:
        err = fetch_error(fetcher, "https://feeds.example/rss")
    assert err.status is FetchStatus.ERROR
    assert "encoding" in str(err)


# --- redirects ---------------------------------------------------------------------------------------


def chain(length: int) -> dict[str, Handler | httpx.Response]:
    """/hop0 → /hop1 → … → /hop{length} which answers 200."""
    routes: dict[str, Handler | httpx.Response] = {
        f"https://old.example/hop{i}": redirect(f"https://old.example/hop{i + 1}") for i in range(length)
    }
    routes[f"https://old.example/hop{length}"] = httpx.Response(200, content=FEED)
    return routes


def test_redirect_chain_is_followed_and_final_url_recorded() -> None:
    rec = Recorder(
        {
            "http://old.example/feed": redirect("https://old.example/feed", 301),
            "https://old.example/feed": redirect("/v2/feed.xml", 308),  # relative Location
            "https://old.example/v2/feed.xml": redirect("https://new.example/feed.xml", 307),
            "https://new.example/feed.xml": httpx.Response(200, content=FEED),
        }
    )
    with mock_fetcher(rec) as fetcher:
        result = fetcher.get("http://old.example/feed", etag='"e1"')
    assert result.url == "http://old.example/feed"
    assert result.final_url == "https://new.example/feed.xml"
    assert result.body == FEED
    assert len(rec.requests) == 4
    assert all(r.headers.get("User-Agent") == DEFAULT_USER_AGENT for r in rec.requests)


def test_exactly_max_redirects_is_allowed() -> None:
    rec = Recorder(chain(3))
    with mock_fetcher(rec, max_redirects=3) as fetcher:
        result = fetcher.get("https://old.example/hop0")
    assert result.final_url == "https://old.example/hop3"


def test_more_than_max_redirects_fails() -> None:
    rec = Recorder(chain(4))
    with mock_fetcher(rec, max_redirects=3) as fetcher:
        err = fetch_error(fetcher, "https://old.example/hop0")
    assert "redirect" in str(err)
    assert len(rec.requests) == 4  # the original request and three redirects, no more
    assert "https://old.example/hop4" not in rec.urls


def test_redirect_loop_fails() -> None:
    rec = Recorder({"https://loop.example/a": redirect("/b"), "https://loop.example/b": redirect("/a")})
    with mock_fetcher(rec, max_redirects=5) as fetcher:
        fetch_error(fetcher, "https://loop.example/a")
    assert len(rec.requests) == 6


def test_guard_checks_every_hop_and_can_stop_the_fetch() -> None:
    rec = Recorder(
        {
            "https://public.example/feed": redirect("https://mirror.example/feed"),
            "https://mirror.example/feed": redirect("http://169.254.169.254/latest/meta-data"),
            "http://169.254.169.254/latest/meta-data": httpx.Response(200, text="secret"),
        }
    )
    seen: list[str] = []

    def guard(url: str) -> bool:
        seen.append(url)
        if "169.254" in url:
            raise FetchError(url, "private address", FetchStatus.REFUSED)
        return True

    with mock_fetcher(rec) as fetcher:
        err = fetch_error(fetcher, "https://public.example/feed", guard=guard)
    assert err.status is FetchStatus.REFUSED
    assert seen == [
        "https://public.example/feed",
        "https://mirror.example/feed",
        "http://169.254.169.254/latest/meta-data",
    ]
    assert "http://169.254.169.254/latest/meta-data" not in rec.urls  # never requested


def test_guard_refusing_the_first_url_sends_nothing() -> None:
    rec = Recorder({"http://10.0.0.5/feed": httpx.Response(200, content=FEED)})

    def guard(url: str) -> bool:
        raise FetchError(url, "private address", FetchStatus.REFUSED)

    with mock_fetcher(rec) as fetcher:
        err = fetch_error(fetcher, "http://10.0.0.5/feed", guard=guard)
    assert err.status is FetchStatus.REFUSED
    assert rec.requests == []


# --- size cap ----------------------------------------------------------------------------------------


def chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"x" * n


def test_body_over_cap_with_content_length_is_too_large() -> None:
    body = b"x" * 5000
    rec = Recorder({"https://big.example/f": httpx.Response(200, content=body)})
    with mock_fetcher(rec, max_bytes=1000) as fetcher:
        err = fetch_error(fetcher, "https://big.example/f")
    assert err.status is FetchStatus.TOO_LARGE


def test_body_over_cap_without_content_length_is_too_large() -> None:
    streamed = httpx.Response(200, content=chunks(5000))
    assert "Content-Length" not in streamed.headers  # the size is unknown up front
    rec = Recorder({"https://big.example/f": streamed})
    with mock_fetcher(rec, max_bytes=1000) as fetcher:
        err = fetch_error(fetcher, "https://big.example/f")
    assert err.status is FetchStatus.TOO_LARGE


def test_lying_small_content_length_does_not_bypass_the_cap() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "10"}, content=chunks(5000))

    rec = Recorder({"https://big.example/f": handler})
    with mock_fetcher(rec, max_bytes=1000) as fetcher:
        err = fetch_error(fetcher, "https://big.example/f")
    assert err.status is FetchStatus.TOO_LARGE


def test_body_at_exactly_the_cap_is_accepted() -> None:
    rec = Recorder({"https://big.example/f": lambda r: httpx.Response(200, content=chunks(1000, 300))})
    with mock_fetcher(rec, max_bytes=1000) as fetcher:
        assert fetcher.get("https://big.example/f").body == b"x" * 1000


# --- real loopback server ---------------------------------------------------------------------------


def test_slow_response_times_out_within_bounded_time(http_server: HTTPServer) -> None:
    http_server.routes["/slow.xml"] = Response(200, FEED, delay=1.5)
    config = FetchConfig(connect_timeout=1.0, read_timeout=0.2)
    with Fetcher(config) as fetcher:
        started = time.monotonic()
        err = fetch_error(fetcher, http_server.url("/slow.xml"))
        elapsed = time.monotonic() - started
    assert err.status is FetchStatus.TIMEOUT
    assert elapsed < 1.0


def test_gzip_body_is_decompressed(http_server: HTTPServer) -> None:
    http_server.routes["/feed.xml"] = Response(
        200, FEED, {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
    )
    with Fetcher(FetchConfig()) as fetcher:
        result = fetcher.get(http_server.url("/feed.xml"))
    assert result.body == FEED
    assert result.headers["content-encoding"] == "gzip"
    _, headers = http_server.requests[0]
    assert "gzip" in {k.lower(): v for k, v in headers.items()}["accept-encoding"]


def test_gzip_size_cap_applies_to_decompressed_bytes(http_server: HTTPServer) -> None:
    # 200 kB of zeros compress to a few hundred bytes: the cap must still trip.
    http_server.routes["/bomb.xml"] = Response(200, b"\0" * 200_000, {"Content-Encoding": "gzip"})
    with Fetcher(FetchConfig(max_bytes=50_000)) as fetcher:
        err = fetch_error(fetcher, http_server.url("/bomb.xml"))
    assert err.status is FetchStatus.TOO_LARGE


class ConcurrencyProbe:
    """A route that counts how many requests the server is handling at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, handler: BaseHTTPRequestHandler) -> Response:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.hold)
        with self.lock:
            self.active -= 1
        return Response(200, FEED)


def test_per_host_concurrency_is_never_exceeded(http_server: HTTPServer) -> None:
    probe = ConcurrencyProbe(hold=0.1)
    for i in range(8):
        http_server.routes[f"/feed{i}.xml"] = probe
    with Fetcher(FetchConfig(per_host_concurrency=2, concurrency=16)) as fetcher, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: fetcher.get(http_server.url(f"/feed{i}.xml")), range(8)))
    assert all(r.body == FEED for r in results)
    assert probe.peak == 2  # the limit holds, and it is a limit, not serialisation


def test_connection_refused_on_loopback_is_a_network_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Fetcher(FetchConfig(connect_timeout=1.0)) as fetcher:
        err = fetch_error(fetcher, f"http://127.0.0.1:{port}/feed.xml")
    assert err.status is FetchStatus.NETWORK
