"""Feed documents → FeedEntry objects (feedparser at the boundary; JSON Feed through ``jsonfeed``).

feedparser's dicts never leave this module. Bytes are parsed together with the
response headers, so the declared charset and the base URL are honored. A malformed
("bozo") document that still yields entries is used, with the reason kept; one that
yields nothing is a ParseError.

Every entry is a fault boundary: values a hostile or broken feed can carry (a link with
port 99999, a date in year 1, a ``<ttl>`` of "²") are treated as absent, and an entry whose
conversion still raises is skipped and counted in ``ParsedFeed.faults``; the rest of the
feed is used. ``parse_feed`` itself raises only ParseError.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser

from tracker.core.errors import ParseError
from tracker.core.text import html_to_text, plain
from tracker.core.types import FeedEntry, ParsedFeed
from tracker.core.urls import canonicalize
from tracker.sources import jsonfeed

#: publication dates outside this range are treated as unknown (a wrong clock, or a hostile value)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
#: the longest link, GUID and author kept from an entry (the store's columns hold 2048, 2048, 512)
MAX_LINK = 2000
MAX_GUID = 1000
MAX_AUTHOR = 500
_TTL = re.compile(r"[0-9]{1,6}")  # ASCII digits only: "²".isdigit() is true

logger = logging.getLogger(__name__)


def parse_feed(
    body: bytes, url: str, headers: Mapping[str, str] | None = None, *, max_entries: int | None = None
) -> ParsedFeed:
    """Parse ``body`` fetched from ``url``; raise ParseError when it is not a usable feed.

    With ``max_entries``, only the first that many entries are parsed: the document is cut
    before the next one (and its open elements closed), so a feed of 200,000 tiny entries
    costs what a feed of ``max_entries`` costs."""
    response_headers = {k.lower(): v for k, v in (headers or {}).items()}
    if not body.strip():
        raise ParseError(f"{url}: empty document")
    if jsonfeed.looks_like_json(body, response_headers.get("content-type", "")):
        parsed = jsonfeed.load(body, url)
        shape: Callable[[Any], Mapping[str, Any]] = jsonfeed.entry
        if max_entries is not None:
            parsed["entries"] = parsed["entries"][:max_entries]
    else:
        parsed = _parse_xml(body, url, response_headers, max_entries)
        shape = _as_is
    bozo = _bozo_reason(parsed)
    version = parsed.get("version") or ""
    entries: list[FeedEntry] = []
    faults: list[str] = []
    for raw in parsed.get("entries") or []:
        try:
            entry = _entry(shape(raw))
        except Exception as exc:  # noqa: BLE001 - one entry never costs the feed its other entries
            faults.append(f"entry skipped: {type(exc).__name__}: {exc}")
            continue
        if entry is not None:
            entries.append(entry)
    if not entries and faults:
        raise ParseError(f"{url}: no usable entry ({faults[0]})")
    if not entries and (bozo or not version):
        what = bozo or "no feed elements found"
        raise ParseError(f"{url}: not a usable feed ({what})")
    return ParsedFeed(
        title=_feed_title(parsed),
        entries=tuple(entries),
        version=str(version),
        bozo_reason=bozo,
        ttl=_ttl(parsed),
        faults=tuple(faults),
    )


#: a numeric character reference; one to a surrogate or past U+10FFFF makes feedparser fail the whole feed
_CHAR_REF = re.compile(rb"&#(x[0-9a-fA-F]{1,8}|[0-9]{1,10});")


def _char_ref(m: re.Match[bytes]) -> bytes:
    digits = m.group(1)
    value = int(digits[1:], 16) if digits[:1] == b"x" else int(digits)
    return b"&#xFFFD;" if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF else m.group(0)


def _parse_xml(body: bytes, url: str, headers: dict[str, str], max_entries: int | None) -> Any:
    """RSS, Atom or RDF through feedparser."""
    if max_entries is not None:
        body = truncate_entries(body, max_entries)
    if b"&#" in body:
        body = _CHAR_REF.sub(_char_ref, body)
    headers.setdefault("content-location", url)  # the base for relative links
    # A missing Content-Type would make feedparser flag every document as malformed.
    headers.setdefault("content-type", "application/xml")
    try:
        return feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:
        raise ParseError(f"{url}: feedparser failed: {type(exc).__name__}: {exc}") from exc


def _as_is(raw: Any) -> Mapping[str, Any]:
    return raw  # type: ignore[no-any-return]


def _feed_title(parsed: Any) -> str | None:
    try:
        return html_to_text(str(parsed.get("feed", {}).get("title", "") or "")) or None
    except Exception:  # noqa: BLE001 - a title is never worth the feed
        return None


def _ttl(parsed: Any) -> int | None:
    """The RSS ``<ttl>`` in minutes, when it is a plain number between 1 and 99,999."""
    value = str(parsed.get("feed", {}).get("ttl", "") or "").strip()
    if not _TTL.fullmatch(value):
        return None
    minutes = int(value)
    return minutes if 0 < minutes < 100_000 else None


def _bozo_reason(parsed: Any) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}" if exc is not None else "malformed document"


def _entry(raw: Mapping[str, Any]) -> FeedEntry | None:
    link = _link(raw)
    guid = _guid(raw.get("id"))
    title = html_to_text(raw.get("title") or "")
    summary = html_to_text(raw.get("summary") or "")
    content = _content(raw)
    if content == summary:
        content = ""
    if not (link or guid) or not (title or summary or content):
        return None
    author = html_to_text(str(raw.get("author") or ""))[:MAX_AUTHOR] or None
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
    """The entry's web link: the first candidate that is a usable http(s) URL."""
    candidates = [raw.get("link")]
    candidates += [c.get("href") for c in raw.get("links") or [] if c.get("rel", "alternate") == "alternate"]
    if raw.get("guidislink"):
        candidates.append(raw.get("id"))
    for candidate in candidates:
        link = str(candidate or "").strip()
        if _usable_link(link):
            return link
    return None


def _guid(value: object) -> str | None:
    """The entry's GUID; one longer than MAX_GUID is replaced by its hash (it is an identity,
    compared, never shown)."""
    guid = plain(str(value or "")).strip()
    if len(guid) > MAX_GUID:
        return "sha256:" + hashlib.sha256(guid.encode("utf-8", "surrogatepass")).hexdigest()
    return guid or None


def _usable_link(link: str) -> bool:
    """An http(s) URL of at most MAX_LINK characters with a host that canonicalizes (no
    port 99999, no ``:abc``)."""
    if not link.startswith(("http://", "https://")) or len(link) > MAX_LINK:
        return False
    try:
        canonicalize(link)
        return bool(urlsplit(link).hostname)
    except ValueError:
        return False


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
                when = datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, OSError, TypeError):
                continue
            if EARLIEST <= when < LATEST:
                return when
    return None


#: the start tag of an RSS <item> or an Atom <entry>, with or without a namespace prefix
_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
#: start and end tags, comments, CDATA, processing instructions and declarations
_TAG = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<[?!][^>]*>|<(/?)([A-Za-z_][\w.:-]*)[^>]*?(/?)>", re.S)


def truncate_entries(body: bytes, limit: int) -> bytes:
    """``body`` cut before its entry number ``limit + 1``, with the elements that were open
    there closed again; unchanged when it has no more than ``limit`` entries."""
    starts = _ENTRY_START.finditer(body)
    first = next(starts, None)
    if first is None:
        return body
    cut = None
    for n, match in enumerate(starts, start=2):
        if n > limit:
            cut = match.start()
            break
    if cut is None or limit < 1:
        return body if cut is None else body[: first.start()] + _closing(body[: first.start()])
    return body[:cut] + _closing(body[: first.start()])


def _closing(head: bytes) -> bytes:
    """End tags for the elements still open at the end of ``head`` (the document before
    its first entry: the same elements are open before every entry)."""
    stack: list[bytes] = []
    for match in _TAG.finditer(head):
        end, name, empty = match.group(1), match.group(2), match.group(3)
        if name is None or empty:
            continue
        if end:
            if name in stack:
                del stack[len(stack) - 1 - stack[::-1].index(name) :]
        else:
            stack.append(name)
    return b"".join(b"</" + name + b">" for name in reversed(stack))
