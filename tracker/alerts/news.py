"""The "New:" line of an update alert: what the update adds to its story, from
``tracker.stories.developments`` over the texts in the store. Best effort: when that finds
nothing, or fails, the update goes out without the line."""

from __future__ import annotations

import logging

from tracker.alerts.events import Developments
from tracker.alerts.queries import update_texts
from tracker.store.database import Store

logger = logging.getLogger(__name__)


def store_developments(store: Store, limit: int = 2) -> Developments:
    """A ``Developments`` function reading the update and its story's earlier items from ``store``."""

    def new_in(item_id: int) -> str | None:
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
