"""Alerts at the end of a cycle, for `tracker poll --once` and `tracker run`: one round of
``tracker.alerts.delivery.run_alerts``, never fatal to polling (a failure is logged in one
line), its outcome in the metrics; and the alerts part of `tracker status` and /healthz."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tracker.core.config import Config
from tracker.core.urls import redact_text
from tracker.store.database import Store, utcnow

if TYPE_CHECKING:
    from tracker.alerts.delivery import AlertsReport
    from tracker.alerts.events import SpikeEvent
    from tracker.service.metrics import Metrics

logger = logging.getLogger(__name__)


def after_cycle(
    config: Config,
    store: Store,
    start: datetime,
    rule_titles: Mapping[str, str],
    metrics: Metrics | None = None,
    spikes: Sequence[SpikeEvent] = (),
) -> AlertsReport | None:
    """Send the alerts for what the cycle that began at ``start`` stored (and retry what is
    due); None when no alert is configured or the round failed.

    ``spikes``: the topic spikes to announce (``tracker.analysis.spikes``, converted to
    ``SpikeEvent``); an alert takes each one once, whatever the number of cycles that pass it."""
    if not config.alerts:
        return None
    from tracker.alerts.delivery import run_alerts
    from tracker.alerts.news import store_developments
    from tracker.alerts.queries import channel_health

    try:
        developments = store_developments(store)
        report = run_alerts(
            config, store, start=start, rule_titles=rule_titles, spikes=spikes, developments=developments
        )
        failing = [c for c in channel_health(store.engine, utcnow()) if c["failing"]]
    except Exception as exc:
        logger.error("alerts failed: %s", redact_text(" ".join(str(exc).split()))[:500])
        logger.debug("alerts failed", exc_info=exc)
        return None
    if report.events or report.messages or report.sent or report.failed:
        logger.info(
            "alerts events=%d held=%d messages=%d sent=%d failed=%d unfinished=%d",
            report.events,
            report.held,
            report.messages,
            report.sent,
            report.failed,
            report.unfinished,
        )
    if metrics is not None:
        metrics.alerts_done(report, failing)
    return report


def spike_events(found: Sequence[Any]) -> list[SpikeEvent]:
    """The spikes just recorded (``tracker.analysis.spikewatch.Found``) as alert events: the
    strongest of each topic (a surge is often seen in items and stories, per day and hour)."""
    from tracker.alerts.events import SpikeEvent

    best: dict[str, Any] = {}
    for f in found:
        if f.topic not in best or f.spike.score > best[f.topic].spike.score:
            best[f.topic] = f
    return [
        SpikeEvent(
            topic=f.topic,
            window_start=f.spike.start,
            window_end=f.spike.start + (timedelta(hours=1) if f.bucket == "hour" else timedelta(days=1)),
            count=f.spike.observed,
            baseline=round(f.spike.expected, 2),
            stories=tuple((str(s["headline"]), str(s["url"])) for s in f.stories),
        )
        for f in best.values()
    ]


def alert_status(config: Config, store: Store, now: datetime) -> list[dict[str, Any]]:
    """Per configured alert: its URLs' health (failing, why, sends pending, given up) and
    the events held for the end of its quiet hours."""
    if not config.alerts:
        return []
    from tracker.alerts.queries import channel_health, unassigned

    health = channel_health(store.engine, now)
    return [
        {
            "name": alert.name,
            "urls": len(alert.urls),
            "quiet_now": alert.is_quiet(now),
            "held_events": len(unassigned(store.engine, alert.name)),
            "channels": [h for h in health if h["alert"] == alert.name],
        }
        for alert in config.alerts
    ]


def render_alerts(alerts: list[dict[str, Any]]) -> list[str]:
    failing = sum(1 for a in alerts for c in a["channels"] if c["failing"])
    lines = [f"Alerts: {len(alerts)}" + (f", {failing} URLs FAILING" if failing else "") if alerts else "Alerts: 0"]
    for a in alerts:
        held = f"; {a['held_events']} events held (quiet hours)" if a["held_events"] else ""
        sent = sum(c["sent"] for c in a["channels"])
        lines.append(f"  {a['name']}: {a['urls']} URLs, {sent} messages sent in the last 24 h{held}")
        for c in a["channels"]:
            if c["failing"] or c["pending"] or c["given_up"]:
                state = f"FAILING: {c['error']}" if c["failing"] else "ok"
                lines.append(f"    {c['target']}: {state}; {c['pending']} pending, {c['given_up']} given up")
    return lines
