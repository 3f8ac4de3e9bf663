"""What an update adds to its story, recorded with the item (``item_developments``,
``items.adds_new``; read through the ``story_developments`` view).

Called by ``place_item`` in the item's transaction, so an update and what it adds are
written together. The story's earlier items are read back from the store (the latest
``EARLIER_ITEMS`` of them: a long-running story's knowledge is what it said recently).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from tracker.store.models import Item, ItemDevelopment
from tracker.stories.developments import Development, developments

EARLIER_ITEMS = 50  #: earlier items of the story compared with an update
MAX_TEXT = 20_000  #: characters of each text read: the news is at the top of an article

_EARLIER = (
    select(Item.title, Item.text)
    .where(Item.story_id == bindparam("b_story"), Item.id != bindparam("b_item"))
    .order_by(Item.story_at.desc(), Item.id.desc())
    .limit(EARLIER_ITEMS)
)
_ITEM = select(Item.title, Item.text).where(Item.id == bindparam("b_item"))


def record_developments(conn: Connection, item_id: int, story_id: int) -> list[Development]:
    """Find what update ``item_id`` adds to story ``story_id`` and record it; returns it."""
    row = conn.execute(_ITEM, {"b_item": item_id}).first()
    if row is None:
        return []
    earlier = [
        text
        for title, body in conn.execute(_EARLIER, {"b_story": story_id, "b_item": item_id})
        for text in (title or "", (body or "")[:MAX_TEXT])
    ]
    found = developments((row.text or "")[:MAX_TEXT], earlier, title=row.title or "")
    conn.execute(update(Item).where(Item.id == item_id).values(adds_new=bool(found)))
    if found:
        conn.execute(insert(ItemDevelopment), [_row(item_id, n, d) for n, d in enumerate(found)])
    return found


def _row(item_id: int, position: int, found: Development) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "position": position,
        "sentence": found.sentence,
        "facts": json.dumps([*found.figures, *found.names], ensure_ascii=False),  # the quote is the sentence
        "score": round(found.score, 4),
    }


def story_developments(conn: Connection, story_id: int) -> dict[int, list[dict[str, Any]]]:
    """Item id → what it added (sentence and facts, most telling first), for a story's updates."""
    rows = conn.execute(
        select(ItemDevelopment.item_id, ItemDevelopment.sentence, ItemDevelopment.facts)
        .join(Item, Item.id == ItemDevelopment.item_id)
        .where(Item.story_id == story_id)
        .order_by(ItemDevelopment.item_id, ItemDevelopment.position)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for item, sentence, facts in rows:
        out.setdefault(item, []).append({"sentence": sentence, "facts": json.loads(facts)})
    return out
