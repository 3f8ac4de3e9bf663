"""Health and Prometheus metrics for `tracker run`, on a loopback HTTP port ([service]
metrics_port; off by default).

``/metrics`` is the Prometheus text format (prometheus-client, on a registry of our own);
``/healthz`` answers 200 with a JSON summary while the poll job runs on time, 503 when its
last run is older than three poll ticks (or it has not run since start).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from .types import CycleReport


class Metrics:
    def __init__(self, interval: timedelta) -> None:
        self.interval = interval
        self.registry = CollectorRegistry()
        self.cycles = Counter("tracker_cycles", "Poll cycles finished.", registry=self.registry)
        self.items = Counter("tracker_items_stored", "New articles stored.", registry=self.registry)
        self.failures = Counter(
            "tracker_feed_failures", "Feed fetches that failed, by kind.", ["kind"], registry=self.registry
        )
        self.fetch_seconds = Histogram(
            "tracker_feed_fetch_seconds",
            "Time to fetch and process one feed.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.cycle_seconds = Gauge("tracker_last_cycle_seconds", "Duration of the last cycle.", registry=self.registry)
        self.last_cycle = Gauge(
            "tracker_last_cycle_timestamp_seconds", "When the last cycle finished.", registry=self.registry
        )
        self.due = Gauge("tracker_feeds_due", "Feeds due at the start of the last cycle.", registry=self.registry)
        self.started = datetime.now(UTC)
        self._last: CycleReport | None = None
        self._checked: datetime | None = None  #: the last poll tick, with or without a cycle

    def observe(self, report: CycleReport, due: int) -> None:
        self.cycles.inc()
        self.items.inc(report.new_items)
        for feed in report.failed:
            self.failures.labels(kind=feed.status.value).inc()
        for feed in report.feeds:
            self.fetch_seconds.observe(feed.seconds)
        self.cycle_seconds.set((report.finished_at - report.started_at).total_seconds())
        self.last_cycle.set(report.finished_at.timestamp())
        self.due.set(due)
        self._last = report
        self._checked = report.finished_at

    def idle(self, now: datetime) -> None:
        """A poll tick with nothing due: the service is alive and up to date."""
        self._checked = now

    def health(self, now: datetime) -> tuple[bool, dict[str, Any]]:
        last = self._last
        finished = last.finished_at if last else None
        healthy = self._checked is not None and now - self._checked <= 3 * self.interval
        return healthy, {
            "status": "ok" if healthy else "stale",
            "started_at": self.started.isoformat(),
            "last_cycle_finished_at": finished.isoformat() if finished else None,
            "last_cycle_new_items": last.new_items if last else None,
            "last_cycle_failed_feeds": len(last.failed) if last else None,
        }

    def app(self) -> Callable[..., Iterable[bytes]]:
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                healthy, body = self.health(datetime.now(UTC))
                start_response(
                    "200 OK" if healthy else "503 Service Unavailable", [("Content-Type", "application/json")]
                )
                return [json.dumps(body).encode()]
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]

        return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:  # requests are not worth a log line each
        pass


def serve(metrics: Metrics, host: str, port: int) -> WSGIServer:
    """Serve ``metrics`` on ``host:port`` from a daemon thread; ``shutdown()`` stops it."""
    server = make_server(host, port, metrics.app(), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
