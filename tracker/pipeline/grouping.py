"""Story grouping against the store: keeps a ``StoryIndex`` of the recent window in step
with the database and places each new item.

The index holds the items whose story time is within the window of the newest item it
was asked about; an older item (a feed backfilling last month) makes it load that
stretch from the store first. Items written by another process (a second poller) are
picked up by ``refresh``, which the pipeline calls at the start of every cycle.
"""

from __future__ import annotations

import logging
from datetime import datetime

from tracker.store.database import Store
from tracker.store.storydb import StoryPlacement, place_existing, signatures, story_of, ungrouped
from tracker.stories.features import PairModel, default_model
from tracker.stories.index import Assignment, StoryIndex, StoryParams
from tracker.stories.signature import Signature, signature

logger = logging.getLogger(__name__)


class StoryGrouper:
    def __init__(self, store: Store, params: StoryParams | None = None, model: PairModel | None = None) -> None:
        self.store = store
        self.params = params or StoryParams()
        self.model = model or default_model()  #: the learned pair decision (the shipped one by default)
        self.index = StoryIndex(self.params, model=self.model)
        self._loaded_from: datetime | None = None  #: the index holds every item from here on
        self._last_id = 0  #: the highest item id loaded from the store (not placed: others may be below)

    def _load(self, since: datetime, until: datetime | None = None, after_id: int = 0) -> None:
        for item_id, story_id, at, sig in signatures(self.store.engine, since, until, after_id=after_id):
            if item_id not in self.index:
                self.index.add(item_id, story_id, at, sig)
            self._last_id = max(self._last_id, item_id)

    def _cover(self, when: datetime) -> None:
        """Make sure the index holds every stored item within the window of ``when``."""
        since = when - self.params.window
        if self._loaded_from is None:
            self._load(since)
        elif since < self._loaded_from:
            self._load(since, self._loaded_from)
        else:
            return
        self._loaded_from = since

    def reset(self) -> None:
        """Forget the index (after a write that was rolled back: it may hold items that were
        never stored); it is loaded again from the store when next asked."""
        self.index = StoryIndex(self.params, model=self.model)
        self._loaded_from = None
        self._last_id = 0

    def refresh(self, now: datetime) -> None:
        """Forget what fell out of the window; load what other writers stored meanwhile."""
        horizon = now - 2 * self.params.window
        self.index.prune(horizon)
        if self._loaded_from is not None:
            self._loaded_from = max(self._loaded_from, horizon)
            self._load(self._loaded_from, after_id=self._last_id)

    def place(self, sig: Signature, when: datetime) -> StoryPlacement:
        """The story a new item with ``sig`` at ``when`` goes to (not yet recorded)."""
        self._cover(when)
        return StoryPlacement(sig, self.index.assign(sig, when), when)

    def placed(self, item_id: int, placement: StoryPlacement, story: int | None = None) -> None:
        """Tell the index that the store took ``placement`` for ``item_id`` (in ``story``;
        when not given: the item's own for a new story, else read back from the store, which
        decides joins, see ``place_item``)."""
        found: Assignment = placement.assignment
        if story is None:
            story = item_id if found.story_id is None else (story_of(self.store.engine, item_id) or item_id)
        stale = set(found.merges)
        if found.story_id is not None and found.story_id != story:
            stale.add(found.story_id)  # merged elsewhere by another process
        if stale:
            self.index.merge(stale, story)
        self.index.add(item_id, story, placement.at, placement.signature)

    def catch_up(self) -> int:
        """Group the stored items that have no story yet, oldest first. Returns how many."""
        done = 0
        while batch := ungrouped(self.store.engine):
            for item_id, title, text, at in batch:
                placement = self.place(signature(title, text), at)
                story = place_existing(self.store.engine, item_id, placement)
                self.placed(item_id, placement, story)
                done += 1
            # Oldest first: what is older than the window of this batch's last item is done with.
            self.index.prune(batch[-1][3] - 2 * self.params.window)
        if done:
            logger.info("grouped %d stored items into stories", done)
        return done
