"""What a digest says: the new developments and updates a subscription has not received,
grouped by topic and by story, and the health of the sources.

``build_digest`` reads the store and returns a ``Digest`` — plain data that the templates
(``tracker/render.py``) turn into HTML and text. Nothing here sends or records anything.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise

from tracker.core.config import DigestConfig
from tracker.core.urls import redact, redact_text
from tracker.digest.queries import (
    PendingMatch,
    feed_activity,
    item_news,
    pending_matches,
    spikes_since,
    story_facts,
)
from tracker.store.database import Store

#: a feed is "silent" when its last new item is this many typical gaps old (and over a day)
SILENT_GAPS = 4


@dataclass(frozen=True, slots=True)
class Entry:
    """One story under one topic."""

    story_id: int
    marker: str  #: "new": the story is new to this topic; "update": more on a story already reported
    headline: str
    url: str  #: the best source: the item that matched the topic best
    outlets: tuple[str, ...]  #: the first few outlets
    more_sources: int  #: outlets not listed
    published: datetime | None  #: UTC; the best source's
    snippet: str
    terms: tuple[str, ...]  #: why it matched: the rule's matched terms and entities
    score: float
    items: int  #: new items of this story in this digest
    marks: tuple[str, ...] = ()  #: what identifies the match: highlighted, and the plain "why"
    #: an update: what its new items report that the story had not ("New: …" lines)
    news: tuple[str, ...] = ()
    #: an update whose new items all report nothing new (a subscription may leave it out)
    unchanged: bool = False


@dataclass(frozen=True, slots=True)
class Topic:
    rule_id: str
    title: str
    entries: tuple[Entry, ...]
    left_out: int  #: stories not shown (over max_stories)
    unchanged: int = 0  #: updates left out as reporting nothing new (``only_new_facts``)

    @property
    def new(self) -> int:
        return sum(1 for e in self.entries if e.marker == "new")


@dataclass(frozen=True, slots=True)
class SourceProblem:
    name: str
    url: str
    kind: str  #: "failing", "parked" or "silent"
    detail: str


@dataclass(frozen=True, slots=True)
class Digest:
    name: str
    generated_at: datetime
    since: datetime
    timezone: str
    topics: tuple[Topic, ...]
    sources: tuple[SourceProblem, ...]
    subscribed: tuple[tuple[str, str], ...]  #: (rule id, title) of every topic of the subscription
    deliveries: tuple[tuple[int, str], ...]  #: the (item, rule) pairs it carries, shown or left out
    config_path: str | None = None
    stories: int = 0  #: distinct stories it carries (a story under two topics counts once)
    #: surges of coverage of its topics since the last digest (``topic_spikes`` rows), one per topic
    spikes: tuple[dict[str, object], ...] = ()

    @property
    def articles(self) -> int:
        """Distinct articles it carries: what `tracker status` counts as waiting."""
        return len({item for item, _ in self.deliveries})

    @property
    def new_developments(self) -> int:
        """Distinct stories new to a topic of the digest (a story under two topics counts once)."""
        return len({e.story_id for t in self.topics for e in t.entries if e.marker == "new"})

    @property
    def updates(self) -> int:
        """Distinct stories that are only updates (more on stories already sent)."""
        new = {e.story_id for t in self.topics for e in t.entries if e.marker == "new"}
        return len({e.story_id for t in self.topics for e in t.entries if e.story_id not in new})

    @property
    def empty(self) -> bool:
        """Nothing to show: no matches, or only updates left out as reporting nothing new
        (those stay pending, and go with the story's next update that does)."""
        return not self.deliveries or not any(t.entries or t.left_out for t in self.topics)

    @property
    def summary(self) -> str:
        topics = sum(1 for t in self.topics if t.entries)
        if not topics:
            return "No new developments"
        new = _plural(self.new_developments, "new story", "new stories")
        text = f"{new} in {_plural(topics, 'topic')}"
        return text + (f", and {_plural(self.updates, 'update')}" if self.updates else "")


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def build_digest(
    store: Store,
    sub: DigestConfig,
    rule_titles: Mapping[str, str],
    *,
    since: datetime,
    now: datetime,
    last_sent: datetime | None = None,
    config_path: str | None = None,
) -> Digest:
    """The digest ``sub`` would get now: every match stored since ``since`` it has not had.
    ``last_sent`` (the previous digest) is what the digest says it is new since."""
    rules = None if "*" in sub.rules else list(sub.rules)
    subscribed = sorted(rule_titles) if rules is None else rules
    # Only the rules loaded now: matches of a rule since removed are not this digest's business.
    pending = pending_matches(store.engine, sub.name, subscribed, sub.min_score, since)
    facts = story_facts(store.engine, (p.story_id for p in pending if p.story_id is not None), sub.name, since)
    by_topic: dict[str, dict[int, list[PendingMatch]]] = defaultdict(lambda: defaultdict(list))
    for p in pending:
        by_topic[p.rule_id][p.story_id if p.story_id is not None else -p.item_id].append(p)
    news = item_news(store.engine, (p.item_id for p in pending))
    adding = {item for item, (adds, _) in news.items() if adds}
    topics = []
    for rule_id in subscribed:
        stories = by_topic.get(rule_id, {})
        entries = sorted(
            (
                _with_news(_entry(story_id, matches, facts.get(story_id), adding), matches, news)
                for story_id, matches in stories.items()
            ),
            key=lambda e: (e.marker != "new", -e.score, e.headline),
        )
        kept = [e for e in entries if not (sub.only_new_facts and e.unchanged)]
        shown = kept[: sub.max_stories]
        title = rule_titles.get(rule_id, rule_id)
        topics.append(Topic(rule_id, title, tuple(shown), len(kept) - len(shown), len(entries) - len(kept)))
    return Digest(
        name=sub.name,
        generated_at=now,
        since=max(since, last_sent) if last_sent else since,
        timezone=sub.timezone,
        topics=tuple(topics),
        sources=tuple(source_problems(store, now)),
        subscribed=tuple((r, rule_titles.get(r, r)) for r in subscribed),
        deliveries=tuple(sorted((p.item_id, p.rule_id) for p in pending)),
        config_path=config_path,
        stories=len({p.story_id if p.story_id is not None else -p.item_id for p in pending}),
        spikes=tuple(
            _one_per_topic(spikes_since(store.engine, subscribed, max(since, last_sent) if last_sent else since))
        ),
    )


def _one_per_topic(spikes: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """The strongest spike of each topic (a surge is often seen per hour and per day, in
    items and in stories), topics in the order of their strongest."""
    best: dict[object, dict[str, object]] = {}
    for spike in spikes:
        held = best.get(spike["topic"])
        if held is None or float(spike["score"]) > float(held["score"]):  # type: ignore[arg-type]
            best[spike["topic"]] = spike
    return sorted(best.values(), key=lambda s: -float(s["score"]))  # type: ignore[arg-type]


def _with_news(
    entry: Entry, matches: Sequence[PendingMatch], news: Mapping[int, tuple[bool | None, list[str]]]
) -> Entry:
    """An update with what its new items add: their new sentences, or that they add nothing."""
    if entry.marker != "update":
        return entry
    found = [news.get(m.item_id, (None, [])) for m in {m.item_id: m for m in matches}.values()]
    sentences = tuple(dict.fromkeys(s for _, said in found for s in said))[:MAX_NEWS]
    unchanged = bool(found) and all(adds is False for adds, _ in found)
    return replace(entry, news=sentences, unchanged=unchanged)


#: "New: …" sentences shown for an update
MAX_NEWS = 2


def _entry(
    story_id: int, matches: Sequence[PendingMatch], facts: Mapping[str, object] | None, adding: set[int] | None = None
) -> Entry:
    """One story under one topic (``matches``: its new items' matches of that topic). Its
    headline, link, outlet, time and snippet come from one item: the best match, and for an
    update the best of those that report something new (``adding``), when any does."""
    rule = matches[0].rule_id
    # New to this topic when the subscriber has had none of the story's items under it.
    new = facts is None or not facts["earlier"].get(rule, 0)  # type: ignore[attr-defined]
    pool = matches if new else ([m for m in matches if m.item_id in (adding or ())] or matches)
    best = max(pool, key=lambda m: (m.score, -m.item_id))
    if facts is None:  # an item not yet grouped: a story of its own
        outlets = [best.outlet] if best.outlet else []
        headline = best.title
    else:
        # The story's other outlets follow the best item's own.
        outlets = list(dict.fromkeys([*([best.outlet] if best.outlet else []), *facts["outlets"]]))  # type: ignore[misc]
        headline = best.title or str(facts["headline"])
    shown = outlets[:3]
    terms = tuple(dict.fromkeys(t for m in matches for t in m.terms))
    marks = tuple(dict.fromkeys([*best.marks, *(t for m in matches for t in m.marks)]))
    return Entry(
        story_id=story_id,
        marker="new" if new else "update",
        headline=headline,
        url=best.url,
        outlets=tuple(shown),
        more_sources=max(0, len(outlets) - len(shown)),
        published=best.published_at or best.story_at,
        snippet=best.snippet,
        terms=terms,
        score=best.score,
        items=len({m.item_id for m in matches}),
        marks=marks,
    )


def source_problems(store: Store, now: datetime) -> list[SourceProblem]:
    """Feeds failing now, parked after failing for long, or silent for longer than usual."""
    out = []
    for feed in feed_activity(store.engine):
        failures = feed["consecutive_failures"] or 0
        if feed["parked"] and failures:
            since = feed["last_success_at"]
            out.append(
                SourceProblem(
                    feed["name"],
                    redact(feed["url"]),
                    "parked",
                    f"{failures} failed polls in a row"
                    + (f", last success {since:%Y-%m-%d}" if since else ", never fetched")
                    + f": {redact_text(feed['last_error'] or feed['last_status'])}",
                )
            )
        elif failures:
            out.append(
                SourceProblem(
                    feed["name"],
                    redact(feed["url"]),
                    "failing",
                    f"{feed['last_status']}: {redact_text(feed['last_error'] or 'failed')}",
                )
            )
        else:
            silent = _silence(feed["seen"], now)
            if silent is not None:
                out.append(SourceProblem(feed["name"], redact(feed["url"]), "silent", silent))
    return out


def _silence(seen: Sequence[datetime], now: datetime) -> str | None:
    """A description when the feed's last new item is much older than its usual gap."""
    if len(seen) < 3:
        return None
    gaps = [(a - b).total_seconds() for a, b in pairwise(seen) if a > b]
    if not gaps:
        return None
    usual = timedelta(seconds=statistics.median(gaps))
    quiet = now - seen[0]
    if quiet > max(timedelta(days=1), SILENT_GAPS * usual):
        return f"no new item for {_span(quiet)} (usually one every {_span(usual)})"
    return None


def _span(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    if hours < 48:
        return f"{round(hours)} h"
    return f"{round(hours / 24)} days"
