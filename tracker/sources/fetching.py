"""HTTP fetching: one shared httpx client, bounded and polite.

``Fetcher.get`` streams a response with a size cap (checked on the decoded bytes as they are
produced, in bounded steps by ``tracker.sources.decoding``, so a compression bomb stops at the cap
without ever being expanded in memory), a total deadline on top of httpx's connect and read
timeouts (enforced on every network operation from connect through the headers to the last
byte, by ``tracker.sources.netguard.DeadlineBackend``), a bounded number of redirects followed by hand
so that every hop can be checked by a guard, conditional GET headers (validators that cannot be
sent back are dropped), and a per-host budget: at most ``per_host_concurrency`` requests at once
and ``per_host_per_minute`` started per minute (a sliding window) to one host. Every failure is
raised as a FetchError carrying a FetchStatus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import httpx

from tracker import __version__
from tracker.core.config import FetchConfig
from tracker.core.errors import FetchError
from tracker.core.types import FetchResult, FetchStatus
from tracker.core.urls import host_of
from tracker.sources.decoding import (
    ACCEPT_ENCODING,
    BadEncoding,
    DecodedTooLarge,
    Decoder,
    UnsupportedEncoding,
    parse_codings,
)
from tracker.sources.netguard import (
    Deadline,
    DeadlineTransport,
    GuardedTransport,
    RefusedAddress,
    Resolver,
    deadline,
    resolve,
)

logger = logging.getLogger(__name__)

#: called with each URL before it is requested (redirect hops included): True when the URL is
#: trusted (any address), False when it may only reach public addresses (checked on connect);
#: raises FetchError to refuse it outright
Guard = Callable[[str], bool]

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
DEFAULT_USER_AGENT = f"newstracker/{__version__} (+https://github.com/newstracker/newstracker)"


class Fetcher:
    """Owns the one ``httpx.Client``; safe to share between threads."""

    def __init__(
        self, config: FetchConfig, *, transport: httpx.BaseTransport | None = None, resolver: Resolver = resolve
    ) -> None:
        self.config = config
        timeout = httpx.Timeout(
            connect=config.connect_timeout, read=config.read_timeout, write=config.read_timeout, pool=None
        )
        limits = httpx.Limits(max_connections=max(1, config.concurrency), max_keepalive_connections=32)
        headers = {"User-Agent": config.user_agent or DEFAULT_USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
        #: for trusted URLs: configured feeds, and links on their own hosts
        self.client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers=headers,
            limits=limits,
            transport=transport or DeadlineTransport(limits=limits),
        )
        #: for everything else: connects only to public addresses (``tracker.sources.netguard``)
        self.guarded = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers=headers,
            limits=limits,
            transport=transport or GuardedTransport(limits=limits, resolver=resolver),
        )
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        self._buckets: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Make requests still waiting for their host's budget fail at once (shutdown)."""
        self._stopping.set()

    def close(self) -> None:
        self._stopping.set()
        self.client.close()
        self.guarded.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def host_key(self, url: str) -> str:
        """The key per-host budgets are kept under: the URL's host name."""
        return host_of(url)

    def host_delay(self, url: str) -> float:
        """Seconds until a request to ``url``'s host could start without waiting for the host's
        per-minute budget (0.0: it could start now). Reserves nothing; the concurrency slots are
        not counted."""
        with self._lock:
            bucket = self._buckets.get(self.host_key(url))
        return 0.0 if bucket is None else bucket.delay()

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[float]:
        """Hold one of the host's slots and its rate budget; yields the seconds spent waiting."""
        entered = time.monotonic()
        host = self.host_key(url)
        rate = self.config.per_host_per_minute
        with self._lock:
            slot = self._host_slots.get(host)
            if slot is None:
                slot = self._host_slots[host] = threading.BoundedSemaphore(max(1, self.config.per_host_concurrency))
            bucket = self._buckets.get(host)
            if bucket is None and rate > 0:
                bucket = self._buckets[host] = _Window(rate)
        with slot:
            if bucket is not None:
                wait = bucket.reserve()
                if wait > 0 and self._stopping.wait(wait):
                    raise FetchError(url, "shutting down", FetchStatus.ERROR)
            yield time.monotonic() - entered

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = PAGE_ACCEPT,
        guard: Guard | None = None,
    ) -> FetchResult:
        """GET ``url`` following redirects; returns the whole (capped) body or raises FetchError."""
        headers = {"Accept": accept}
        # A validator stored by an older version may be one httpx cannot send: then ask unconditionally.
        etag, last_modified = _sendable(etag), _sendable(last_modified)
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        current = url
        for _hop in range(self.config.max_redirects + 1):
            client = self.client if guard is None or guard(current) else self.guarded
            with self._host_slot(current) as waited:
                started += waited  # time spent waiting for the host's budget is not the server's
                # One deadline for all hops, enforced on every network operation (netguard.DeadlineBackend).
                with deadline(started + self.config.total_timeout) as limit:
                    result, location = self._get_one(client, url, current, headers, started, limit)
            if location is None:
                assert result is not None
                return result
            current = location
        raise FetchError(url, f"more than {self.config.max_redirects} redirects", FetchStatus.HTTP_ERROR)

    def _get_one(
        self,
        client: httpx.Client,
        first_url: str,
        url: str,
        headers: dict[str, str],
        started: float,
        limit: Deadline,
    ) -> tuple[FetchResult | None, str | None]:
        try:
            request = client.build_request("GET", url, headers=headers)
            response = client.send(request, stream=True)
        except RefusedAddress as exc:
            raise FetchError(url, str(exc), FetchStatus.REFUSED) from exc
        except httpx.TimeoutException as exc:
            if limit.expired:
                raise self._too_slow(url) from exc
            raise FetchError(url, f"timed out ({type(exc).__name__})", FetchStatus.TIMEOUT) from exc
        except httpx.InvalidURL as exc:
            raise FetchError(url, f"invalid URL: {exc}", FetchStatus.ERROR) from exc
        except (httpx.TransportError, ValueError) as exc:
            raise FetchError(url, f"{type(exc).__name__}: {exc}", FetchStatus.NETWORK) from exc
        try:
            if response.next_request is not None:
                return None, str(response.next_request.url)
            if response.status_code == 304:
                return self._result(first_url, response, None, started), None
            if 300 <= response.status_code < 400:
                raise FetchError(
                    url, f"HTTP {response.status_code} redirect without a usable Location", FetchStatus.HTTP_ERROR
                )
            if response.status_code >= 400:
                raise FetchError(
                    url,
                    f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                    FetchStatus.HTTP_ERROR,
                    http_status=response.status_code,
                    headers={k.lower(): v for k, v in response.headers.items()},
                )
            body = self._read_capped(url, response, limit)
            return self._result(first_url, response, body, started), None
        finally:
            response.close()

    def _too_slow(self, url: str) -> FetchError:
        return FetchError(url, f"response took longer than {self.config.total_timeout:g}s", FetchStatus.TIMEOUT)

    def _read_capped(self, url: str, response: httpx.Response, limit: Deadline) -> bytes:
        """The body, decoded here from the raw bytes in bounded steps (``tracker.sources.decoding``)."""
        cap = self.config.max_bytes

        def tick() -> None:
            if time.monotonic() > limit.at:
                limit.expired = True
                raise self._too_slow(url)

        raws: Iterable[bytes]
        if response.is_stream_consumed:
            # Built in memory (httpx.MockTransport): httpx has already read and decoded the body.
            raws, codings = [response.content], []
        else:
            raws, codings = response.iter_raw(), parse_codings(response.headers.get_list("Content-Encoding"))
        try:
            decoder = Decoder(codings, cap, tick=tick)
        except UnsupportedEncoding as exc:
            raise FetchError(url, str(exc), FetchStatus.ERROR) from exc
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap and not decoder.encoded:
            raise FetchError(url, f"body of {int(declared)} bytes is over the {cap}-byte cap", FetchStatus.TOO_LARGE)
        chunks: list[bytes] = []
        try:
            for raw in raws:
                tick()
                chunks.extend(decoder.feed(raw))
            chunks.extend(decoder.finish())
        except DecodedTooLarge as exc:
            why = "" if exc.final else f" ({exc})"
            raise FetchError(url, f"body is over the {cap}-byte cap{why}", FetchStatus.TOO_LARGE) from exc
        except BadEncoding as exc:
            raise FetchError(url, f"bad content encoding: {exc}", FetchStatus.ERROR) from exc
        except httpx.TimeoutException as exc:
            if limit.expired:
                raise self._too_slow(url) from exc
            raise FetchError(url, "timed out reading the body", FetchStatus.TIMEOUT) from exc
        except httpx.TransportError as exc:
            raise FetchError(url, f"{type(exc).__name__}: {exc}", FetchStatus.NETWORK) from exc
        return b"".join(chunks)

    @staticmethod
    def _result(first_url: str, response: httpx.Response, body: bytes | None, started: float) -> FetchResult:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return FetchResult(
            url=first_url,
            final_url=str(response.url),
            status_code=response.status_code,
            headers=headers,
            body=body,
            elapsed=time.monotonic() - started,
            etag=_sendable(headers.get("etag")),
            last_modified=_sendable(headers.get("last-modified")),
        )


MAX_VALIDATOR = 128  #: longer ETag / Last-Modified values are not kept (no real server sends one)


def _sendable(value: str | None) -> str | None:
    """``value`` when it can be sent back in a request header (printable ASCII, at most
    MAX_VALIDATOR characters), else None.

    httpx cannot encode anything else, and would fail every later conditional GET with it."""
    if value is None:
        return None
    value = value.strip(" \t")
    if value and len(value) <= MAX_VALIDATOR and all(" " <= c <= "~" for c in value):
        return value
    return None


class _Window:
    """At most ``per_minute`` request starts in any 60 seconds: ``reserve`` books the next
    start and returns how long to wait for it (a sliding window: up to ``per_minute``
    requests go at once, and a longer run goes on in bursts of that size a minute apart)."""

    def __init__(self, per_minute: int) -> None:
        self.starts: deque[float] = deque(maxlen=per_minute)
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            start = self._next_start(now)
            self.starts.append(start)
            return start - now

    def delay(self) -> float:
        """How long a start booked now would wait; books nothing."""
        with self._lock:
            now = time.monotonic()
            return self._next_start(now) - now

    def _next_start(self, now: float) -> float:
        if len(self.starts) == self.starts.maxlen:
            return max(now, self.starts[0] + 60.0)
        return now
