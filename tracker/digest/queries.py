"""The store's digest queries: what a subscription has not received yet, the outbox of
digest runs, and the feed history the source-health section needs.

A digest run is written in one transaction together with a row per (item, topic) it
carries (``digest_deliveries``, keyed by subscription, item and rule): an item can be in
one digest of a subscription only. A failed send deletes those rows again, so the items
are pending for the next run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tracker.store.models import (
    DigestDelivery,
    DigestLock,
    DigestRun,
    Feed,
    FetchLog,
    Item,
    ItemDevelopment,
    ItemSource,
    RuleMatch,
    Spike,
)
from tracker.store.storydb import STORIES


@dataclass(frozen=True, slots=True)
class PendingMatch:
    item_id: int
    rule_id: str
    score: float
    terms: tuple[str, ...]
    snippet: str
    story_id: int | None
    title: str
    url: str
    outlet: str | None
    published_at: datetime | None
    story_at: datetime | None
    marks: tuple[str, ...] = ()  #: what identifies the match, to highlight (see ``identifying``)


#: an entity mention as common as this in English (zipf) names nothing in particular ("US", "China")
GENERIC_ZIPF = 5.0
#: a rule's single word is worth highlighting only when rarer than this ("harbour", not "talks")
RARE_WORD_ZIPF = 4.0
#: a mention that starts with one of these refers back to a name ("the automaker"); the name is marked
_REFERRING = frozenset({"the", "a", "an", "its", "their", "this", "that", "these", "those", "his", "her"})


def identifying(evidence: str | None) -> tuple[str, ...]:
    """The words of a match worth highlighting: the entities it found (a name, not a word as
    common as "US"), the phrases of several words ("joint venture") and rare single words;
    never a rule's common context words ("market", "talks"), which are everywhere in news."""
    try:
        found = json.loads(evidence or "[]")
    except ValueError:
        return ()
    from wordfreq import zipf_frequency

    marks: dict[str, str] = {}  #: lower-cased -> as first seen
    for e in found if isinstance(found, list) else []:
        text, term = str(e.get("text", "")).strip(), str(e.get("term", ""))
        if not text or text.lower() in marks:
            continue
        words = text.split()
        limit = GENERIC_ZIPF if term.startswith("@") else RARE_WORD_ZIPF
        if words[0].lower() in _REFERRING:  # "the company", "its chief": a reference, not a name
            continue
        if len(words) > 1 or zipf_frequency(text.lower(), "en") < limit:
            marks[text.lower()] = text
    return tuple(marks.values())


def pending_matches(
    engine: Engine, name: str, rules: Sequence[str] | None, min_score: float, since: datetime
) -> list[PendingMatch]:
    """Matches of items stored since ``since`` that subscription ``name`` has not received."""
    delivered = exists().where(
        DigestDelivery.name == name,
        DigestDelivery.item_id == RuleMatch.item_id,
        DigestDelivery.rule_id == RuleMatch.rule_id,
    )
    query = (
        select(
            RuleMatch.item_id,
            RuleMatch.rule_id,
            RuleMatch.score,
            RuleMatch.terms,
            RuleMatch.snippet,
            RuleMatch.evidence,
            Item.story_id,
            Item.title,
            Item.url,
            func.coalesce(Item.site_name, Item.host).label("outlet"),
            Item.published_at,
            Item.story_at,
        )
        .join(Item, Item.id == RuleMatch.item_id)
        .where(Item.fetched_at >= since, RuleMatch.score >= min_score, ~delivered)
        .order_by(RuleMatch.rule_id, Item.id)
    )
    if rules is not None:
        query = query.where(RuleMatch.rule_id.in_(list(rules)))
    with engine.connect() as conn:
        return [
            PendingMatch(
                r.item_id,
                r.rule_id,
                r.score,
                tuple(json.loads(r.terms)),
                r.snippet,
                r.story_id,
                r.title,
                r.url,
                r.outlet,
                r.published_at,
                r.story_at,
                identifying(r.evidence),
            )
            for r in conn.execute(query)
        ]


def story_facts(engine: Engine, story_ids: Iterable[int], name: str, since: datetime) -> dict[int, dict[str, Any]]:
    """Per story: headline, n_sources, its outlets (most items first), and per rule how many
    of its items that rule tags were already known to subscription ``name``: delivered to it,
    or stored before ``since``."""
    ids = sorted(set(story_ids))
    out: dict[int, dict[str, Any]] = {}
    if not ids:
        return out
    with engine.connect() as conn:
        for row in conn.execute(select(STORIES).where(STORIES.c.story_id.in_(ids))).mappings():
            out[row["story_id"]] = {**row, "outlets": [], "earlier": {}}
        outlet = func.coalesce(Item.site_name, Item.host)
        for story_id, outlet_name, _n in conn.execute(
            select(Item.story_id, outlet, func.count())
            .where(Item.story_id.in_(ids), outlet.is_not(None))
            .group_by(Item.story_id, outlet)
            .order_by(Item.story_id, func.count().desc(), outlet)
        ):
            if story_id is not None:
                out[story_id]["outlets"].append(outlet_name)
        delivered = exists().where(
            DigestDelivery.name == name,
            DigestDelivery.item_id == RuleMatch.item_id,
            DigestDelivery.rule_id == RuleMatch.rule_id,
        )
        for story_id, rule_id, n in conn.execute(
            select(Item.story_id, RuleMatch.rule_id, func.count())
            .join(RuleMatch, RuleMatch.item_id == Item.id)
            .where(Item.story_id.in_(ids), or_(delivered, Item.fetched_at < since))
            .group_by(Item.story_id, RuleMatch.rule_id)
        ):
            if story_id is not None:
                out[story_id]["earlier"][rule_id] = n
    return out


# -- the outbox ------------------------------------------------------------------------------


def first_since(engine: Engine, name: str) -> datetime | None:
    """Where the subscription's first digest started looking: nothing older is ever sent."""
    with engine.connect() as conn:
        return conn.execute(select(func.min(DigestRun.since)).where(DigestRun.name == name)).scalar()


def last_sent(engine: Engine, name: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(
            select(func.max(DigestRun.sent_at)).where(DigestRun.name == name, DigestRun.status.in_(("sent", "empty")))
        ).scalar()


def record_run(
    engine: Engine,
    name: str,
    *,
    since: datetime,
    now: datetime,
    recipients: Sequence[str],
    deliveries: Iterable[tuple[int, str]],
    n_stories: int,
    status: str = "pending",
) -> int:
    """Open a run and claim its (item, rule) pairs, in one transaction; returns the run id."""
    pairs = sorted(set(deliveries))
    with engine.begin() as conn:
        run_id: int = conn.execute(
            insert(DigestRun)
            .values(
                name=name,
                status=status,
                since=since,
                created_at=now,
                sent_at=now if status == "empty" else None,
                attempts=0,
                recipients=", ".join(recipients),
                n_stories=n_stories,
                n_items=len({i for i, _ in pairs}),
            )
            .returning(DigestRun.id)
        ).scalar_one()
        if pairs:
            conn.execute(
                insert(DigestDelivery), [{"name": name, "item_id": i, "rule_id": r, "run_id": run_id} for i, r in pairs]
            )
    return run_id


def attach_message(engine: Engine, run_id: int, message_id: str, subject: str, message: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(DigestRun)
            .where(DigestRun.id == run_id)
            .values(message_id=message_id, subject=subject, message=message)
        )


def mark_sent(engine: Engine, run_id: int, now: datetime, attempts: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(DigestRun)
            .where(DigestRun.id == run_id)
            .values(status="sent", sent_at=now, attempts=DigestRun.attempts + attempts, error=None)
        )


def mark_failed(engine: Engine, run_id: int, error: str, attempts: int) -> None:
    """The send failed: record why, and release the run's items for the next digest."""
    with engine.begin() as conn:
        conn.execute(
            update(DigestRun)
            .where(DigestRun.id == run_id)
            .values(status="failed", error=error, attempts=DigestRun.attempts + attempts)
        )
        conn.execute(delete(DigestDelivery).where(DigestDelivery.run_id == run_id))


def claim_unsent(engine: Engine, name: str, now: datetime, stale_before: datetime) -> list[dict[str, Any]]:
    """Runs of ``name`` recorded but not confirmed sent, and older than any send still in
    progress could be: a crash happened around their send. Each is claimed atomically (its
    ``created_at`` moves to ``now``), so two processes never re-send the same run at once."""
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                select(DigestRun.id)
                .where(DigestRun.name == name, DigestRun.status == "pending", DigestRun.created_at < stale_before)
                .order_by(DigestRun.id)
            ).scalars()
        )
    claimed = []
    for run_id in ids:
        with engine.begin() as conn:
            taken = conn.execute(
                update(DigestRun)
                .where(DigestRun.id == run_id, DigestRun.status == "pending", DigestRun.created_at < stale_before)
                .values(created_at=now)
            ).rowcount
            if taken == 1:
                row = (
                    conn.execute(
                        select(DigestRun.id, DigestRun.message, DigestRun.recipients, DigestRun.message_id).where(
                            DigestRun.id == run_id
                        )
                    )
                    .mappings()
                    .one()
                )
                claimed.append(dict(row))
    return claimed


def note_resend_failure(engine: Engine, run_id: int, error: str, attempts: int) -> None:
    """A re-send failed: the run stays pending with its items (the message may have reached
    the reader before the crash), to be tried again by the next run."""
    with engine.begin() as conn:
        conn.execute(
            update(DigestRun).where(DigestRun.id == run_id).values(error=error, attempts=DigestRun.attempts + attempts)
        )


def runs(engine: Engine, name: str | None = None) -> list[dict[str, Any]]:
    query = select(DigestRun).order_by(DigestRun.id)
    if name is not None:
        query = query.where(DigestRun.name == name)
    with engine.connect() as conn:
        return [{k: v for k, v in r.items() if k != "message"} for r in conn.execute(query).mappings()]


# -- source health ---------------------------------------------------------------------------


def feed_activity(engine: Engine, recent: int = 30) -> list[dict[str, Any]]:
    """Every active feed with its fetch state and the times its latest new items were seen."""
    with engine.connect() as conn:
        feeds = [
            dict(r)
            for r in conn.execute(
                select(
                    Feed.id,
                    Feed.name,
                    Feed.url,
                    Feed.last_status,
                    Feed.last_error,
                    Feed.consecutive_failures,
                    Feed.parked,
                    Feed.last_success_at,
                    Feed.next_poll_at,
                    Feed.created_at,
                )
                .where(Feed.active.is_(True))
                .order_by(Feed.name)
            ).mappings()
        ]
        for feed in feeds:
            feed["seen"] = list(
                conn.execute(
                    select(ItemSource.seen_at)
                    .where(ItemSource.feed_id == feed["id"])
                    .order_by(ItemSource.seen_at.desc())
                    .limit(recent)
                ).scalars()
            )
    return feeds


def fetch_stats(engine: Engine, since: datetime) -> dict[str, Any]:
    """Fetches, failures, new items and the latest fetch since ``since`` (for `tracker status`)."""
    with engine.connect() as conn:
        fetches, failed, new, latest = conn.execute(
            select(
                func.count(FetchLog.id),
                func.count(FetchLog.id).filter(FetchLog.error.is_not(None)),
                func.coalesce(func.sum(FetchLog.new_items), 0),
                func.max(FetchLog.started_at),
            ).where(FetchLog.started_at >= since)
        ).one()
        last = conn.execute(select(func.max(FetchLog.started_at))).scalar()
        items = conn.execute(select(func.count(Item.id)).where(Item.fetched_at >= since)).scalar_one()
    return {"fetches": fetches, "failed": failed, "new_items": int(new), "items": items, "last_fetch": last or latest}


def pending_count(engine: Engine, name: str, rules: Sequence[str], min_score: float, since: datetime) -> int:
    return len({p.item_id for p in pending_matches(engine, name, rules, min_score, since)})


# -- one sender at a time --------------------------------------------------------------------


def lock_digest(engine: Engine, name: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take subscription ``name``'s lock for ``owner`` until ``until``; False if another
    sender holds it. A lock whose holder died expires at its ``until``."""
    with engine.begin() as conn:
        exists_ = conn.execute(select(DigestLock.name).where(DigestLock.name == name)).first()
        if exists_ is None:
            with suppress(IntegrityError), conn.begin_nested():  # another sender created it first
                conn.execute(insert(DigestLock).values(name=name))
        taken = conn.execute(
            update(DigestLock)
            .where(DigestLock.name == name, or_(DigestLock.until.is_(None), DigestLock.until <= now))
            .values(owner=owner, until=until)
        )
        return bool(taken.rowcount)


def unlock_digest(engine: Engine, name: str, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(DigestLock).where(DigestLock.name == name, DigestLock.owner == owner).values(owner=None, until=None)
        )


def item_news(engine: Engine, item_ids: Iterable[int]) -> dict[int, tuple[bool | None, list[str]]]:
    """Item id → (whether it adds to its story, the sentences that do): for updates, what
    they report that their story had not (``items.adds_new``, ``item_developments``)."""
    ids = sorted(set(item_ids))
    out: dict[int, tuple[bool | None, list[str]]] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for item_id, adds in conn.execute(select(Item.id, Item.adds_new).where(Item.id.in_(chunk))):
                out[item_id] = (adds, [])
            rows = conn.execute(
                select(ItemDevelopment.item_id, ItemDevelopment.sentence)
                .where(ItemDevelopment.item_id.in_(chunk))
                .order_by(ItemDevelopment.item_id, ItemDevelopment.position)
            )
            for item_id, sentence in rows:
                out[item_id][1].append(sentence)
    return out


def spikes_since(engine: Engine, topics: Sequence[str], since: datetime) -> list[dict[str, Any]]:
    """The spikes of ``topics`` recorded since ``since`` (``topic_spikes``), newest first; a
    topic's daily and hourly spikes of one surge are all listed (the digest shows each once
    per topic and measure)."""
    query = (
        select(Spike)
        .where(Spike.topic.in_(list(topics)), Spike.detected_at >= since)
        .order_by(Spike.detected_at.desc(), Spike.id.desc())
    )
    out = []
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            spike = dict(row)
            spike["stories"] = json.loads(spike["stories"])
            spike["terms"] = json.loads(spike["terms"])
            out.append(spike)
    return out
