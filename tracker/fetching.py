"""HTTP fetching: one shared httpx client, bounded and polite.

``Fetcher.get`` streams a response with a size cap (checked on the decompressed bytes,
so a compression bomb stops at the cap), a total deadline on top of httpx's connect and
read timeouts, a bounded number of redirects followed by hand so that every hop can be
checked by a guard, conditional GET headers, and a per-host concurrency limit. Every
failure is raised as a FetchError carrying a FetchStatus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from . import __version__
from .config import FetchConfig
from .errors import FetchError
from .types import FetchResult, FetchStatus
from .urls import host_of

logger = logging.getLogger(__name__)

#: called with each URL before it is requested (redirect hops included); raises FetchError to refuse
Guard = Callable[[str], None]

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
DEFAULT_USER_AGENT = f"newstracker/{__version__} (+https://github.com/newstracker/newstracker)"


class Fetcher:
    """Owns the one ``httpx.Client``; safe to share between threads."""

    def __init__(self, config: FetchConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        timeout = httpx.Timeout(
            connect=config.connect_timeout, read=config.read_timeout, write=config.read_timeout, pool=None
        )
        self.client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": config.user_agent or DEFAULT_USER_AGENT},
            limits=httpx.Limits(max_connections=max(1, config.concurrency), max_keepalive_connections=32),
            transport=transport,
        )
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        host = host_of(url)
        with self._lock:
            slot = self._host_slots.get(host)
            if slot is None:
                slot = self._host_slots[host] = threading.BoundedSemaphore(max(1, self.config.per_host_concurrency))
        with slot:
            yield

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
            if guard is not None:
                guard(current)
            with self._host_slot(current):
                result, location = self._get_one(url, current, headers, started)
            if location is None:
                assert result is not None
                return result
            current = location
        raise FetchError(url, f"more than {self.config.max_redirects} redirects", FetchStatus.HTTP_ERROR)

    def _get_one(
        self, first_url: str, url: str, headers: dict[str, str], started: float
    ) -> tuple[FetchResult | None, str | None]:
        try:
            request = self.client.build_request("GET", url, headers=headers)
            response = self.client.send(request, stream=True)
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
                    url, f"HTTP {response.status_code} {response.reason_phrase}".rstrip(), FetchStatus.HTTP_ERROR
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
