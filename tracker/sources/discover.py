"""Which feeds a URL offers: the URL itself when it is a feed, else the feeds its page
advertises (``<link rel="alternate">`` with a feed type), else a feed at one of the paths
sites commonly use (``/feed``, ``/rss.xml``, ...). Every candidate is fetched and parsed
before it is offered, so what `tracker feeds add` lists is known to work.

The caller passes the fetcher and the address guard: discovery fetches what the user asked
for (as a configured feed is fetched), and at most ``MAX_CANDIDATES`` other URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from tracker.core.errors import FetchError, ParseError
from tracker.core.types import FetchResult, FetchStatus
from tracker.core.urls import validate_feed_url
from tracker.sources.feeds import parse_feed
from tracker.sources.fetching import FEED_ACCEPT, Fetcher

#: the feed types a page may advertise
FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",
        "application/xml",
        "text/xml",
    }
)
#: paths tried, in order, on a page's site when the page advertises no feed
COMMON_PATHS = (
    "/feed",
    "/rss",
    "/feed.xml",
    "/rss.xml",
    "/atom.xml",
    "/index.xml",
    "/feed.json",
    "/feeds/all.atom.xml",
)
MAX_CANDIDATES = 10
MAX_PAGE_BYTES = 2_000_000  #: only the head of a huge page is searched for <link> elements


@dataclass(frozen=True, slots=True)
class FoundFeed:
    url: str  #: after redirects
    title: str | None  #: the feed's own title, else the title the page gave its link
    version: str  #: "rss20", "atom10", "json11", ...
    entries: int


def discover(fetcher: Fetcher, url: str, guard: Callable[[str], bool] | None = None) -> list[FoundFeed]:
    """The feeds ``url`` offers (empty when none is found); raises FetchError when ``url``
    itself cannot be fetched."""
    first = fetcher.get(url, accept=FEED_ACCEPT, guard=guard)
    if first.status_code >= 400:
        raise FetchError(url, f"HTTP {first.status_code}", FetchStatus.HTTP_ERROR, http_status=first.status_code)
    own = _as_feed(first)
    if own is not None:
        return [own]
    body = first.body or b""
    advertised = advertised_feeds(body[:MAX_PAGE_BYTES], first.final_url)
    candidates = advertised or [(urljoin(first.final_url, path), None) for path in COMMON_PATHS]
    found: dict[str, FoundFeed] = {}
    for candidate, label in candidates[:MAX_CANDIDATES]:
        try:
            result = fetcher.get(candidate, accept=FEED_ACCEPT, guard=guard)
        except FetchError:
            continue
        feed = _as_feed(result, label)
        if feed is not None and feed.url not in found:
            found[feed.url] = feed
        if feed is not None and not advertised:
            break  # the first common path that works is the site's feed
    return list(found.values())


def advertised_feeds(html: bytes, base_url: str) -> list[tuple[str, str | None]]:
    """``(absolute URL, title)`` of each feed the page links with ``rel="alternate"``, in page order."""
    from lxml import etree
    from lxml import html as lxml_html

    if not html.strip():
        return []
    try:
        root = lxml_html.fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    base = base_url
    for element in root.iter("base"):
        href = (element.get("href") or "").strip()
        if href:
            with suppress(ValueError):  # "http://[x/": no base
                base = urljoin(base_url, href)
            break
    out: dict[str, str | None] = {}
    for link in root.iter("link"):
        rel = {part.lower() for part in (link.get("rel") or "").split()}
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or kind not in FEED_TYPES or not href:
            continue
        try:
            absolute = urljoin(base, href)
            usable = urlsplit(absolute).scheme in ("http", "https") and validate_feed_url(absolute) is None
        except ValueError:  # an unreadable href is not a feed
            continue
        if usable and absolute not in out:
            out[absolute] = (link.get("title") or "").strip() or None
    return list(out.items())


def _as_feed(result: FetchResult, label: str | None = None) -> FoundFeed | None:
    if result.status_code != 200 or not result.body:
        return None
    try:
        feed = parse_feed(result.body, result.final_url, result.headers, max_entries=200)
    except ParseError:
        return None
    return FoundFeed(url=result.final_url, title=feed.title or label, version=feed.version, entries=len(feed.entries))
