"""Refuse connections to non-public addresses, checked on the address actually connected to.

Article links found in feed content are not the operator's choice: a link (or a redirect)
to ``http://169.254.169.254/`` or to a name that resolves to 10.0.0.5 must not be fetched.
Checking a URL's name before the request leaves a window: the HTTP client resolves the
name again when it connects, and a hostile DNS server can answer differently the second
time (DNS rebinding). So the check lives in the connection itself: ``GuardedBackend`` is an
httpcore network backend that resolves the name once, drops every non-public address
(loopback, private, link-local, multicast, reserved, unspecified; IPv4-mapped IPv6
included), and connects to a checked address directly. TLS still verifies the
certificate against the original host name.

The same layer enforces a request's total deadline: httpx's read timeout restarts with every
byte, so a server dripping its status line and headers one byte at a time could hold a
request for minutes. ``DeadlineBackend`` wraps a backend so that every connect, TLS
handshake, read and write is given at most the time left before the deadline that
``deadline()`` sets for the current thread (a context variable); past it, they raise
httpcore's timeouts (so httpx raises its own) and mark the ``Deadline`` as expired.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import httpcore
import httpx

from tracker.core.urls import is_private_address

Resolver = Callable[[str, int], list[str]]
T = TypeVar("T")


class RefusedAddress(Exception):
    """The host resolves only to non-public addresses; nothing was sent."""

    def __init__(self, host: str, addresses: Iterable[str]) -> None:
        self.host = host
        self.addresses = tuple(addresses)
        super().__init__(f"refused: {host} resolves to non-public address {', '.join(self.addresses)}")


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order (a literal address as is)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Deadline:
    """When (``time.monotonic()``) the current request must be over; ``expired`` once a network
    operation was cut short by it."""

    __slots__ = ("at", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False


_current: ContextVar[Deadline | None] = ContextVar("tracker_request_deadline", default=None)


@contextmanager
def deadline(at: float) -> Iterator[Deadline]:
    """Network operations of this thread (through a ``DeadlineBackend``) end by ``at``."""
    current = Deadline(at)
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)


def _clamp(timeout: float | None, error: type[httpcore.TimeoutException]) -> tuple[float | None, Deadline | None]:
    """``timeout`` cut to the time left before the current deadline; the deadline when it was cut."""
    current = _current.get()
    if current is None:
        return timeout, None
    left = current.at - time.monotonic()
    if left <= 0:
        current.expired = True
        raise error("the request's deadline has passed")
    if timeout is None or left < timeout:
        return max(left, 0.001), current
    return timeout, None


def _bounded(timeout: float | None, error: type[httpcore.TimeoutException], op: Callable[[float | None], T]) -> T:
    """``op(timeout)`` with the timeout cut to the current deadline; a timeout of a cut
    operation marks the deadline as expired (the response took too long, not one read)."""
    timeout, cut = _clamp(timeout, error)
    try:
        return op(timeout)
    except httpcore.TimeoutException:
        if cut is not None:
            cut.expired = True
        raise


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose operations end by the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded(timeout, httpcore.ReadTimeout, lambda t: self._inner.read(max_bytes, t))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _bounded(timeout, httpcore.WriteTimeout, lambda t: self._inner.write(buffer, t))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = _bounded(
            timeout, httpcore.ConnectTimeout, lambda t: self._inner.start_tls(ssl_context, server_hostname, t)
        )
        return DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """A network backend (httpcore's socket backend by default) whose connections end by the deadline."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            timeout,
            httpcore.ConnectTimeout,
            lambda t: self._inner.connect_tcp(host, port, t, local_address, socket_options),
        )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            timeout, httpcore.ConnectTimeout, lambda t: self._inner.connect_unix_socket(path, t, socket_options)
        )
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend (or ``inner``), connecting only to public addresses."""

    def __init__(self, resolver: Resolver = resolve, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()
        self._resolve = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        public = [a for a in addresses if not is_private_address(a)]
        if not public:
            raise RefusedAddress(host, addresses)
        error: Exception | None = None
        for address in public:
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class BackendTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool using ``backend`` (same limits)."""

    def __init__(self, *, limits: httpx.Limits, backend: httpcore.NetworkBackend) -> None:
        super().__init__(limits=limits)
        # httpx builds its pool in __init__ without a way to pass a network backend.
        ssl_context = self._pool._ssl_context
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class DeadlineTransport(BackendTransport):
    """httpx's transport whose requests end by the current ``deadline()``."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, backend=DeadlineBackend())


class GuardedTransport(BackendTransport):
    """httpx's transport over a ``GuardedBackend`` connection pool (same limits); requests end by
    the current ``deadline()``, each address tried getting only the time left."""

    def __init__(self, *, limits: httpx.Limits, resolver: Resolver = resolve) -> None:
        super().__init__(limits=limits, backend=GuardedBackend(resolver, DeadlineBackend()))
