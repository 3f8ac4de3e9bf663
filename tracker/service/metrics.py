"""Health and Prometheus metrics for `tracker run`, on a loopback HTTP port ([service]
metrics_port; off by default).

``/metrics`` is the Prometheus text format (prometheus-client, on a registry of our own);
``/healthz`` answers 200 with a JSON summary while the poll job runs on time, 503 when its
last run is older than three poll ticks (or it has not run since start).

The daily maintenance job's last outcome is in the JSON too, under ``"maintenance"``:
``{"status": "ok" | "failed" | "not-run", "at", "error", "last_success_at", "backup"}``.
A failed maintenance (a store that fails ``PRAGMA quick_check``, a backup that could not be
made) does not turn /healthz into 503: it answers 200 with ``"status": "degraded"``. The
status code answers "is the service polling?" — what a supervisor or load balancer acts on,
and restarting the service would not repair a store — while the body and the metrics say
what needs a person: ``tracker_maintenance_failing`` is 1 until a later run succeeds,
``tracker_maintenance_failures_total{kind}`` counts failures (``integrity``: the store or its
new backup failed the check; ``error``: anything else, such as a full disk), and
``tracker_maintenance_last_success_timestamp_seconds`` is when it last succeeded (0 until
the first success since start). Alert on ``tracker_maintenance_failing == 1``, or on
``time() - tracker_maintenance_last_success_timestamp_seconds > 2 * 86400`` once it ran.

Alerts the same way: ``"alerts": {"status": "ok" | "failing", "failing": [{"alert", "url",
"error"}]}`` lists the alert URLs whose latest send failed (a failing one makes the status
"degraded", still 200: polling goes on); ``tracker_alert_urls_failing`` counts them,
``tracker_alert_send_failures_total{alert}`` counts failed tries and
``tracker_alerts_sent_total`` the messages sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from tracker.core.types import CycleReport

#: the ``kind`` label values of ``tracker_maintenance_failures_total``
MAINTENANCE_FAILURE_KINDS = ("integrity", "error")


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
        self.maintenance_runs = Counter(
            "tracker_maintenance_runs", "Maintenance jobs finished, successful or not.", registry=self.registry
        )
        self.maintenance_failures = Counter(
            "tracker_maintenance_failures",
            "Maintenance jobs that failed, by kind (integrity: the store or its new backup failed PRAGMA "
            "quick_check; error: anything else).",
            ["kind"],
            registry=self.registry,
        )
        for kind in MAINTENANCE_FAILURE_KINDS:
            self.maintenance_failures.labels(kind=kind)  # exported as 0 before the first failure
        self.maintenance_failing = Gauge(
            "tracker_maintenance_failing", "1 when the last maintenance job failed, else 0.", registry=self.registry
        )
        self.maintenance_last_success = Gauge(
            "tracker_maintenance_last_success_timestamp_seconds",
            "When the last successful maintenance job (retention and a checked backup) finished.",
            registry=self.registry,
        )
        self.alerts_sent = Counter(
            "tracker_alerts_sent", "Alert messages sent (one per message and URL).", registry=self.registry
        )
        self.alert_failures = Counter(
            "tracker_alert_send_failures",
            "Alert sends that failed (each is tried again until given up).",
            ["alert"],
            registry=self.registry,
        )
        self.alerts_failing = Gauge(
            "tracker_alert_urls_failing",
            "Alert URLs whose latest send failed (1 or more: someone is not being told).",
            registry=self.registry,
        )
        self._alerts: dict[str, Any] = {"status": "ok", "failing": []}
        self.started = datetime.now(UTC)
        self._last: CycleReport | None = None
        self._checked: datetime | None = None  #: the last poll tick, with or without a cycle
        self._maintenance: dict[str, Any] = {
            "status": "not-run",
            "at": None,
            "error": None,
            "last_success_at": None,
            "backup": None,
        }

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

    def maintenance_succeeded(self, at: datetime, backup: str | None = None) -> None:
        """The maintenance job finished at ``at`` (with a checked ``backup``, if one was made)."""
        self.maintenance_runs.inc()
        self.maintenance_failing.set(0)
        self.maintenance_last_success.set(at.timestamp())
        self._maintenance = {
            "status": "ok",
            "at": at.isoformat(),
            "error": None,
            "last_success_at": at.isoformat(),
            "backup": backup,
        }

    def maintenance_failed(self, at: datetime, error: str, kind: str = "error") -> None:
        """The maintenance job failed at ``at``; ``error`` is one line, ``kind`` one of
        ``MAINTENANCE_FAILURE_KINDS``."""
        self.maintenance_runs.inc()
        self.maintenance_failures.labels(kind=kind if kind in MAINTENANCE_FAILURE_KINDS else "error").inc()
        self.maintenance_failing.set(1)
        self._maintenance = {
            **self._maintenance,
            "status": "failed",
            "at": at.isoformat(),
            "error": " ".join(error.split()),
            "backup": None,
        }

    def alerts_done(self, report: Any, failing: list[dict[str, Any]]) -> None:
        """A round of alerts finished (``tracker.alerts.delivery.AlertsReport``); ``failing``:
        the URLs whose latest send failed, from the store."""
        for alert, _url in report.failing:
            self.alert_failures.labels(alert=alert).inc()
        self.alerts_sent.inc(report.sent)
        self.alerts_failing.set(len(failing))
        self._alerts = {
            "status": "failing" if failing else "ok",
            "failing": [{"alert": c["alert"], "url": c["target"], "error": c["error"]} for c in failing],
        }

    def health(self, now: datetime) -> tuple[bool, dict[str, Any]]:
        """(polling on time, the JSON body). A failed maintenance leaves the first True and
        makes the status "degraded" (see the module docstring)."""
        last = self._last
        finished = last.finished_at if last else None
        healthy = self._checked is not None and now - self._checked <= 3 * self.interval
        maintenance = dict(self._maintenance)
        degraded = maintenance["status"] == "failed" or self._alerts["status"] == "failing"
        status = "stale" if not healthy else "degraded" if degraded else "ok"
        return healthy, {
            "status": status,
            "started_at": self.started.isoformat(),
            "last_cycle_finished_at": finished.isoformat() if finished else None,
            "last_cycle_new_items": last.new_items if last else None,
            "last_cycle_failed_feeds": len(last.failed) if last else None,
            "maintenance": maintenance,
            "alerts": dict(self._alerts),
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
