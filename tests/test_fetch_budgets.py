"""Fetcher budgets: the total deadline covers the whole response (connect, TLS, headers, body,
every redirect hop), validators that could not be sent back are dropped, and ``host_delay``
shows a host's per-minute budget without using it.

Network cases run against raw-socket servers on 127.0.0.1 (``RawServer`` from test_decoding).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpcore
import httpx
import pytest
import trustme

import tracker.sources.fetching as fetching
import tracker.sources.netguard as netguard
from tracker.core.config import FetchConfig
from tracker.core.errors import FetchError
from tracker.core.types import FetchStatus
from tracker.sources.fetching import Fetcher, _Window
from tracker.sources.netguard import DeadlineBackend, DeadlineStream, deadline

from .test_decoding import RawServer, send

FEED = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"


@pytest.fixture
def server() -> Iterator[RawServer]:
    s = RawServer()
    yield s
    s.close()


def drip(data: bytes, every: float) -> Callable[[socket.socket], None]:
    """A route sending ``data`` one byte at a time, ``every`` seconds apart."""

    def route(conn: socket.socket) -> None:
        for i in range(len(data)):
            time.sleep(every)
            conn.sendall(data[i : i + 1])

    return route


def silent(conn: socket.socket) -> None:
    """Accepts, reads the request, never answers (until the client leaves)."""
    conn.settimeout(30)
    with contextlib.suppress(OSError):
        conn.recv(1)


def timed_error(fetcher: Fetcher, url: str, **kwargs: Any) -> tuple[FetchError, float]:
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetcher.get(url, **kwargs)
    return info.value, time.monotonic() - started


# --- the total deadline -----------------------------------------------------------------------------


def test_headers_dripped_a_byte_at_a_time_end_at_the_total_timeout(server: RawServer) -> None:
    assert len(HEAD) * 0.5 > 10  # the drip alone would take over ten seconds
    server.routes["/drip-head"] = drip(HEAD, 0.5)
    config = FetchConfig(total_timeout=2, read_timeout=3, connect_timeout=3)
    with Fetcher(config) as fetcher:
        err, elapsed = timed_error(fetcher, server.url("/drip-head"))
    assert err.status is FetchStatus.TIMEOUT
    assert "response took longer than 2s" in str(err)
    assert elapsed < 3


def test_the_guarded_client_keeps_the_deadline_too(server: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netguard, "is_private_address", lambda ip: False)  # loopback counts as public here
    server.routes["/drip-head"] = drip(HEAD, 0.5)
    config = FetchConfig(total_timeout=1.5, read_timeout=3, connect_timeout=3)
    with Fetcher(config) as fetcher:
        err, elapsed = timed_error(fetcher, server.url("/drip-head"), guard=lambda url: False)
    assert err.status is FetchStatus.TIMEOUT and "longer than 1.5s" in str(err)
    assert elapsed < 2.5


def test_a_server_that_accepts_and_never_answers_ends_at_the_total_timeout(server: RawServer) -> None:
    server.routes["/silent"] = silent
    with Fetcher(FetchConfig(total_timeout=1, read_timeout=10)) as fetcher:
        err, elapsed = timed_error(fetcher, server.url("/silent"))
    assert err.status is FetchStatus.TIMEOUT and "longer than 1s" in str(err)
    assert 0.9 < elapsed < 2


def test_a_stalled_tls_handshake_ends_at_the_total_timeout() -> None:
    # The server accepts the connection and never answers the client hello.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    try:
        with Fetcher(FetchConfig(total_timeout=1, connect_timeout=10, read_timeout=10)) as fetcher:
            err, elapsed = timed_error(fetcher, f"https://127.0.0.1:{port}/feed.xml")
    finally:
        for sock in [*held, listener]:
            sock.close()
    assert err.status is FetchStatus.TIMEOUT and "longer than 1s" in str(err)
    assert elapsed < 2


def test_the_body_drip_still_ends_at_the_total_timeout(server: RawServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"

    def route(conn: socket.socket) -> None:
        conn.sendall(head)
        drip(b"x" * 100, 0.2)(conn)

    server.routes["/drip-body"] = route
    with Fetcher(FetchConfig(total_timeout=1, read_timeout=3)) as fetcher:
        err, elapsed = timed_error(fetcher, server.url("/drip-body"))
    assert err.status is FetchStatus.TIMEOUT and "longer than 1s" in str(err)
    assert elapsed < 1.6


def test_redirect_hops_share_one_deadline(server: RawServer) -> None:
    def slow_redirect(to: str) -> Callable[[socket.socket], None]:
        def route(conn: socket.socket) -> None:
            time.sleep(0.6)
            conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n".encode())

        return route

    server.routes["/hop1"] = slow_redirect("/hop2")
    server.routes["/hop2"] = slow_redirect("/hop3")
    server.routes["/hop3"] = slow_redirect("/done")
    server.routes["/done"] = send(FEED)
    with Fetcher(FetchConfig(total_timeout=1.5, read_timeout=5)) as fetcher:
        err, elapsed = timed_error(fetcher, server.url("/hop1"))  # every hop alone is well under 1.5 s
    assert err.status is FetchStatus.TIMEOUT and "longer than 1.5s" in str(err)
    assert elapsed < 2.2
    assert "/done" not in [path for path, _ in server.requests]


def test_waiting_for_the_hosts_slot_does_not_count_against_the_deadline(server: RawServer) -> None:
    def slow(conn: socket.socket) -> None:
        time.sleep(0.7)
        send(FEED)(conn)

    server.routes["/slow"] = slow
    config = FetchConfig(total_timeout=1.2, read_timeout=5, per_host_concurrency=1)
    with Fetcher(config) as fetcher, ThreadPoolExecutor(2) as pool:
        # The second waits ~0.7 s for the host's only slot, then takes ~0.7 s itself: 1.4 s > 1.2 s.
        results = list(pool.map(lambda _: fetcher.get(server.url("/slow")), range(2)))
    assert [r.body for r in results] == [FEED, FEED]


def test_a_fetch_within_its_deadline_reuses_the_connection(server: RawServer) -> None:
    def keep_alive(conn: socket.socket) -> None:
        for _ in range(3):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(FEED) + FEED)
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(4096)
                if not data:
                    return
                request += data

    server.routes["/keep"] = keep_alive
    with Fetcher(FetchConfig(total_timeout=2)) as fetcher:
        assert [fetcher.get(server.url("/keep")).body for _ in range(3)] == [FEED] * 3
    assert len(server.requests) == 1  # one connection, three requests: the later two read by the route


# --- DeadlineBackend units ---------------------------------------------------------------------------


class SpyStream(httpcore.NetworkStream):
    def __init__(self, log: list[tuple[str, float | None]]) -> None:
        self.log = log

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.log.append(("read", timeout))
        return b""

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.log.append(("write", timeout))

    def close(self) -> None:
        pass

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        self.log.append(("start_tls", timeout))
        return SpyStream(self.log)


class SpyBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.log: list[tuple[str, float | None]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        self.log.append(("connect", timeout))
        return SpyStream(self.log)


def test_every_operation_gets_at_most_the_time_left() -> None:
    spy = SpyBackend()
    backend = DeadlineBackend(spy)
    with deadline(time.monotonic() + 0.5) as limit:
        stream = backend.connect_tcp("feeds.example", 80, timeout=10)
        stream.write(b"GET", timeout=None)
        stream.read(10, timeout=0.1)  # already shorter: left as is
        tls = stream.start_tls(ssl.create_default_context(), "feeds.example", timeout=10)
        assert isinstance(tls, DeadlineStream)
        tls.read(10, timeout=10)
    assert not limit.expired
    names = [name for name, _ in spy.log]
    assert names == ["connect", "write", "read", "start_tls", "read"]
    clamped = [t for name, t in spy.log if name != "read" or t != 0.1]
    assert all(t is not None and 0 < t <= 0.5 for t in clamped)
    assert ("read", 0.1) in spy.log


def test_past_the_deadline_operations_raise_timeouts_and_mark_it_expired() -> None:
    spy = SpyBackend()
    stream = DeadlineBackend(spy).connect_tcp("feeds.example", 80, timeout=10)  # no deadline: untouched
    assert spy.log == [("connect", 10)]
    with deadline(time.monotonic() - 0.01) as limit:
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(10, timeout=10)
        assert limit.expired
        with pytest.raises(httpcore.WriteTimeout):
            stream.write(b"x", timeout=10)
        with pytest.raises(httpcore.ConnectTimeout):
            DeadlineBackend(spy).connect_tcp("feeds.example", 80, timeout=10)
    assert len(spy.log) == 1  # nothing reached the inner backend


def test_a_deadline_is_per_thread() -> None:
    seen: list[float | None] = []

    def other() -> None:
        spy = SpyBackend()
        DeadlineBackend(spy).connect_tcp("h", 1, timeout=7)
        seen.append(spy.log[0][1])

    with deadline(time.monotonic() + 0.2):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen == [7]


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, ssl.SSLContext]]:
    """A TLS server on 127.0.0.1 that completes the handshake, then drips its response head;
    yields its port and a client context trusting it."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            drip(HEAD, 0.3)(tls)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], client_ctx
    listener.close()


def test_the_deadline_holds_after_a_tls_handshake(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, client_ctx = tls_server
    pool = httpcore.ConnectionPool(ssl_context=client_ctx, network_backend=DeadlineBackend())
    timeouts = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    started = time.monotonic()
    with pool, deadline(started + 1.0) as limit, pytest.raises(httpcore.ReadTimeout):
        pool.request("GET", f"https://127.0.0.1:{port}/feed.xml", extensions={"timeout": timeouts})
    elapsed = time.monotonic() - started
    assert limit.expired
    assert elapsed < 1.6  # each byte comes within the 5 s read timeout: only the deadline ends it


# --- validators that cannot be sent back ----------------------------------------------------------


def test_validators_httpx_cannot_send_are_not_kept(server: RawServer) -> None:
    def route(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
            b'ETag: W/"caf\xe9"\r\n'  # latin-1, as some servers send
            b"Last-Modified: Tue, 03 Mar 2026\x01 08:00:00 GMT\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(FEED) + FEED
        )

    server.routes["/odd-validators"] = route
    with Fetcher(FetchConfig()) as fetcher:
        first = fetcher.get(server.url("/odd-validators"))
        assert first.body == FEED  # the body is still used
        assert first.etag is None and first.last_modified is None
        assert first.headers["etag"] == 'W/"café"'  # (the headers themselves are kept as they came)
        second = fetcher.get(server.url("/odd-validators"), etag=first.etag, last_modified=first.last_modified)
    assert second.body == FEED
    for _, headers in server.requests:
        assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_unsendable_validators_stored_by_an_older_version_are_dropped(server: RawServer) -> None:
    server.routes["/feed"] = send(FEED)
    with Fetcher(FetchConfig()) as fetcher:
        result = fetcher.get(server.url("/feed"), etag='W/"café"', last_modified="Tue,\x0b 03 Mar 2026 08:00:00 GMT")
        assert result.body == FEED
        fetcher.get(server.url("/feed"), etag=' "v1" ', last_modified="Tue, 03 Mar 2026 08:00:00 GMT\t")
    assert "if-none-match" not in server.requests[0][1] and "if-modified-since" not in server.requests[0][1]
    assert server.requests[1][1]["if-none-match"] == '"v1"'  # surrounding blanks are trimmed
    assert server.requests[1][1]["if-modified-since"] == "Tue, 03 Mar 2026 08:00:00 GMT"


def test_printable_validators_round_trip_to_a_304(server: RawServer) -> None:
    def route(conn: socket.socket) -> None:
        _, headers = server.requests[-1]
        if headers.get("if-none-match") == 'W/"v1 2"':
            conn.sendall(b'HTTP/1.1 304 Not Modified\r\nETag: W/"v1 2"\r\nConnection: close\r\n\r\n')
            return
        conn.sendall(
            b'HTTP/1.1 200 OK\r\nETag: W/"v1 2"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n' % len(FEED) + FEED
        )

    server.routes["/cond"] = route
    with Fetcher(FetchConfig()) as fetcher:
        first = fetcher.get(server.url("/cond"))
        assert first.etag == 'W/"v1 2"'
        assert fetcher.get(server.url("/cond"), etag=first.etag).not_modified


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ('"abc"', '"abc"'),
        ('W/"a b"', 'W/"a b"'),
        ("  Tue, 03 Mar 2026 08:00:00 GMT ", "Tue, 03 Mar 2026 08:00:00 GMT"),
        ('W/"é"', None),
        ('"a\x7fb"', None),
        ('"a\x00b"', None),
        ('"a\tb"', None),
        ('"a\r\nX-Injected: 1"', None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_which_validators_are_sendable(value: str | None, kept: str | None) -> None:
    assert fetching._sendable(value) == kept


# --- host_delay: the per-minute budget, seen without being used ------------------------------------


def mock(per_minute: int) -> Fetcher:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=FEED))
    return Fetcher(FetchConfig(per_host_per_minute=per_minute), transport=transport)


def test_host_key_is_the_host_name() -> None:
    with mock(2) as fetcher:
        assert fetcher.host_key("https://Feeds.Example:8443/rss?x=1") == "feeds.example"
        assert fetcher.host_key("http://feeds.example/other") == fetcher.host_key("https://feeds.example:8443/")


def test_host_delay_is_zero_until_the_budget_is_used_up() -> None:
    with mock(2) as fetcher:
        assert fetcher.host_delay("https://a.example/feed") == 0.0
        fetcher.get("https://a.example/1")
        assert fetcher.host_delay("https://a.example/feed") == 0.0
        fetcher.get("https://a.example/2")
        delay = fetcher.host_delay("https://a.example/feed")
        assert 59 < delay <= 60
        assert fetcher.host_delay("https://b.example/feed") == 0.0  # another host's budget
        assert fetcher.host_delay("https://A.EXAMPLE:444/x") == pytest.approx(delay, abs=0.5)  # same host


def test_host_delay_reserves_nothing() -> None:
    with mock(3) as fetcher:
        fetcher.get("https://a.example/1")
        fetcher.get("https://a.example/2")
        for _ in range(50):
            assert fetcher.host_delay("https://a.example/") == 0.0
        started = time.monotonic()
        fetcher.get("https://a.example/3")  # the third start is still free: no wait
        assert time.monotonic() - started < 1
        assert fetcher.host_delay("https://a.example/") > 59


def test_host_delay_without_a_rate_limit_is_always_zero() -> None:
    with mock(0) as fetcher:
        for i in range(5):
            fetcher.get(f"https://a.example/{i}")
        assert fetcher.host_delay("https://a.example/") == 0.0


def test_the_window_delay_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(fetching.time, "monotonic", lambda: now[0])
    window = _Window(2)
    assert window.reserve() == 0.0 and window.reserve() == 0.0
    assert window.delay() == 60.0
    now[0] += 25
    assert window.delay() == 35.0
    assert window.reserve() == 35.0  # booked for t=1060: the next start after it waits for t=1060 too
    assert window.delay() == 35.0
    now[0] += 40  # t=1065: only the start booked for t=1060 is in the last minute
    assert window.delay() == 0.0
    assert window.reserve() == 0.0
    assert window.delay() == 55.0  # the next free start is a minute after the one at t=1060
    assert len(window.starts) == 2
