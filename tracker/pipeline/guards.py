"""Which URLs a cycle's requests may reach: the trust guards handed to the fetcher for a
feed's own URL (and its redirects) and for the article pages its entries link to."""

from __future__ import annotations

from tracker.core.config import FetchConfig
from tracker.core.urls import host_of, same_site
from tracker.sources.fetching import Guard


def article_guard(feed_url: str, fetch: FetchConfig) -> Guard:
    """Which article URLs are trusted: the feed's own host, hosts in ``[fetch] allowed_hosts``,
    or every URL when ``allow_private_addresses`` is set. Others may only reach public
    addresses, checked by the fetcher on the address it connects to (``tracker.sources.netguard``)."""

    def guard(url: str) -> bool:
        return fetch.allow_private_addresses or same_site(url, feed_url) or host_of(url) in fetch.allowed_hosts

    return guard


def feed_guard(feed_url: str, fetch: FetchConfig) -> Guard:
    """The configured feed URL is trusted (an operator may poll an intranet feed); every
    redirect hop that leaves its host may only reach public addresses, unless that host is
    in ``[fetch] allowed_hosts`` or ``allow_private_addresses`` is set."""
    host = host_of(feed_url)

    def guard(url: str) -> bool:
        return fetch.allow_private_addresses or host_of(url) == host or host_of(url) in fetch.allowed_hosts

    return guard
