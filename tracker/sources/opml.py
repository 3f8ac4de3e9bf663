"""Feed lists in OPML 2.0: read with listparser, written with the standard library.

A feed's folders and categories are kept as paths ("News/Autos"). Reading, the folder an
outline sits in and its ``category`` attribute both become categories; writing, a feed is
put in the folder of its first category and the others go in its ``category`` attribute,
so an exported file read back gives the same names, URLs and categories.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from tracker.core.errors import ConfigError
from tracker.core.text import plain
from tracker.core.urls import validate_feed_url

MAX_OPML_BYTES = 5_000_000  #: about 30,000 feeds
MAX_NAME = 500
MAX_DEPTH = 32  #: folders inside folders; listparser copies the path for every feed below
#: start and end tags of outlines, counted to know how deep they nest before parsing
_OUTLINE = re.compile(rb"<(/?)outline\b[^>]*?(/?)>", re.I)
#: characters XML 1.0 cannot carry, and lone surrogates
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class ListedFeed:
    url: str
    name: str
    categories: tuple[str, ...] = ()  #: folder and category paths, "News/Autos"


@dataclass(frozen=True, slots=True)
class FeedList:
    feeds: tuple[ListedFeed, ...]
    skipped: tuple[str, ...]  #: outlines not imported, and why


def read_opml(path: Path) -> FeedList:
    """The feeds of an OPML file; ConfigError (naming the file) when it is not one."""
    import listparser

    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_OPML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None
    if len(data) > MAX_OPML_BYTES:
        raise ConfigError(f"larger than {MAX_OPML_BYTES // 1_000_000} MB", path=str(path))
    depth = _nesting(data)
    if depth > MAX_DEPTH:
        raise ConfigError(f"outlines nested {depth} deep (at most {MAX_DEPTH})", path=str(path))
    try:
        parsed = listparser.parse(data)
    except Exception as exc:  # noqa: BLE001 - whatever the parser trips on, the file is not a usable OPML list
        raise ConfigError(f"not an OPML file ({type(exc).__name__}: {exc})", path=str(path)) from None
    if not parsed.get("version") and not parsed.get("feeds"):
        why = parsed.get("bozo_exception")
        raise ConfigError(f"not an OPML file{f' ({why})' if why else ''}", path=str(path))
    feeds: list[ListedFeed] = []
    skipped: list[str] = []
    for raw in parsed.get("feeds") or []:
        url = str(raw.get("url") or "").strip()
        problem = validate_feed_url(url)
        if problem:
            skipped.append(f"{plain(url)[:200] or '(no xmlUrl)'}: {problem}".replace("\n", " "))
            continue
        name = plain(str(raw.get("title") or "")).strip()[:MAX_NAME] or url
        categories = sorted({"/".join(p.strip() for p in c if p.strip()) for c in raw.get("categories") or []} - {""})
        feeds.append(ListedFeed(url=url, name=name, categories=tuple(categories)))
    return FeedList(feeds=tuple(feeds), skipped=tuple(skipped))


def _nesting(data: bytes) -> int:
    """How deep ``<outline>`` elements nest (one linear pass over the tags)."""
    depth = deepest = 0
    for m in _OUTLINE.finditer(data):
        if m.group(1):
            depth = max(0, depth - 1)
        elif not m.group(2):
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def write_opml(feeds: Iterable[ListedFeed], title: str = "newstracker feeds", now: datetime | None = None) -> str:
    """An OPML 2.0 document listing ``feeds``, nested in the folders of their first category."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC))
    body = ET.SubElement(root, "body")
    folders: dict[tuple[str, ...], ET.Element] = {(): body}
    for feed in feeds:
        folder, others = _placement(feed.categories)
        parent = _folder(folders, folder)
        name = _xml(feed.name)
        attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": _xml(feed.url)}
        if others:
            attrs["category"] = _xml(",".join("/" + c for c in others))
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _placement(categories: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """The folder path a feed goes in (its first category) and the categories left for the attribute."""
    if not categories:
        return (), []
    first = tuple(_xml(p) for p in categories[0].split("/") if _xml(p))[:MAX_DEPTH]
    return first, list(categories[1:])


def _folder(folders: dict[tuple[str, ...], ET.Element], path: tuple[str, ...]) -> ET.Element:
    for depth in range(1, len(path) + 1):
        if path[:depth] not in folders:
            parent = folders[path[: depth - 1]]
            folders[path[:depth]] = ET.SubElement(
                parent, "outline", {"text": path[depth - 1], "title": path[depth - 1]}
            )
    return folders[path]
