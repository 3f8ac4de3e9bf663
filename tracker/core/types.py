"""Domain types shared by every stage of the pipeline.

All types are frozen dataclasses: stages hand them to each other and never mutate
them. All datetimes are timezone-aware UTC. Third-party objects (feedparser dicts,
trafilatura documents, httpx responses) are converted into these types at the
boundary of the module that talks to that library, so they never leak inward.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class FetchStatus(enum.StrEnum):
    """Outcome of fetching one feed in one cycle (stored in ``feeds.last_status``)."""

    OK = "ok"  #: fetched and parsed, entries processed
    NOT_MODIFIED = "not_modified"  #: 304, or the body hash is unchanged
    TIMEOUT = "timeout"  #: connect/read/total timeout
    NETWORK = "network"  #: DNS, refused, reset, TLS failure
    HTTP_ERROR = "http_error"  #: 4xx / 5xx
    TOO_LARGE = "too_large"  #: body over the size cap
    REFUSED = "refused"  #: blocked by the private-address guard
    PARSE_ERROR = "parse_error"  #: not a feed, or a feed with no usable entries
    ERROR = "error"  #: any other recorded failure

    @property
    def failed(self) -> bool:
        return self not in (FetchStatus.OK, FetchStatus.NOT_MODIFIED)


class TextSource(enum.StrEnum):
    """Which path produced an item's stored text."""

    EXTRACTED = "extracted"  #: trafilatura on the fetched article page
    FEED_CONTENT = "feed_content"  #: the entry's full content from the feed
    FEED_SUMMARY = "feed_summary"  #: the entry's summary/description
    NONE = "none"  #: nothing usable anywhere


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A feed to poll: where, what to call it, and the folders or categories it is filed
    under ("News/Autos"; kept for OPML export)."""

    url: str
    name: str
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What came back for one URL. ``body`` is None for 304 responses."""

    url: str  #: the URL that was requested first
    final_url: str  #: after redirects
    status_code: int
    headers: dict[str, str]
    body: bytes | None
    elapsed: float  #: seconds
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status_code == 304


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry of a parsed feed, converted from feedparser's dict."""

    link: str | None
    guid: str | None
    title: str
    author: str | None = None
    published: datetime | None = None
    summary: str = ""  #: plain text
    content: str = ""  #: plain text of the fullest content element, may be empty


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed document."""

    title: str | None
    entries: tuple[FeedEntry, ...]
    version: str  #: feedparser's version string ("rss20", "atom10", ...), "" if unknown
    bozo_reason: str | None = None  #: set when the document was malformed but usable
    ttl: int | None = None  #: RSS <ttl>: minutes the feed may be cached
    faults: tuple[str, ...] = ()  #: entries skipped because converting them raised, and why


@dataclass(frozen=True, slots=True)
class Article:
    """The extracted article, ready to match and store."""

    url: str  #: canonical URL
    title: str
    text: str
    text_source: TextSource
    author: str | None = None
    published: datetime | None = None
    site_name: str | None = None
    language: str | None = None
    final_url: str | None = None  #: the URL the page was actually served from
    canonical_url: str | None = None  #: the page's own <link rel=canonical>, resolved


@dataclass(frozen=True, slots=True)
class Rule:
    """A topic rule (see rules/README.md for the file format)."""

    id: str
    title: str
    description: str
    query: str  #: in the rule language (tracker/query.py)
    threshold: float = 1.0
    priority: int = 0
    owner: str = ""
    source: str = ""  #: file the rule came from
    query_line: int = 1  #: where the query text starts in that file (for error positions)
    query_column: int = 1
    content_hash: str = ""  #: of the rule and every entity it uses; stored on its matches


@dataclass(frozen=True, slots=True)
class Evidence:
    """One matched term or entity occurrence; offsets are within ``field``."""

    term: str  #: as written in the rule: a word, a phrase, or @entity
    text: str  #: as it appears in the document
    field: str  #: "title" or "text"
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched an article."""

    rule: str
    score: float
    terms: tuple[str, ...]  #: distinct matched words and names, in first-seen order
    snippets: tuple[str, ...]  #: one or two sentences that carry the match
    rule_hash: str = ""
    evidence: tuple[Evidence, ...] = ()
    #: Set when the rule's query was false and its topic model confirmed its candidate query:
    #: the model's probability, and the words that weighed most for it.
    model: float | None = None
    model_words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedReport:
    """What one cycle did for one feed."""

    feed_id: int
    name: str
    url: str
    status: FetchStatus
    entries: int = 0
    new: int = 0
    extracted: int = 0
    fallbacks: int = 0
    article_failures: int = 0
    error: str | None = None
    bozo_reason: str | None = None
    seconds: float = 0.0  #: fetch to recorded, articles included


@dataclass(frozen=True, slots=True)
class CycleReport:
    """Summary of one poll cycle."""

    started_at: datetime
    finished_at: datetime
    feeds: tuple[FeedReport, ...] = field(default_factory=tuple)
    topics: dict[str, list[str]] = field(default_factory=dict)  #: rule id -> new item titles
    roles: dict[str, int] = field(default_factory=dict)  #: story role ("new", "update", "copy") -> new items

    @property
    def failed(self) -> tuple[FeedReport, ...]:
        return tuple(f for f in self.feeds if f.status.failed)

    @property
    def new_items(self) -> int:
        return sum(f.new for f in self.feeds)
