"""`tracker run`: the long-lived service (APScheduler 3.x, a thin shell over the library).

One coarse poll job claims the feeds that are due (due-ness lives in the database, not
in one job per feed); the first cycle starts at once. Each [[digests]] subscription is a
cron job at its local time in its timezone; digests whose time passed while the service
was down go out at start. Alerts go out at the end of each cycle (and on a tick with nothing
due, for retries and what quiet hours held; ``tracker.service.alerting``). A daily
maintenance job (`tracker maintain`) applies retention and takes a checked backup; its
outcome is reported in /healthz and the metrics (``maintenance_job``).

Each cycle leases the due feeds to this worker (``Store.claim_due``), so several workers on
one PostgreSQL database share the feeds without polling one twice; a dead worker's leases
expire and are taken over. SIGTERM and SIGINT stop claiming work; the running cycle may
finish what is in flight for ``[service] stop_timeout`` seconds, then abandons the rest
(those feeds' leases are released and they are polled again), and the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from tracker.core.config import Config, DigestConfig
from tracker.core.errors import CorruptDatabase, TrackerError
from tracker.core.types import CycleReport
from tracker.core.urls import redact_text
from tracker.digest.delivery import send_all
from tracker.pipeline.cycle import poll_due
from tracker.service.alerting import after_cycle as send_alerts
from tracker.service.app import after_cycle, make_extractor, prepare, rule_titles, validate
from tracker.service.maintenance import MaintenanceReport, maintain
from tracker.service.metrics import Metrics, serve
from tracker.sources.fetching import Fetcher
from tracker.store.database import Store, describe_database_error, utcnow
from tracker.store.lock import ServiceLock, lock_path, worker_name

logger = logging.getLogger(__name__)


def digest_trigger(sub: DigestConfig) -> Any:
    """Every day at the subscription's ``at``, in its own timezone (DST included)."""
    from apscheduler.triggers.cron import CronTrigger

    hour, minute = (int(x) for x in sub.at.split(":"))
    return CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(sub.timezone))


def maintenance_job(config: Config, store: Store, metrics: Metrics) -> MaintenanceReport | None:
    """The service's daily maintenance: ``maintain`` now, its outcome recorded in ``metrics``
    (/healthz and /metrics). A failure is logged in one line and reported there; it does not
    stop the service (polling goes on; /healthz says "degraded"). Returns the report, or None
    when it failed."""
    try:
        report = maintain(config, store, utcnow())
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            message = describe_database_error(exc, config.database_url)[0]
        else:
            message = " ".join(str(exc).split())
            if not isinstance(exc, TrackerError):  # an OSError (disk full), a bug
                message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        message = redact_text(message)
        logger.error("maintenance failed: %s", message)
        logger.debug("maintenance failed", exc_info=exc)
        metrics.maintenance_failed(
            utcnow(), message[:500], "integrity" if isinstance(exc, CorruptDatabase) else "error"
        )
        return None
    metrics.maintenance_succeeded(utcnow(), str(report.backup) if report.backup else None)
    return report


def run_service(config: Config) -> None:
    """Run until SIGTERM/SIGINT. On SQLite, a second service on the same database refuses
    to start (AlreadyRunning)."""
    validate(config)  # a bad rule or subscription stops here, before the lock file or the database
    path = lock_path(config.database_url)
    with ServiceLock(path) if path is not None else nullcontext():
        _serve(config)


def _serve(config: Config) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    logger.info("starting %s", config.summary())
    ready = prepare(config)
    store, matcher = ready.store, ready.matcher
    fetcher = Fetcher(config.fetch)
    extractor = make_extractor(config, matcher)

    tick = max(0.05, min(config.poll.interval_minutes, 5.0))  # minutes between looks for due feeds
    metrics = Metrics(timedelta(minutes=tick))
    metrics_server = (
        serve(metrics, config.service.metrics_host, config.service.metrics_port)
        if config.service.metrics_port
        else None
    )

    owner = worker_name()
    stopping = threading.Event()
    lease = timedelta(minutes=config.service.lease_minutes)
    logger.info("worker %s", owner)

    titles = rule_titles(matcher)

    def cycle_done(report: CycleReport, claimed: int) -> None:
        metrics.observe(report, claimed)
        after_cycle(config, store, matcher, report, metrics)
        logger.info(
            "cycle done feeds=%d new=%d failed=%d seconds=%.1f",
            len(report.feeds),
            report.new_items,
            len(report.failed),
            (report.finished_at - report.started_at).total_seconds(),
        )

    def poll_job() -> None:
        reports = poll_due(
            store,
            fetcher,
            matcher,
            extractor,
            config.poll,
            owner=owner,
            lease=lease,
            batch=config.service.claim_batch,
            grouper=ready.grouper,
            stop=stopping,
            stop_timeout=config.service.stop_timeout,
            on_cycle=cycle_done,
        )
        if not reports and not stopping.is_set():
            metrics.idle(utcnow())
            logger.info("cycle skipped: no feed is due")
            send_alerts(config, store, utcnow(), titles, metrics)  # retries, and what quiet hours held

    def digest_job(sub: DigestConfig) -> None:
        # Through the due check: on the night clocks go back, the trigger fires twice.
        for outcome in send_all(config, store, [sub], force=False):
            logger.info("digest %s: %s", sub.name, outcome.status)

    def catch_up_digests() -> None:
        # Digests whose time passed while the service was down go out now.
        for outcome in send_all(config, store, config.digests, force=False):
            if outcome.status != "not-due":
                logger.info("digest %s (catching up): %s", outcome.name, outcome.status)

    def on_error(event: JobExecutionEvent) -> None:
        logger.error("job %s failed: %r", event.job_id, event.exception)

    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_listener(on_error, EVENT_JOB_ERROR)
    # Wake up often and poll what is due; each feed's own next_poll_at decides.
    scheduler.add_job(
        poll_job,
        IntervalTrigger(minutes=tick),
        id="poll",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=int(tick * 60),
        next_run_time=datetime.now(UTC),
    )

    for sub in config.digests:
        scheduler.add_job(
            digest_job,
            digest_trigger(sub),
            args=[sub],
            id=f"digest:{sub.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
    if config.digests:
        scheduler.add_job(catch_up_digests, id="digest-catch-up", next_run_time=datetime.now(UTC))
    hour, minute = (int(x) for x in config.maintenance.at.split(":"))
    scheduler.add_job(
        maintenance_job,
        CronTrigger(hour=hour, minute=minute, timezone=UTC),
        args=[config, store, metrics],
        id="maintenance",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "signal %s: claiming no more work; in-flight work has %gs to finish",
            signal.Signals(signum).name,
            config.service.stop_timeout,
        )
        stopping.set()
        scheduler.shutdown(wait=True)  # the running cycle ends before the fetcher and pool close

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        scheduler.start()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        extractor.close()
        fetcher.close()
        store.release(owner)
        logger.info("stopped")
    stuck = [t for t in threading.enumerate() if t.name.startswith("fetch") and t.is_alive()]
    if stopping.is_set() and stuck:
        # Abandoned requests may sit in a socket read for up to read_timeout, and the
        # interpreter would wait for them at exit. Nothing is half-written (every article is
        # one transaction; the leases are released): leave now.
        logger.warning("exiting with %d abandoned requests", len(stuck))
        logging.shutdown()
        os._exit(0)
