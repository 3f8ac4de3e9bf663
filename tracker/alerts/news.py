"""The "New:" line of an update alert: what the update adds to its story, as recorded with
the item when it was stored (``item_developments``); for an update stored before those were
recorded, worked out now by ``tracker.stories.developments`` over the texts in the store.
Best effort: when nothing is found, or that fails, the update goes out without the line."""

from __future__ import annotations

import logging

from tracker.alerts.events import Developments
from tracker.alerts.queries import update_texts
from tracker.store.database import Store

logger = logging.getLogger(__name__)


def _recorded(store: Store, item_id: int) -> list[str] | None:
    """The sentences recorded for an update (empty: it adds nothing), or None when nothing was
    recorded for it (an item stored before migration 0009)."""
    from sqlalchemy import select

    from tracker.store.models import Item, ItemDevelopment

    with store.engine.connect() as conn:
        adds = conn.execute(select(Item.adds_new).where(Item.id == item_id)).scalar()
        if adds is None:
            return None
        rows = conn.execute(
            select(ItemDevelopment.sentence)
            .where(ItemDevelopment.item_id == item_id)
            .order_by(ItemDevelopment.position)
        )
        return [str(r) for (r,) in rows]


def store_developments(store: Store, limit: int = 2) -> Developments:
    """A ``Developments`` function reading the update and its story's earlier items from ``store``."""

    def new_in(item_id: int) -> str | None:
        recorded = _recorded(store, item_id)
        if recorded is not None:
            return " … ".join(" ".join(s.split()) for s in recorded[:limit])[:400] or None
        try:
            from tracker.stories.developments import developments

            texts = update_texts(store.engine, item_id)
            if texts is None or not texts[2]:
                return None
            title, text, earlier = texts
            found = developments(text, earlier, title=title, limit=limit)
        except Exception as exc:  # noqa: BLE001 - an alert goes out without "New:" rather than not at all
            logger.warning("alerts: what item %d adds could not be worked out: %s", item_id, exc)
            return None
        return " … ".join(" ".join(d.sentence.split()) for d in found)[:400] or None

    return new_in
