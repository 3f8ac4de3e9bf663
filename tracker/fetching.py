"""HTTP fetching: one shared httpx client, bounded and polite.

``Fetcher.get`` streams a response with a size cap (checked on the decompressed bytes,
so a compression bomb stops at the cap), a total deadline on top of httpx's connect and
read timeouts, a bounded number of redirects followed by hand so that every hop can be
checked by a guard, conditional GET headers, and a per-host budget: at most
``per_host_concurrency`` requests at once and ``per_host_per_minute`` started per minute
(a sliding window) to one host. Every failure is raised as a FetchError carrying a FetchStatus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from . import __version__
from .config import FetchConfig
from .errors import FetchError
from .netguard import GuardedTransport, RefusedAddress, Resolver, resolve
from .types import FetchResult, FetchStatus
from .urls import host_of

logger = logging.getLogger(__name__)

#: called with each URL before it is requested (redirect hops included): True when the URL is
#: trusted (any address), False when it may only reach public addresses (checked on connect);
#: raises FetchError to refuse it outright
Guard = Callable[[str], bool]

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
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
        headers = {"User-Agent": config.user_agent or DEFAULT_USER_AGENT}
        #: for trusted URLs: configured feeds, and links on their own hosts
        self.client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers=headers, limits=limits, transport=transport
        )
        #: for everything else: connects only to public addresses (``tracker.netguard``)
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

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[float]:
        """Hold one of the host's slots and its rate budget; yields the seconds spent waiting."""
        entered = time.monotonic()
        host = host_of(url)
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
                result, location = self._get_one(client, url, current, headers, started)
            if location is None:
                assert result is not None
                return result
            current = location
        raise FetchError(url, f"more than {self.config.max_redirects} redirects", FetchStatus.HTTP_ERROR)

    def _get_one(
        self, client: httpx.Client, first_url: str, url: str, headers: dict[str, str], started: float
    ) -> tuple[FetchResult | None, str | None]:
        try:
            request = client.build_request("GET", url, headers=headers)
            response = client.send(request, stream=True)
        except RefusedAddress as exc:
            raise FetchError(url, str(exc), FetchStatus.REFUSED) from exc
        except httpx.TimeoutException as exc:
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
            body = self._read_capped(url, response, started)
            return self._result(first_url, response, body, started), None
        finally:
            response.close()

    def _read_capped(self, url: str, response: httpx.Response, started: float) -> bytes:
        cap = self.config.max_bytes
        declared = response.headers.get("Content-Length", "")
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if declared.isdigit() and int(declared) > cap and not encoded:
            raise FetchError(url, f"body of {int(declared)} bytes is over the {cap}-byte cap", FetchStatus.TOO_LARGE)
        deadline = started + self.config.total_timeout
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > cap:
                    raise FetchError(url, f"body is over the {cap}-byte cap", FetchStatus.TOO_LARGE)
                if time.monotonic() > deadline:
                    raise FetchError(
                        url, f"response took longer than {self.config.total_timeout:g}s", FetchStatus.TIMEOUT
                    )
                chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise FetchError(url, "timed out reading the body", FetchStatus.TIMEOUT) from exc
        except httpx.DecodingError as exc:
            raise FetchError(url, f"bad content encoding: {exc}", FetchStatus.ERROR) from exc
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
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
        )


class _Window:
    """At most ``per_minute`` request starts in any 60 seconds: ``reserve`` books the next
    start and returns how long to wait for it (a sliding window, so a short burst of up to
    ``per_minute`` requests goes at once and a long run is spread evenly)."""

    def __init__(self, per_minute: int) -> None:
        self.starts: deque[float] = deque(maxlen=per_minute)
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            start = now
            if len(self.starts) == self.starts.maxlen:
                start = max(now, self.starts[0] + 60.0)
            self.starts.append(start)
            return start - now
