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
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from .urls import is_private_address

Resolver = Callable[[str, int], list[str]]


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


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, connecting only to public addresses."""

    def __init__(self, resolver: Resolver = resolve) -> None:
        self._inner = httpcore.SyncBackend()
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


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a ``GuardedBackend`` connection pool (same limits)."""

    def __init__(self, *, limits: httpx.Limits, resolver: Resolver = resolve) -> None:
        super().__init__(limits=limits)
        # httpx builds its pool in __init__ without a way to pass a network backend.
        ssl_context = self._pool._ssl_context
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(resolver),
        )
