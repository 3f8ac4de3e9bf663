"""`tracker run`: the long-lived service (APScheduler 3.x, a thin shell over the library).

One coarse poll job claims the feeds that are due (due-ness lives in the database, not
in one job per feed); the first cycle starts at once. SIGTERM and SIGINT stop the
scheduler after the running cycle finishes.
"""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from types import FrameType

from .app import prepare
from .config import Config
from .fetching import Fetcher
from .pipeline import run_cycle
from .store import utcnow
from .workers import Extractor

logger = logging.getLogger(__name__)


def run_service(config: Config) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    logger.info("starting %s", config.summary())
    ready = prepare(config)
    store, matcher = ready.store, ready.matcher
    fetcher = Fetcher(config.fetch)
    extractor = Extractor(matcher, config.fetch.extract_workers)

    def poll_job() -> None:
        due = store.feeds(due_at=utcnow())
        if not due:
            logger.info("cycle skipped: no feed is due")
            return
        report = run_cycle(store, fetcher, matcher, extractor, config.poll, feeds=due, grouper=ready.grouper)
        logger.info(
            "cycle done feeds=%d new=%d failed=%d seconds=%.1f",
            len(report.feeds),
            report.new_items,
            len(report.failed),
            (report.finished_at - report.started_at).total_seconds(),
        )

    def on_error(event: JobExecutionEvent) -> None:
        logger.error("job %s failed: %r", event.job_id, event.exception)

    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_listener(on_error, EVENT_JOB_ERROR)
    # Wake up often and poll what is due; each feed's own next_poll_at decides.
    tick = max(1.0, min(config.poll.interval_minutes, 5.0))
    scheduler.add_job(
        poll_job,
        IntervalTrigger(minutes=tick),
        id="poll",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=int(tick * 60),
        next_run_time=datetime.now(UTC),
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: finishing the running job, then stopping", signal.Signals(signum).name)
        scheduler.shutdown(wait=True)  # the running cycle ends before the fetcher and pool close

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        scheduler.start()
    finally:
        extractor.close()
        fetcher.close()
        logger.info("stopped")
