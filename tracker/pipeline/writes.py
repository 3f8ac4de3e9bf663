"""The write side of a cycle: extracted articles stored in batches, each placed in a story,
and counted for the report once committed. An article is done only after its transaction
commits, and a feed is finished (its conditional-GET state recorded) only once all of its
articles are done, so a crash mid-cycle makes the next cycle fetch it again instead of
losing entries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from tracker.core.text import MAX_TEXT_CHARS, truncate_text
from tracker.core.types import Article, Match, TextSource
from tracker.pipeline.grouping import StoryGrouper
from tracker.pipeline.processing import Processed
from tracker.pipeline.records import FeedRecords
from tracker.pipeline.work import ArticleWork, Batching, entry_fault, stage
from tracker.store.database import Batch, Store
from tracker.store.storydb import StoryPlacement, story_time
from tracker.stories.signature import Signature

logger = logging.getLogger("tracker.pipeline.cycle")  # one logger for the whole cycle

WRITE_BATCH = 64  #: articles stored per transaction
WRITE_DELAY = 0.5  #: seconds an extracted article may wait for its batch


@dataclass(slots=True)
class _Written:
    """An article stored by ``ArticleWriter._write``, counted once its transaction is committed."""

    art: ArticleWork
    article: Article
    matches: list[Match]
    created: bool
    role: str | None  #: its story role, when new


class ArticleWriter:
    """Stores a cycle's extracted articles and ends each article's part in the cycle.

    ``in_flight`` maps the canonical link of each article not yet done to its work (shared
    with the feed stage, which finds there the entries another feed already brought).
    """

    def __init__(
        self,
        store: Store,
        grouper: StoryGrouper,
        records: FeedRecords,
        clock: Callable[[], datetime],
        in_flight: dict[str, ArticleWork],
    ) -> None:
        self.store = store
        self.grouper = grouper
        self.records = records
        self.clock = clock
        self.in_flight = in_flight
        self.topics: dict[str, list[str]] = {}
        self.roles: dict[str, int] = {}
        #: extracted, waiting for their batch
        self._unwritten: Batching[tuple[ArticleWork, Processed]] = Batching(WRITE_BATCH, WRITE_DELAY)

    def __len__(self) -> int:
        """Articles waiting for their batch."""
        return len(self._unwritten)

    def overdue(self) -> bool:
        """True when the batch has waited long enough."""
        return self._unwritten.overdue()

    def add(self, art: ArticleWork, processed: Processed) -> None:
        """Keep ``art`` for the next batch; store the batch when it is full."""
        if self._unwritten.add((art, processed)):
            self.flush()

    def flush(self) -> None:
        """Store the extracted articles waiting for their batch, in one transaction; when that
        fails, one by one (each its own transaction), so one bad article costs only itself."""
        batch = self._unwritten.take()
        if not batch:
            return
        try:
            try:
                with self.store.batch() as writer:
                    written = [self._write(art, *processed, writer=writer) for art, processed in batch]
            except Exception as exc:  # noqa: BLE001 - the batch is rolled back: nothing of it was stored
                logger.warning("storing a batch of %d articles failed (%s); storing them one by one", len(batch), exc)
                self.grouper.reset()  # it may have indexed items that were rolled back
                written = []
                for art, processed in batch:
                    try:
                        written.append(self._write(art, *processed, writer=None))
                    except Exception as one:  # noqa: BLE001 - one article: skipped, counted, its feed failed
                        entry_fault(art.work, art.entry, one)
            for done in written:
                self._count(done)
        finally:
            for art, _ in batch:
                self.done(art)

    def _write(
        self, art: ArticleWork, article: Article, matches: list[Match], sig: Signature, *, writer: Batch | None
    ) -> _Written:
        """Store one article (in ``writer``'s transaction, or its own) and place it in a story."""
        work = art.work
        if len(article.text) > MAX_TEXT_CHARS:
            article = replace(article, text=truncate_text(article.text))
        raw = art.page.body if art.page and article.text_source is TextSource.EXTRACTED else None
        when = story_time(article.published, self.clock())
        placements: list[StoryPlacement] = []

        def place() -> StoryPlacement:
            with stage("story placement"):
                placements.append(self.grouper.place(sig, when))
            return placements[-1]

        feed_id, guid = work.feed.id, art.entry.guid or art.link
        with stage("store"):
            if writer is not None:
                item_id, created, story = writer.add_item(
                    article, matches, feed_id=feed_id, entry_url=art.link, guid=guid, raw_html=raw, story=place
                )
            else:
                item_id, created = self.store.add_item(
                    article, matches, feed_id=feed_id, entry_url=art.link, guid=guid, raw_html=raw, story=place()
                )
                story = None
        if created and placements:
            with stage("story placement"):
                self.grouper.placed(item_id, placements[-1], story)
        for other, entry in art.also:
            with stage("store"):
                if writer is not None:
                    writer.link_source(item_id, other.feed.id, art.link, entry.guid or art.link)
                else:
                    self.store.link_source(item_id, other.feed.id, art.link, entry.guid or art.link)
        role = placements[-1].assignment.role if created and placements else None
        return _Written(art, article, matches, created, role)

    def _count(self, done: _Written) -> None:
        """After the commit: the article's feed and the cycle's report count it."""
        work = done.art.work
        if done.article.text_source is TextSource.EXTRACTED:
            work.extracted += 1
        else:
            work.fallbacks += 1
        if done.created:
            if done.role is not None:
                self.roles[done.role] = self.roles.get(done.role, 0) + 1
            work.new += 1
            for m in done.matches:
                self.topics.setdefault(m.rule, []).append(done.article.title)

    def done(self, art: ArticleWork) -> None:
        """The article is stored or given up: the feeds that brought it may now finish."""
        self.in_flight.pop(art.link, None)
        works = [art.work] + [w for w, _ in art.also]
        for work in works:
            work.pending -= 1
        for work in {id(w): w for w in works}.values():
            try:
                self.records.maybe_finish(work)
            except Exception as exc:  # noqa: BLE001 - recording one feed
                self.records.fault(work, exc)
