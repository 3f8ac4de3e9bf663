"""Alerts at the end of a poll cycle: take on events, compose messages, send, confirm.

1. **Take on.** Each alert records the events it has not had yet — the stories and
   updates stored since it started, matching its rules and ``min_score``, and any spikes
   handed in — one row per (alert, event, key); a unique key, so never twice.
2. **Compose.** The alert's events that no message carries are put in messages: one per
   event, or one summary when there are more than ``burst`` of them, or when some were held
   by quiet hours (during which nothing is composed: they wait). A message, the events it
   carries and one pending send per URL are recorded in one transaction, before sending.
3. **Send.** Each pending send that is due is claimed (for longer than a send can take),
   sent, then confirmed. A failure is recorded and tried again later, with the delay
   doubling from ``backoff`` (at most an hour), and given up after ``attempts`` tries.
   A crash between sending and confirming leaves the send claimed; once the claim expires
   it is sent again, the same message with the same ``ref``: the guarantee is
   **at least once, with an idempotency key** (as the digest's same Message-ID).

Sends run on daemon threads, one per URL (its messages in order; a URL that fails is left
alone for the rest of the round), and the caller waits at most ``budget`` seconds for all of
them: a receiver that hangs cannot hold up polling. A send still running then finishes (or
times out) on its own and records its outcome; if the process ends first, its claim expires
and it is sent again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tracker.alerts import queries
from tracker.alerts.channels import AlertSendError, Channel, channels_of, deliver
from tracker.alerts.events import Developments, SpikeEvent, roles, story_records, wanted
from tracker.alerts.render import title
from tracker.core.alertconfig import AlertConfig
from tracker.core.config import Config
from tracker.core.errors import ConfigError
from tracker.store.database import Store, utcnow

logger = logging.getLogger(__name__)

MAX_THREADS = 8  #: URLs sent to at once
MAX_BACKOFF = 3600.0  #: seconds: the longest wait between two tries


@dataclass(slots=True)
class AlertsReport:
    """What one round of alerts did."""

    events: int = 0  #: events taken on
    held: int = 0  #: events waiting for the end of quiet hours
    messages: int = 0  #: messages composed
    sent: int = 0
    failed: int = 0  #: tries that failed (to be tried again, unless given up)
    given_up: int = 0
    unfinished: int = 0  #: sends still running when the budget ran out
    failing: list[tuple[str, str]] = field(default_factory=list)  #: (alert, masked URL) of each that failed now


def run_alerts(
    config: Config,
    store: Store,
    *,
    start: datetime,
    rule_titles: Mapping[str, str],
    now: datetime | None = None,
    budget: float | None = None,
    spikes: Sequence[SpikeEvent] = (),
    developments: Developments | None = None,
) -> AlertsReport:
    """One round for every configured alert: take on what the cycle that began at ``start``
    stored (and anything earlier not yet taken on), compose, and send within ``budget``
    seconds (default ``[poll] alert_budget``)."""
    report = AlertsReport()
    if not config.alerts:
        return report
    now = now or utcnow()
    for alert in config.alerts:
        take_on(store, alert, start, now, rule_titles, report, spikes, developments)
        compose(store, alert, now, report)
    send_due(config.alerts, store, report, budget=config.poll.alert_budget if budget is None else budget)
    return report


def take_on(
    store: Store,
    alert: AlertConfig,
    start: datetime,
    now: datetime,
    rule_titles: Mapping[str, str],
    report: AlertsReport,
    spikes: Sequence[SpikeEvent] = (),
    developments: Developments | None = None,
) -> None:
    engine = store.engine
    floor = queries.alert_floor(engine, alert.name, start, now)
    records: list[dict[str, Any]] = [s.record(rule_titles) for s in wanted(alert, spikes)]
    kinds = roles(alert)
    if kinds:
        rules = None if "*" in alert.rules else alert.rules
        rows = queries.story_candidates(engine, alert.name, rules, kinds, alert.min_score, floor)
        outlets = queries.story_outlets(engine, {r["story_id"] for r in rows if r["story_id"] is not None})
        records += story_records(rows, outlets, rule_titles, developments)
    report.events += queries.record_events(engine, alert.name, records, now)


def compose(store: Store, alert: AlertConfig, now: datetime, report: AlertsReport) -> None:
    events = queries.unassigned(store.engine, alert.name)
    if not events:
        return
    if alert.is_quiet(now):
        report.held += len(events)
        return
    held = alert.quiet is not None and any(e["created_at"] < now for e in events)
    channels = [(c.key, c.target()) for c in channels_of(alert)]
    groups = [events] if held or len(events) > alert.burst else [[e] for e in events]
    for group in groups:
        kind = "summary" if len(group) > 1 or held else "event"
        content: dict[str, Any] = {
            "alert": alert.name,
            "kind": kind,
            "timezone": alert.timezone,
            "held": held,
            "quiet": _quiet_text(alert),
            "events": [e["payload"] for e in group],
        }
        message = queries.record_message(
            store.engine,
            alert.name,
            kind=kind,
            title=title(content),
            content=content,
            event_ids=[e["id"] for e in group],
            channels=channels,
            now=now,
        )
        report.messages += message is not None


def _quiet_text(alert: AlertConfig) -> str | None:
    if alert.quiet is None:
        return None
    start, end = alert.quiet
    return f"{start:%H:%M}-{end:%H:%M} {alert.timezone}"


def lease(alert: AlertConfig) -> timedelta:
    """How long a claimed send is left alone: longer than any one send can take."""
    return timedelta(seconds=max(120.0, 12 * alert.timeout))


def send_due(alerts: Sequence[AlertConfig], store: Store, report: AlertsReport, *, budget: float) -> None:
    """Send what is due, waiting at most ``budget`` seconds (see the module docstring)."""
    groups = _due_by_channel(alerts, store)
    if groups:
        _Round(store, report, budget).run(groups)


Due = list[tuple[AlertConfig, Channel, list[dict[str, Any]]]]


def _due_by_channel(alerts: Sequence[AlertConfig], store: Store) -> Due:
    """The due sends per URL, in order; a send to a URL no longer configured is dropped."""
    by_name = {a.name: a for a in alerts}
    channels = {(c.alert, c.key): c for a in alerts for c in channels_of(a)}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in queries.due_sends(store.engine, list(by_name), utcnow()):
        key = (row["alert"], row["channel"])
        if key not in channels:
            queries.drop_send(store.engine, row["id"], "the URL is no longer in the alert's configuration")
            continue
        groups.setdefault(key, []).append(row)
    return [(by_name[alert], channels[(alert, ch)], rows) for (alert, ch), rows in groups.items()]


class _Round:
    """One thread per URL (at most ``MAX_THREADS`` at once), waited for until the deadline."""

    def __init__(self, store: Store, report: AlertsReport, budget: float) -> None:
        self.store = store
        self.report = report
        self.budget = budget
        self.deadline = time.monotonic() + budget
        self.outcomes: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self.running: set[threading.Thread] = set()

    def run(self, due: Due) -> None:
        pending = list(due)
        while pending or self.running:
            while pending and len(self.running) < MAX_THREADS and time.monotonic() < self.deadline:
                self._start(*pending.pop(0))
            left = self.deadline - time.monotonic()
            if left <= 0:
                break  # what did not start stays due; what runs finishes on its own
            with suppress(queue.Empty):
                self._count(self.outcomes.get(timeout=min(left, 0.2)))
            self.running = {t for t in self.running if t.is_alive()}
        with suppress(queue.Empty):
            while True:
                self._count(self.outcomes.get_nowait())
        self.report.unfinished = sum(1 for t in self.running if t.is_alive())
        if self.report.unfinished:
            logger.warning(
                "alerts: %d URLs still sending after %gs; left to finish", self.report.unfinished, self.budget
            )

    def _start(self, alert: AlertConfig, channel: Channel, rows: list[dict[str, Any]]) -> None:
        args = (self.store, alert, channel, rows, self.outcomes, self.deadline)
        thread = threading.Thread(target=_send_all, args=args, name=f"alert:{alert.name}", daemon=True)
        thread.start()
        self.running.add(thread)

    def _count(self, outcome: tuple[str, str, str]) -> None:
        status, alert, target = outcome
        if status == "sent":
            self.report.sent += 1
        elif status in ("failed", "given_up"):
            self.report.failed += 1
            self.report.given_up += status == "given_up"
            if (alert, target) not in self.report.failing:
                self.report.failing.append((alert, target))


def _send_all(
    store: Store,
    alert: AlertConfig,
    channel: Channel,
    rows: list[dict[str, Any]],
    outcomes: queue.SimpleQueue[tuple[str, str, str]],
    deadline: float,
) -> None:
    """One URL's due messages, in order; stops at the first failure, or at the deadline."""
    for row in rows:
        if time.monotonic() >= deadline:
            return
        try:
            status = _send_one(store, alert, channel, row)
        except Exception as exc:  # noqa: BLE001 - a store error on this thread: logged, retried next round
            logger.error("alert %s: recording a send failed: %s", alert.name, exc)
            return
        if status is not None:
            outcomes.put((status, alert.name, channel.target()))
        if status in ("failed", "given_up"):
            return


def _send_one(store: Store, alert: AlertConfig, channel: Channel, row: dict[str, Any]) -> str | None:
    now = utcnow()
    if not queries.claim_send(store.engine, row["id"], now, now + lease(alert)):
        return None  # another worker has it
    attempts = row["attempts"] + 1
    try:
        deliver(channel, row["title"], row["content"], row["ref"])
    except AlertSendError as exc:
        give_up = attempts >= alert.attempts
        wait = min(MAX_BACKOFF, alert.backoff * 2 ** (attempts - 1))
        queries.fail_send(store.engine, row["id"], str(exc), None if give_up else utcnow() + timedelta(seconds=wait))
        logger.warning(
            "alert %s: sending %s to %s failed (try %d of %d%s): %s",
            alert.name,
            row["ref"],
            channel.target(),
            attempts,
            alert.attempts,
            ", given up" if give_up else f", next in {wait:g}s",
            exc,
        )
        return "given_up" if give_up else "failed"
    queries.confirm_send(store.engine, row["id"], utcnow())
    logger.info("alert %s: sent %s to %s", alert.name, row["ref"], channel.target())
    return "sent"


def find_alert(config: Config, name: str) -> AlertConfig:
    for alert in config.alerts:
        if alert.name == name:
            return alert
    known = ", ".join(a.name for a in config.alerts) or "none configured"
    raise ConfigError(f"no alert named {name!r} ([[alerts]]: {known})", path=str(config.path or "defaults"))


def check(config: Config, rule_ids: set[str]) -> None:
    """Every [[alerts]] entry names only loaded rules (or "*") and URLs Apprise can use (a
    URL waiting for an unset environment variable is checked when it is sent)."""
    where = str(config.path or "defaults")
    for i, alert in enumerate(config.alerts):
        unknown = [r for r in alert.rules if r != "*" and r not in rule_ids]
        if unknown:
            raise ConfigError(
                f"unknown rule {', '.join(map(repr, unknown))} (known: {', '.join(sorted(rule_ids))})",
                path=where,
                key=f"alerts[{i}].rules",
            )
        for n, channel in enumerate(channels_of(alert)):
            if not channel.missing and not channel.usable():
                raise ConfigError(
                    f"not a notification URL that Apprise can use: {channel.target()}",
                    path=where,
                    key=f"alerts[{i}].urls[{n}]",
                )


def send_test(alert: AlertConfig) -> list[tuple[str, str | None]]:
    """Send a sample message to each of ``alert``'s URLs now (nothing is recorded): per URL,
    what it is and the error, or None when it was sent."""
    sample = {
        "alert": alert.name,
        "kind": "event",
        "timezone": alert.timezone,
        "held": False,
        "quiet": _quiet_text(alert),
        "events": [
            {
                "event": "new_story",
                "headline": "Test message from newstracker",
                "url": "https://example.com/newstracker-test",
                "outlets": ["newstracker"],
                "at": utcnow().isoformat(),
                "topic": "test",
                "topic_title": "Alert test",
                "snippet": f"If you read this, the alert {alert.name!r} reaches this channel.",
            }
        ],
    }
    results: list[tuple[str, str | None]] = []
    for channel in channels_of(alert):
        try:
            deliver(channel, title(sample), sample, f"nt-test-{int(time.time())}")
        except AlertSendError as exc:
            results.append((channel.target(), str(exc)))
        else:
            results.append((channel.target(), None))
    return results
