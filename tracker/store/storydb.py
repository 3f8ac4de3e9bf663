"""The store's story queries: placing items in stories, loading signatures, reading stories.

Functions over a SQLAlchemy connection or engine; ``Store.add_item`` calls ``place_item``
inside its transaction, so an item and its story are written together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Integer, Text, bindparam, column, func, insert, select, table, update
from sqlalchemy.engine import Connection

from tracker.store.models import Feed, Item, ItemSignature, ItemSource, RuleMatch, StoryMerge, UTCDateTime
from tracker.store.newfacts import record_developments, story_developments
from tracker.stories.index import Assignment
from tracker.stories.signature import Signature


@dataclass(frozen=True, slots=True)
class StoryPlacement:
    """Where a new item goes: its signature, the grouping decision and its story time."""

    signature: Signature
    assignment: Assignment
    at: datetime


_STORY_OF = select(Item.story_id).where(Item.id == bindparam("b_item"))
_PLACE = (
    update(Item)
    .where(Item.id == bindparam("b_item"))
    .values(story_id=bindparam("b_story"), story_role=bindparam("b_role"), story_at=bindparam("b_at"))
)
_SIGNATURE = insert(ItemSignature)


def place_item(conn: Connection, item_id: int, placement: StoryPlacement) -> int:
    """Record an item's story (a new one: its own id) and signature; merge stories it joins.
    Returns the story id.

    Each story is read from the database, through its first item: another process may have
    merged it into an older one since this one's index loaded it.
    """
    found = placement.assignment
    story = item_id
    joined: set[int] = set()  #: the stories, as stored now, that the item joins into one
    if found.story_id is not None:
        # The index's story (the oldest it matched: it survives) and every other it matched,
        # the best match's included, each read back as stored now: a story's id is its first
        # item's id, so the story of that item is where the story is today.
        def now(seen: int) -> int:
            current = conn.execute(_STORY_OF, {"b_item": seen}).scalar()
            return seen if current is None else int(current)

        story = now(found.story_id)
        joined = {now(s) for s in (*found.merges, found.item_id) if s is not None}
    conn.execute(_PLACE, {"b_item": item_id, "b_story": story, "b_role": found.role, "b_at": placement.at})
    joined.discard(story)
    if joined:
        conn.execute(update(Item).where(Item.story_id.in_(joined)).values(story_id=story))
        _record_merges(conn, item_id, story, joined, found)
    sig = placement.signature
    conn.execute(_SIGNATURE, {"item_id": item_id, "minhash": sig.minhash, "terms": json.dumps(sig.to_json())})
    if found.role == "update":
        record_developments(conn, item_id, story)
    return story


def _record_merges(conn: Connection, item_id: int, story: int, joined: set[int], found: Assignment) -> None:
    """One ``story_merges`` row per story merged into ``story``, with the index's evidence
    (a story the index did not list, merged because the store had moved it, gets the item's
    best link)."""
    now = datetime.now(UTC)
    evidence = {link.story_id: link for link in found.merge_links}
    rows = []
    for merged in sorted(joined):
        link = evidence.get(merged)
        score, reason = (link.probability, link.reason) if link else (found.similarity, found.reason)
        rows.append(
            {
                "story_id": story,
                "merged_story_id": merged,
                "item_id": item_id,
                "score": score,
                "reason": reason,
                "at": now,
            }
        )
    conn.execute(insert(StoryMerge), rows)


def story_of(engine: Engine, item_id: int) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(Item.story_id).where(Item.id == item_id)).scalar()


def signatures(
    engine: Engine, since: datetime, until: datetime | None = None, *, after_id: int = 0, batch: int = 1000
) -> Iterator[tuple[int, int, datetime, Signature]]:
    """(item id, story id, story time, signature) of the grouped items in [since, until)
    with an id above ``after_id``."""
    query = (
        select(Item.id, Item.story_id, Item.story_at, ItemSignature.minhash, ItemSignature.terms)
        .join(ItemSignature, ItemSignature.item_id == Item.id)
        .where(Item.story_id.is_not(None), Item.story_at >= since, Item.id > after_id)
        .order_by(Item.id)
    )
    if until is not None:
        query = query.where(Item.story_at < until)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(query)
        for item_id, story_id, at, minhash, terms in result:
            assert story_id is not None and at is not None  # both set together by place_item
            yield item_id, story_id, at, Signature.from_json(minhash, json.loads(terms))


def ungrouped(engine: Engine, batch: int = 200) -> list[tuple[int, str, str, datetime]]:
    """The next ``batch`` items without a story (stored before stories existed), oldest
    first: (id, title, text, story time). Place them before asking for more."""
    at = func.coalesce(Item.published_at, Item.fetched_at)
    query = (
        select(Item.id, Item.title, Item.text, Item.published_at, Item.fetched_at)
        .where(Item.story_id.is_(None))
        .order_by(at, Item.id)
        .limit(batch)
    )
    with engine.connect() as conn:
        return [(r.id, r.title, r.text, story_time(r.published_at, r.fetched_at)) for r in conn.execute(query)]


def place_existing(engine: Engine, item_id: int, placement: StoryPlacement) -> int:
    with engine.begin() as conn:
        return place_item(conn, item_id, placement)


def story_time(published: datetime | None, fetched: datetime) -> datetime:
    """When an item counts in its story: its publication time, unless unknown or later than
    when it was fetched (a feed's wrong clock cannot put it in the future)."""
    return published if published is not None and published <= fetched else fetched


#: the ``stories`` view (created by migration 0003), typed so datetimes come back as UTC
STORIES = table(
    "stories",
    column("story_id", Integer),
    column("headline", Text),
    column("first_seen", UTCDateTime),
    column("last_seen", UTCDateTime),
    column("n_items", Integer),
    column("n_sources", Integer),
    column("topics", Text),
)


def list_stories(
    engine: Engine, *, rule: str | None = None, since: datetime | None = None, limit: int | None = 50
) -> list[dict[str, Any]]:
    """Stories, most recently active first: those with an item since ``since``, and with an
    item matching ``rule``."""
    query = select(STORIES).order_by(STORIES.c.last_seen.desc(), STORIES.c.story_id.desc())
    if since is not None:
        query = query.where(STORIES.c.last_seen >= since)
    if rule is not None:
        tagged = select(Item.story_id).join(RuleMatch, RuleMatch.item_id == Item.id).where(RuleMatch.rule_id == rule)
        query = query.where(STORIES.c.story_id.in_(tagged))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_story_row(r) for r in conn.execute(query).mappings()]


def story_detail(engine: Engine, story_id: int) -> dict[str, Any] | None:
    """A story and its timeline: every item, oldest first, with its outlet, role and topics."""
    with engine.connect() as conn:
        head = conn.execute(select(STORIES).where(STORIES.c.story_id == story_id)).mappings().first()
        if head is None:
            return None
        story = _story_row(head)
        feeds = (
            select(func.count(ItemSource.id)).where(ItemSource.item_id == Item.id).scalar_subquery().label("n_feeds")
        )
        rows = conn.execute(
            select(
                Item.id,
                Item.story_at,
                Item.host,
                Item.site_name,
                Item.title,
                Item.url,
                Item.story_role,
                Item.adds_new,
                feeds,
            )
            .where(Item.story_id == story_id)
            .order_by(Item.story_at, Item.id)
        ).mappings()
        items = [dict(r) for r in rows]
        topics: dict[int, list[str]] = {}
        for item_id, rule_id in conn.execute(
            select(RuleMatch.item_id, RuleMatch.rule_id)
            .join(Item, Item.id == RuleMatch.item_id)
            .where(Item.story_id == story_id)
            .order_by(RuleMatch.rule_id)
        ):
            topics.setdefault(item_id, []).append(rule_id)
        added = story_developments(conn, story_id)
        for item in items:
            item["topics"] = topics.get(item["id"], [])
            item["outlet"] = item["site_name"] or item["host"]
            item["developments"] = added.get(item["id"], [])
        feeds_by_name = conn.execute(
            select(Feed.name)
            .join(ItemSource, ItemSource.feed_id == Feed.id)
            .join(Item, Item.id == ItemSource.item_id)
            .where(Item.story_id == story_id)
            .distinct()
            .order_by(Feed.name)
        ).scalars()
        story["feeds"] = list(feeds_by_name)
        story["items"] = items
        merges = conn.execute(
            select(StoryMerge.merged_story_id, StoryMerge.item_id, StoryMerge.score, StoryMerge.reason, StoryMerge.at)
            .where(StoryMerge.story_id == story_id)
            .order_by(StoryMerge.at, StoryMerge.id)
        ).mappings()
        story["merges"] = [dict(m) for m in merges]
    return story


def _story_row(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["topics"] = [t for t in (out.get("topics") or "").split(",") if t]
    return out
