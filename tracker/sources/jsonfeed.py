"""JSON Feed 1.0 and 1.1 (jsonfeed.org) documents, in the shape feedparser gives RSS and Atom.

feedparser reads only XML. A JSON Feed is turned here into the same kind of dictionary
(``version``, ``feed.title``, ``entries`` with ``link``, ``id``, ``title``, ``summary``,
``content``, ``author`` and ``*_parsed`` dates), so every entry of every dialect goes
through one conversion and one fault boundary in :mod:`tracker.sources.feeds`. Values of
the wrong type (a number for a title, a list for a URL) are treated as absent, as a
hostile or careless publisher may send anything.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tracker.core.errors import ParseError
from tracker.core.text import plain

#: the ``version`` URL of each JSON Feed version, and the version string we record for it
VERSIONS = {
    "https://jsonfeed.org/version/1": "json10",
    "https://jsonfeed.org/version/1.1": "json11",
}
_BOM = b"\xef\xbb\xbf"


def looks_like_json(body: bytes, content_type: str = "") -> bool:
    """Whether a fetched document is JSON rather than XML (by its first character, then its type)."""
    head = body.lstrip()
    if head.startswith(_BOM):
        head = head[len(_BOM) :].lstrip()
    return head[:1] == b"{" or (not head.startswith(b"<") and "json" in content_type.lower())


def load(body: bytes, url: str) -> dict[str, Any]:
    """The document as feedparser-shaped data whose ``entries`` are the raw JSON items
    (convert each with :func:`entry`, inside the caller's per-entry fault boundary)."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"{url}: not a usable feed (invalid JSON: {type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ParseError(f"{url}: not a usable feed (JSON, but not an object)")
    version = VERSIONS.get(str(data.get("version", "")).rstrip("/"))
    if version is None:
        raise ParseError(f"{url}: not a usable feed (JSON without a jsonfeed.org version)")
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError(f"{url}: not a usable feed (JSON Feed without an items list)")
    return {"version": version, "feed": {"title": _text(data.get("title"))}, "entries": items}


def entry(item: object) -> dict[str, Any]:
    """One JSON Feed item in feedparser's entry shape."""
    if not isinstance(item, Mapping):
        raise ValueError(f"item is a {type(item).__name__}, not an object")
    identity = item.get("id")
    raw: dict[str, Any] = {
        # 1.0 allowed a number as the id; 1.1 says string. Either identifies the item.
        "id": _text(str(identity)) if isinstance(identity, str | int) and not isinstance(identity, bool) else None,
        "link": _text(item.get("url")),
        "title": html.escape(_text(item.get("title"))),
        "summary": html.escape(_text(item.get("summary"))),
        "author": _author(item),
    }
    external = _text(item.get("external_url"))
    if external:
        raw["links"] = [{"href": external, "rel": "alternate"}]
    content = _text(item.get("content_html")) or html.escape(_text(item.get("content_text")))
    if content:
        raw["content"] = [{"value": content}]
    for key, target in (("date_published", "published_parsed"), ("date_modified", "updated_parsed")):
        when = _date(item.get(key))
        if when is not None:
            raw[target] = when
    return raw


def _text(value: object) -> str:
    """A string value, without lone surrogates (JSON can carry them, no store can keep them)."""
    return plain(value) if isinstance(value, str) else ""


def _author(item: Mapping[str, Any]) -> str:
    """The first author's name: ``authors`` (1.1), else ``author`` (1.0)."""
    authors = item.get("authors")
    candidates = list(authors) if isinstance(authors, list) else []
    candidates.append(item.get("author"))
    for author in candidates:
        if isinstance(author, Mapping) and _text(author.get("name")):
            return _text(author.get("name"))
    return ""


def _date(value: object) -> time.struct_time | None:
    """An RFC 3339 date as a UTC struct_time (what feedparser gives), None when unusable."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).timetuple()
    except (OverflowError, ValueError):
        return None
