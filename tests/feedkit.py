"""Builders for the small feeds and pages the pipeline tests serve (our own fixture text)."""

from __future__ import annotations

import html
from dataclasses import dataclass

PARAGRAPHS = (
    "The city council of Eastbrook voted on Tuesday to extend the riverside tram line by four stops, "
    "ending a debate that had run for most of the year.",
    "Supporters said the extension would cut commuting times for thousands of residents in the northern "
    "districts, while opponents questioned the cost estimates presented by the transit agency.",
    "The agency expects construction to begin next spring and to last about two years, with temporary "
    "bus services replacing trams on the affected section during the works.",
    "Council members also approved a review of fares, which have not changed since the line opened, and "
    "asked the agency to report back before the summer recess.",
)


@dataclass
class Entry:
    slug: str
    title: str
    link: str
    summary: str = "A short summary of the story."
    content: str = ""
    guid: str | None = None


def page(title: str, paragraphs: tuple[str, ...] = PARAGRAPHS, canonical: str | None = None) -> str:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    canon = f'<link rel="canonical" href="{html.escape(canonical)}">' if canonical else ""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>{canon}"
        "</head><body><nav><a href='/'>Home</a> <a href='/local'>Local</a> <a href='/sport'>Sport</a></nav>"
        f"<article><h1>{html.escape(title)}</h1>{body}</article>"
        "<aside><h2>Most read</h2><ul><li><a href='/x'>Weather warning for the weekend</a></li></ul></aside>"
        "<footer>Copyright Eastbrook Gazette. All rights reserved.</footer></body></html>"
    )


def rss(entries: list[Entry], title: str = "Eastbrook Gazette") -> str:
    items = "".join(
        f"<item><title>{html.escape(e.title)}</title><link>{html.escape(e.link)}</link>"
        f"<guid isPermaLink='false'>{html.escape(e.guid or e.slug)}</guid>"
        f"<pubDate>Tue, 10 Feb 2026 09:00:00 GMT</pubDate><description>{html.escape(e.summary)}</description>"
        + (f"<content:encoded><![CDATA[{e.content}]]></content:encoded>" if e.content else "")
        + "</item>"
        for e in entries
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0' "
        "xmlns:content='http://purl.org/rss/1.0/modules/content/'><channel>"
        f"<title>{html.escape(title)}</title><link>http://example.invalid/</link><description>d</description>"
        f"{items}</channel></rss>"
    )


def atom(entries: list[Entry], title: str = "Eastbrook Gazette (Atom)") -> str:
    items = "".join(
        f"<entry><title>{html.escape(e.title)}</title><link href='{html.escape(e.link)}'/>"
        f"<id>urn:eastbrook:{html.escape(e.guid or e.slug)}</id><updated>2026-02-10T09:00:00Z</updated>"
        f"<summary>{html.escape(e.summary)}</summary></entry>"
        for e in entries
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        f"<title>{html.escape(title)}</title><id>urn:eastbrook</id><updated>2026-02-10T09:00:00Z</updated>"
        f"{items}</feed>"
    )


RSS_HEADERS = {"Content-Type": "application/rss+xml; charset=utf-8"}
HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8"}
