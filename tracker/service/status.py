"""`tracker status`: is the service running, how did the last day of polling go, which
feeds need attention, what each digest subscription has waiting, and which alert URLs fail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tracker.core.config import Config
from tracker.digest.compose import source_problems
from tracker.digest.queries import fetch_stats, first_since, last_sent, pending_count, runs
from tracker.service.alerting import alert_status, render_alerts
from tracker.store.database import Store
from tracker.store.lock import holder_of, lock_path


def status(config: Config, store: Store, rule_ids: list[str], now: datetime) -> dict[str, Any]:
    path = lock_path(config.database_url)
    holder = holder_of(path) if path is not None else None
    feeds = [f for f in store.feed_health() if f["active"]]
    digests = []
    if config.digests:
        from tracker.digest.delivery import last_scheduled  # the mail stack, only where there is mail
    for sub in config.digests:
        rules = rule_ids if "*" in sub.rules else list(sub.rules)
        floor = first_since(store.engine, sub.name) or now - timedelta(days=1)
        last = last_sent(store.engine, sub.name)
        scheduled = last_scheduled(sub, now)
        next_at = scheduled if last is None or last < scheduled else scheduled + timedelta(days=1)
        unsent = [r for r in runs(store.engine, sub.name) if r["status"] == "pending"]
        digests.append(
            {
                "name": sub.name,
                "last_sent": last,
                "next": next_at.astimezone(ZoneInfo(sub.timezone)),
                "pending_items": pending_count(store.engine, sub.name, rules, sub.min_score, floor),
                "unconfirmed_runs": len(unsent),
            }
        )
    return {
        "service": (
            "not tracked (PostgreSQL: several workers may run)"
            if path is None
            else (
                f"running: pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                if holder is not None
                else "not running"
            )
        ),
        "day": fetch_stats(store.engine, now - timedelta(days=1)),
        "schedule": store.schedule_summary(now),
        "feeds": sum(1 for f in feeds if not f["paused"]),
        "paused": sum(1 for f in feeds if f["paused"]),
        "problems": source_problems(store, now),
        "digests": digests,
        "alerts": alert_status(config, store, now),
    }


def render_status(s: dict[str, Any]) -> str:
    day = s["day"]
    last = day["last_fetch"].strftime("%Y-%m-%d %H:%M UTC") if day["last_fetch"] else "never"
    lines = [
        f"Service: {s['service']}",
        f"Polling: last fetch {last}; in the last 24 h {day['fetches']} fetches, {day['failed']} failed, "
        f"{day['items']} new articles",
        f"Feeds: {s['feeds']} active"
        + (f", {s['paused']} paused" if s.get("paused") else "")
        + f", {len(s['problems'])} need attention",
    ]
    sched = s["schedule"]
    upcoming = sched["next_poll_at"].strftime("%Y-%m-%d %H:%M UTC") if sched["next_poll_at"] else "none"
    lines.insert(2, f"Schedule: {sched['due']} feeds due now, {sched['parked']} parked; next poll due {upcoming}")
    for owner, (n, until) in sorted(sched["leases"].items()):
        lines.insert(3, f"  worker {owner}: polling {n} feeds (lease until {until:%H:%M:%S UTC})")
    lines += [f"  {p.kind}: {p.name} — {p.detail}" for p in s["problems"]]
    lines.append(f"Digests: {len(s['digests'])}" + ("" if s["digests"] else " (none configured)"))
    for d in s["digests"]:
        sent = d["last_sent"].strftime("%Y-%m-%d %H:%M UTC") if d["last_sent"] else "never"
        extra = f", {d['unconfirmed_runs']} unconfirmed (will be re-sent)" if d["unconfirmed_runs"] else ""
        lines.append(
            f"  {d['name']}: {d['pending_items']} articles waiting; last sent {sent}; "
            f"next {d['next']:%Y-%m-%d %H:%M %Z}{extra}"
        )
    lines += render_alerts(s.get("alerts") or [])
    return "\n".join(lines)
