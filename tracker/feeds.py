"""Feed documents → FeedEntry objects (feedparser at the boundary).

feedparser's dicts never leave this module. Bytes are parsed together with the
response headers, so the declared charset and the base URL are honored. A malformed
("bozo") document that still yields entries is used, with the reason kept; one that
yields nothing is a ParseError.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from .errors import ParseError
from .text import html_to_text
from .types import FeedEntry, ParsedFeed

logger = logging.getLogger(__name__)


def parse_feed(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse ``body`` fetched from ``url``; raise ParseError when it is not a usable feed."""
    response_headers = {k.lower(): v for k, v in (headers or {}).items()}
    response_headers.setdefault("content-location", url)  # the base for relative links
    # A missing Content-Type would make feedparser flag every document as malformed.
    response_headers.setdefault("content-type", "application/xml")
    if not body.strip():
        raise ParseError(f"{url}: empty document")
    try:
        parsed = feedparser.parse(body, response_headers=response_headers, sanitize_html=True)
    except Exception as exc:
        raise ParseError(f"{url}: feedparser failed: {type(exc).__name__}: {exc}") from exc
    bozo = _bozo_reason(parsed)
    version = parsed.get("version") or ""
    entries = tuple(e for e in (_entry(raw) for raw in parsed.get("entries") or []) if e is not None)
    if not entries and (bozo or not version):
        what = bozo or "no feed elements found"
        raise ParseError(f"{url}: not a usable feed ({what})")
    feed_title = html_to_text(parsed.get("feed", {}).get("title", "") or "") or None
    ttl = str(parsed.get("feed", {}).get("ttl", "") or "").strip()
    return ParsedFeed(
        title=feed_title,
        entries=entries,
        version=version,
        bozo_reason=bozo,
        ttl=int(ttl) if ttl.isdigit() and 0 < int(ttl) < 100_000 else None,
    )


def _bozo_reason(parsed: Any) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}" if exc is not None else "malformed document"


def _entry(raw: Mapping[str, Any]) -> FeedEntry | None:
    link = _link(raw)
    guid = (raw.get("id") or "").strip() or None
    title = html_to_text(raw.get("title") or "")
    summary = html_to_text(raw.get("summary") or "")
    content = _content(raw)
    if content == summary:
        content = ""
    if not (link or guid) or not (title or summary or content):
        return None
    author = (raw.get("author") or "").strip() or None
    return FeedEntry(
        link=link,
        guid=guid,
        title=title,
        author=author,
        published=_date(raw),
        summary=summary,
        content=content,
    )


def _link(raw: Mapping[str, Any]) -> str | None:
    link = (raw.get("link") or "").strip()
    if link.startswith(("http://", "https://")):
        return link
    for candidate in raw.get("links") or []:
        href = (candidate.get("href") or "").strip()
        if candidate.get("rel", "alternate") == "alternate" and href.startswith(("http://", "https://")):
            return href
    guid = (raw.get("id") or "").strip()
    if raw.get("guidislink") and guid.startswith(("http://", "https://")):
        return guid
    return None


def _content(raw: Mapping[str, Any]) -> str:
    best = ""
    for part in raw.get("content") or []:
        text = html_to_text(part.get("value") or "")
        if len(text) > len(best):
            best = text
    return best


def _date(raw: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = raw.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None
