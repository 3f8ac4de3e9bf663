"""Article pages → Article (trafilatura at the boundary).

``build_article`` is the one code path from fetched HTML (and/or a feed entry) to the
stored text: ``tracker poll`` runs it in worker processes, ``tracker extract`` runs it
on files and URLs. When the page cannot be fetched or extraction yields too little,
the feed's own content or summary is used instead, and ``text_source`` says which.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tracker.core.text import normalize_space
from tracker.core.types import Article, FeedEntry, TextSource
from tracker.core.urls import canonicalize, outlet_host, same_site

logger = logging.getLogger(__name__)

_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.I)


@dataclass(frozen=True, slots=True)
class ExtractJob:
    """Everything a worker process needs to build one Article (picklable)."""

    url: str  #: the link as found in the feed (or the file path / URL given to `tracker extract`)
    html: bytes | None = None
    final_url: str | None = None
    content_type: str | None = None
    entry: FeedEntry | None = None
    min_text_chars: int = 300
    #: hosts the feed's entries link to: a <link rel=canonical> to one of them is believed
    #: even when it is not the page's own site (an outlet's feed linking to its other domains)
    feed_hosts: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Page:
    """What trafilatura found on a page."""

    text: str
    title: str | None
    author: str | None
    date: datetime | None
    site_name: str | None
    language: str | None
    canonical_url: str | None


#: characters of main text below which the fast pass is not trusted (a few short paragraphs)
THIN_TEXT = 1000
_OPTIONS: dict[str, Any] = {"with_metadata": True, "include_comments": False, "include_tables": True}


def extract_page(html: bytes, url: str | None = None, content_type: str | None = None) -> Page | None:
    """Run trafilatura on one page; None when it finds no main text."""
    from trafilatura import bare_extraction
    from trafilatura.utils import load_html

    source = _decode(html, content_type)
    tree = load_html(source)
    if tree is None:
        return None
    canonical = _canonical_link(tree, url)
    language = (tree.get("lang") or "").split("-")[0].lower() or None
    # trafilatura's fast mode skips its comparison with two other extractors, which costs more
    # than the extraction itself and seldom changes a news article; a thin result is tried again
    # with the comparison, which is where it finds what the fast pass missed.
    doc: Any = bare_extraction(tree, fast=True, **_OPTIONS, url=url)
    if doc is None or len(doc.text or "") < THIN_TEXT:
        tree = load_html(source)  # (the first pass pruned the tree it read)
        if tree is None:
            return None
        doc = bare_extraction(tree, **_OPTIONS, url=url)
    if doc is None or not (doc.text or "").strip():
        return None
    return Page(
        text=normalize_space(doc.text),
        title=(doc.title or "").strip() or None,
        author=(doc.author or "").strip() or None,
        date=_parse_date(doc.date),
        site_name=(doc.sitename or "").strip() or None,
        language=(doc.language or language),
        canonical_url=canonical,
    )


def build_article(job: ExtractJob) -> Article:
    """Extracted text when there is enough of it, else the feed's text; never raises on bad HTML."""
    page: Page | None = None
    if job.html:
        try:
            page = extract_page(job.html, job.final_url or _web_url(job.url), job.content_type)
        except MemoryError:
            raise  # not a bad page but a spent budget: the worker running it says so (tracker.pipeline.workers)
        except Exception as exc:
            # One line for the operator; the traceback only at debug level (a page's HTML, not our bug).
            logger.warning("extraction failed url=%s: %s: %s", job.url, type(exc).__name__, str(exc)[:200])
            logger.debug("extraction failed url=%s", job.url, exc_info=True)
    entry = job.entry
    text, source = _choose_text(page, entry, job.min_text_chars)
    base = job.final_url or job.url
    canonical = _fits(_believed_canonical(page.canonical_url, job) if page else None)
    url = canonical or _fits(canonicalize(base) if _web_url(base) else base) or job.url
    title = (entry.title if entry and entry.title else None) or (page.title if page else None) or ""
    # Stored text is plain text, whatever path it came by: no control characters (nor
    # terminal escape sequences) reach the store, the terminal or the digest.
    return Article(
        url=url,
        title=normalize_space(title).replace("\n", " "),
        text=normalize_space(text),
        text_source=source,
        author=((entry.author if entry and entry.author else None) or (page.author if page else None) or "")[:500]
        or None,
        published=(entry.published if entry and entry.published else None) or (page.date if page else None),
        site_name=(page.site_name or "")[:500] or None if page else None,
        language=(page.language or "")[:16] or None if page else None,
        final_url=_fits(job.final_url),
        canonical_url=canonical,
    )


def _fits(url: str | None) -> str | None:
    """``url`` when the store can hold it (2048 characters), else None."""
    return url if url is None or len(url) <= 2048 else None


def _choose_text(page: Page | None, entry: FeedEntry | None, min_chars: int) -> tuple[str, TextSource]:
    extracted = page.text if page else ""
    feed_content = entry.content if entry else ""
    feed_summary = entry.summary if entry else ""
    if extracted and (len(extracted) >= min_chars or len(extracted) >= max(len(feed_content), len(feed_summary))):
        return extracted, TextSource.EXTRACTED
    if feed_content and len(feed_content) >= len(feed_summary):
        return feed_content, TextSource.FEED_CONTENT
    if feed_summary:
        return feed_summary, TextSource.FEED_SUMMARY
    return "", TextSource.NONE


def _decode(html: bytes, content_type: str | None) -> bytes | str:
    """Honor a charset from the HTTP header; otherwise let trafilatura sniff the bytes."""
    match = _CHARSET.search(content_type or "")
    if match:
        try:
            return html.decode(match.group(1))
        except (LookupError, UnicodeDecodeError):
            pass
    return html


def _canonical_link(tree: Any, url: str | None) -> str | None:
    for href in tree.xpath("//head/link[contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]/@href"):
        href = str(href).strip()
        if not href:
            continue
        resolved = canonicalize(href, base=url) if url else (href if _web_url(href) else None)
        if resolved and _web_url(resolved) and not _is_site_root(resolved):
            return resolved
    return None


def _believed_canonical(canonical: str | None, job: ExtractJob) -> str | None:
    """A page's canonical link, if it may name the article: it points to the page's own site
    (the URL it was served from, after redirects; ``www.`` aside) or to a host the feed links
    to. A page claiming another outlet's article would otherwise stand in for it, and that
    article would never be fetched. A page with no web URL (a file) has nothing to compare."""
    page_url = _web_url(job.final_url or job.url)
    if canonical is None or page_url is None or same_site(canonical, page_url):
        return canonical
    host = outlet_host(canonical)
    if host and host in {h.lower().removeprefix("www.") for h in job.feed_hosts}:
        return canonical
    logger.info("ignoring a canonical link to another site url=%s canonical=%s", job.url, canonical)
    return None


def _is_site_root(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path in ("", "/") and not parts.query


def _web_url(url: str | None) -> str | None:
    return url if url and url.startswith(("http://", "https://")) else None


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
