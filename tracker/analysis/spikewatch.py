"""Looking for volume spikes after a poll cycle, and recording each one once (``spikes``,
read through the ``topic_spikes`` view).

For every topic, two measures (tagged items, and new stories: items that started a story)
are counted per UTC day and per hour from the items' story times, over the history the
detector needs (:mod:`tracker.analysis.spikes`). A spike is recorded when it is in the
current bucket or the one before (older buckets were looked at by earlier cycles; a feed
that backfills last month does not raise alarms about last month). The unique key (topic,
measure, bucket, start) makes a spike fire once however many cycles see it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from tracker.analysis.spikes import BUCKETS, DAILY, HOURLY, Spike, SpikeParams, behind, detect, series
from tracker.core.config import SpikeConfig
from tracker.store.models import Item, RuleMatch
from tracker.store.models import Spike as SpikeRow

logger = logging.getLogger(__name__)

MEASURES = ("items", "stories")
TOP_STORIES = 5
BASELINE_TITLES = 2000  #: titles of the baseline period the rising terms are measured against


@dataclass(frozen=True, slots=True)
class Found:
    """A spike just recorded."""

    spike_id: int
    topic: str
    measure: str
    bucket: str
    spike: Spike
    stories: list[dict[str, Any]]
    terms: list[str]


def params_for(bucket: str, settings: SpikeConfig) -> SpikeParams:
    base = DAILY if bucket == "day" else HOURLY
    return replace(base, sensitivity=settings.sensitivity, min_count=settings.min_count)


def floor(at: datetime, bucket: str) -> datetime:
    at = at.astimezone(UTC)
    return (
        at.replace(minute=0, second=0, microsecond=0)
        if bucket == "hour"
        else at.replace(hour=0, minute=0, second=0, microsecond=0)
    )


def watch(engine: Engine, topics: Iterable[str], now: datetime, settings: SpikeConfig) -> list[Found]:
    """Look for spikes of ``topics`` up to ``now``; record and return the new ones."""
    if not settings.enabled:
        return []
    topics = sorted(set(topics))
    buckets = ["day", "hour"] if settings.hourly else ["day"]
    plans = {b: params_for(b, settings) for b in buckets}
    earliest = min(floor(now, b) - BUCKETS[b] * plans[b].history for b in buckets)
    rows = _rows(engine, topics, earliest)
    found: list[Found] = []
    for bucket, params in plans.items():
        step = BUCKETS[bucket]
        current = floor(now, bucket)
        start = current - step * params.history
        for measure in MEASURES:
            counts = _counts(rows, bucket, measure, start)
            for topic in topics:
                seq = series(counts.get(topic, {}), start, current + step, bucket)
                for spike in detect(seq, start, params):
                    if spike.start >= current - step:
                        recorded = _record(engine, topic, measure, bucket, spike, now)
                        if recorded is not None:
                            found.append(recorded)
    return found


def _rows(engine: Engine, topics: Sequence[str], since: datetime) -> list[tuple[str, datetime, str | None]]:
    """(topic, story time, role) of every tagged, grouped item since ``since``."""
    if not topics:
        return []
    query = (
        select(RuleMatch.rule_id, Item.story_at, Item.story_role)
        .join(Item, Item.id == RuleMatch.item_id)
        .where(RuleMatch.rule_id.in_(topics), Item.story_at >= since)
    )
    with engine.connect() as conn:
        return [(r, at, role) for r, at, role in conn.execute(query) if at is not None]


def _counts(
    rows: Sequence[tuple[str, datetime, str | None]], bucket: str, measure: str, start: datetime
) -> dict[str, dict[datetime, int]]:
    out: dict[str, dict[datetime, int]] = {}
    for topic, at, role in rows:
        if at < start or (measure == "stories" and role != "new"):
            continue
        key = floor(at, bucket)
        per = out.setdefault(topic, {})
        per[key] = per.get(key, 0) + 1
    return out


def _record(engine: Engine, topic: str, measure: str, bucket: str, spike: Spike, now: datetime) -> Found | None:
    """Record ``spike`` unless it already is; returns it with what lies behind it, or None."""
    with engine.connect() as conn:
        known = conn.execute(
            select(SpikeRow.id).where(
                SpikeRow.topic == topic,
                SpikeRow.measure == measure,
                SpikeRow.bucket == bucket,
                SpikeRow.bucket_start == spike.start,
            )
        ).scalar()
    if known is not None:
        return None
    stories, terms = _behind(engine, topic, bucket, spike.start)
    try:
        with engine.begin() as conn:
            spike_id = conn.execute(
                insert(SpikeRow).returning(SpikeRow.id),
                {
                    "topic": topic,
                    "measure": measure,
                    "bucket": bucket,
                    "bucket_start": spike.start,
                    "observed": spike.observed,
                    "expected": round(spike.expected, 3),
                    "score": round(spike.score, 3),
                    "reason": spike.reason,
                    "stories": json.dumps(stories, ensure_ascii=False),
                    "terms": json.dumps(terms, ensure_ascii=False),
                    "detected_at": now,
                },
            ).scalar_one()
    except IntegrityError:  # another worker recorded it first
        return None
    logger.info("spike: %s %s per %s from %s: %s", topic, measure, bucket, spike.start.isoformat(), spike.reason)
    return Found(int(spike_id), topic, measure, bucket, spike, stories, terms)


def _behind(engine: Engine, topic: str, bucket: str, start: datetime) -> tuple[list[dict[str, Any]], list[str]]:
    """The top stories of the topic in the bucket, and the words that rose most against the
    titles of the topic's baseline period (the history before the bucket)."""
    end = start + BUCKETS[bucket]
    history = start - BUCKETS[bucket] * params_for(bucket, SpikeConfig()).baseline
    tagged = (
        select(Item.story_id, Item.title, Item.url, Item.host, Item.story_at)
        .join(RuleMatch, RuleMatch.item_id == Item.id)
        .where(RuleMatch.rule_id == topic, Item.story_id.is_not(None))
    )
    stories: dict[int, dict[str, Any]] = {}
    with engine.connect() as conn:
        for story_id, title, url, host, _ in conn.execute(
            tagged.where(Item.story_at >= start, Item.story_at < end).order_by(Item.story_at, Item.id)
        ):
            assert story_id is not None  # selected so
            story = stories.setdefault(story_id, {"story_id": story_id, "headline": title, "url": url, "hosts": set()})
            story["hosts"].add(host)
            story.setdefault("titles", []).append(title)
        baseline = [
            title
            for (title,) in conn.execute(
                select(Item.title)
                .join(RuleMatch, RuleMatch.item_id == Item.id)
                .where(RuleMatch.rule_id == topic, Item.story_at >= history, Item.story_at < start)
                .order_by(func.random())
                .limit(BASELINE_TITLES)
            )
        ]
    for story in stories.values():
        story["n_sources"] = len(story.pop("hosts") - {None})
        story["terms"] = " ".join(story.pop("titles")).split()
    found = behind(list(stories.values()), baseline, top=TOP_STORIES)
    top = [{k: s[k] for k in ("story_id", "headline", "n_sources", "url")} for s in found.stories]
    return top, [t.term for t in found.terms]
