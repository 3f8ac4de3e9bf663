"""How a feed's poll ends: failed or finished, when it is polled next, its outcome recorded
in the store (at once, or in a batch when nothing new came with it), and its line in the
cycle's report."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from tracker.core.config import PollConfig
from tracker.core.schedule import Plan, cache_hint, failure_weight, plan, retry_after, update_rate
from tracker.core.types import FeedReport, FetchStatus
from tracker.core.urls import redact
from tracker.pipeline.work import Batching, FeedWork, describe
from tracker.store.database import FeedOutcome, FeedState, Store

logger = logging.getLogger("tracker.pipeline.cycle")  # one logger for the whole cycle

RECORD_BATCH = 200  #: feed outcomes without new items written per transaction
RECORD_DELAY = 5.0  #: seconds such an outcome may wait for its batch


class FeedRecords:
    """Ends each feed's poll and records its outcome, for one cycle."""

    def __init__(self, store: Store, poll: PollConfig, clock: Callable[[], datetime], owner: str | None) -> None:
        self.store = store
        self.poll = poll
        self.clock = clock
        self.owner = owner  #: the worker whose leases the feeds are polled under
        #: outcomes without new items, recorded in batches
        self._unrecorded: Batching[tuple[FeedState, FeedOutcome]] = Batching(RECORD_BATCH, RECORD_DELAY)

    # -- faults -------------------------------------------------------------------------------

    def fault(self, work: FeedWork, exc: BaseException) -> None:
        """A feed-level fault: the feed is recorded as failed; the cycle goes on."""
        logger.debug("fault in feed %s", redact(work.feed.url), exc_info=exc)
        if work.finished:
            logger.warning("feed %s: %s (after it was recorded)", redact(work.feed.url), describe(exc))
            return
        self.fail(work, FetchStatus.ERROR, describe(exc))

    # -- feed bookkeeping -------------------------------------------------------------------

    def _schedule(self, work: FeedWork, now: datetime) -> tuple[Plan, float]:
        """When to poll the feed next, and its failure score after this fetch."""
        feed, result = work.feed, work.result
        if work.status.failed:
            score = feed.failure_score + failure_weight(work.status, work.http_status)
            retry = retry_after(work.error_headers, now) if work.http_status in (429, 503) else None
            schedule = plan(
                now,
                self.poll.cadence(),
                failed=True,
                failure_score=score,
                failing_since=feed.failing_since or work.started_at,
                retry=retry,
            )
        else:
            score = 0.0
            headers = result.headers if result else {}
            rate = update_rate(feed.publish_rate, work.queued, work.repeats, feed.last_success_at, now)
            schedule = plan(
                now,
                self.poll.cadence(),
                failed=False,
                rate=rate,
                cache=cache_hint(headers, now, work.ttl),
                retry=retry_after(headers, now),
            )
        return schedule, score

    def _later(self, feed: FeedState, outcome: FeedOutcome) -> None:
        """Nothing new came with it (a 304, a failure): a crash before the batch is written
        only means polling it again. One commit per batch, not per feed."""
        if self._unrecorded.add((feed, outcome)):
            self.flush()

    def overdue(self) -> bool:
        """True when outcomes have waited their batch's delay."""
        return self._unrecorded.overdue()

    def flush(self) -> None:
        batch = self._unrecorded.take()
        try:
            self.store.record_fetches(batch)
            return
        except Exception as exc:  # noqa: BLE001 - find the outcome the store refuses; record the rest
            logger.warning("recording %d feed outcomes failed (%s); recording them one by one", len(batch), exc)
        for feed, outcome in batch:
            try:
                self.store.record_fetches([(feed, outcome)])
            except Exception as exc:  # noqa: BLE001 - the feed stays due and is polled again
                logger.error("feed %s: could not record its outcome: %s", redact(feed.url), describe(exc))

    def fail(self, work: FeedWork, status: FetchStatus, error: str) -> None:
        work.status, work.error = status, error
        logger.warning(
            "feed failed name=%r url=%s status=%s error=%s", work.feed.name, redact(work.feed.url), status, error
        )
        self.finish(work)

    def maybe_finish(self, work: FeedWork) -> None:
        if work.pending == 0 and work.result is not None and not work.status.failed:
            if work.faults:
                n = len(work.faults)
                work.status = FetchStatus.ERROR
                work.error = f"{n} {'entry' if n == 1 else 'entries'} failed; first: {work.faults[0]}"
            self.finish(work)

    def finish(self, work: FeedWork) -> None:
        if work.finished:
            return
        work.finished = True
        result = work.result
        work.seconds = time.monotonic() - work.t0
        now = self.clock()
        feed = work.feed
        try:
            schedule, score = self._schedule(work, now)
        except Exception:  # noqa: BLE001 - whatever a server sent: one bad feed never ends the cycle
            logger.warning("feed %r: could not schedule from its response; using the base interval", feed.name)
            fallback = Plan(now + self.poll.cadence().interval, rate=feed.publish_rate, reason="new")
            schedule, score = fallback, feed.failure_score
        outcome = FeedOutcome(
            status=work.status,
            started_at=work.started_at,
            duration_ms=int(work.seconds * 1000),
            next_poll_at=schedule.next_poll_at,
            publish_rate=schedule.rate,
            failure_score=score,
            parked=schedule.parked,
            schedule_reason=schedule.reason,
            owner=self.owner,
            http_status=result.status_code if result else work.http_status,
            size=len(result.body) if result and result.body is not None else None,
            error=work.error,
            etag=result.etag if result else None,
            last_modified=result.last_modified if result else None,
            body_hash=hashlib.sha256(result.body).hexdigest() if result and result.body is not None else None,
            title=work.title,
            bozo_reason=work.bozo,
            entries=work.entries,
            new_items=work.new,
        )
        if work.status is FetchStatus.OK:
            try:
                self.store.record_fetch(work.feed, outcome)  # after its articles, at once
            except Exception as exc:  # noqa: BLE001 - then as failed, with nothing of its response
                logger.warning("feed %s: could not record its fetch: %s", redact(feed.url), describe(exc))
                work.status, work.error = FetchStatus.ERROR, f"could not record: {describe(exc)}"
                outcome = replace(outcome, status=work.status, error=work.error, title=None, bozo_reason=None)
                self._later(work.feed, outcome)
        else:
            self._later(work.feed, outcome)
        if schedule.parked and not feed.parked:
            logger.warning(
                "feed parked name=%r url=%s: failing since %s", feed.name, redact(feed.url), feed.failing_since
            )
        logger.info(
            "feed done name=%r status=%s entries=%d new=%d repeats=%d extracted=%d fallbacks=%d article_failures=%d "
            "ms=%d next=%s (%s)",
            work.feed.name,
            work.status.value,
            work.entries,
            work.new,
            work.repeats,
            work.extracted,
            work.fallbacks,
            work.article_failures,
            outcome.duration_ms,
            schedule.next_poll_at.isoformat(timespec="seconds"),
            schedule.reason,
        )

    @staticmethod
    def report(work: FeedWork) -> FeedReport:
        return FeedReport(
            feed_id=work.feed.id,
            name=work.feed.name,
            url=work.feed.url,
            status=work.status,
            entries=work.entries,
            new=work.new,
            extracted=work.extracted,
            fallbacks=work.fallbacks,
            article_failures=work.article_failures,
            error=work.error,
            bozo_reason=work.bozo,
            seconds=work.seconds,
        )
