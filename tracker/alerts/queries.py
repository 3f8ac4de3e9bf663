"""The store's alert queries: the story events an alert has not taken on yet, the events
it has (``alert_events``), its messages (``alert_messages``) and their sends to each URL
(``alert_sends``, the outbox).

An event is recorded once per (alert, event, key) — a unique constraint, so two workers
never both take it. A message and its sends are recorded in one transaction together
with the events they carry, before anything is sent; a send is claimed (its
``next_attempt_at`` moved past the time a send can take) before it is tried, and
confirmed or failed after.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tracker.store.models import AlertEvent, AlertMessage, AlertSend, AlertState, Item, RuleMatch

#: an alert looks at most this far back, however long the tracker was stopped
LOOKBACK = timedelta(days=2)


def _insert(engine: Engine, table: Any) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def alert_floor(engine: Engine, name: str, start: datetime, now: datetime) -> datetime:
    """Items stored from this time on are the alert's to announce: from when it first ran
    (``start``, the cycle that first saw it), and at most ``LOOKBACK`` ago."""
    with engine.begin() as conn:
        conn.execute(_insert(engine, AlertState).values(name=name, since=start).on_conflict_do_nothing())
        since: datetime = conn.execute(select(AlertState.since).where(AlertState.name == name)).scalar_one()
    return max(since, now - LOOKBACK)


def story_candidates(
    engine: Engine, name: str, rules: Sequence[str] | None, roles: Sequence[str], min_score: float, floor: datetime
) -> list[dict[str, Any]]:
    """Matches of items stored since ``floor`` in one of ``roles`` ("new", "update") that
    alert ``name`` has not taken on; the best-scoring match first for each item."""
    taken = exists().where(AlertEvent.alert == name, AlertEvent.item_id == Item.id)
    query = (
        select(
            RuleMatch.item_id,
            RuleMatch.rule_id,
            RuleMatch.score,
            RuleMatch.snippet,
            func.substr(Item.text, 1, 600).label("lede"),
            Item.story_id,
            Item.story_role,
            Item.title,
            Item.url,
            func.coalesce(Item.site_name, Item.host).label("outlet"),
            func.coalesce(Item.published_at, Item.story_at, Item.fetched_at).label("at"),
        )
        .join(Item, Item.id == RuleMatch.item_id)
        .where(Item.fetched_at >= floor, Item.story_role.in_(list(roles)), RuleMatch.score >= min_score, ~taken)
        .order_by(Item.id, RuleMatch.score.desc(), RuleMatch.rule_id)
    )
    if rules is not None:
        query = query.where(RuleMatch.rule_id.in_(list(rules)))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def story_outlets(engine: Engine, story_ids: Iterable[int]) -> dict[int, list[str]]:
    """Per story, its outlets, most items first."""
    ids = sorted(set(story_ids))
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    outlet = func.coalesce(Item.site_name, Item.host)
    with engine.connect() as conn:
        for story_id, name, _n in conn.execute(
            select(Item.story_id, outlet, func.count())
            .where(Item.story_id.in_(ids), outlet.is_not(None))
            .group_by(Item.story_id, outlet)
            .order_by(Item.story_id, func.count().desc(), outlet)
        ):
            if story_id is not None:
                out[story_id].append(name)
    return out


def record_events(engine: Engine, name: str, events: Sequence[dict[str, Any]], now: datetime) -> int:
    """Take on ``events`` (dicts with event, key, story_id, item_id, rule_id, payload) for
    alert ``name``; those it already has are skipped. Returns how many were new."""
    if not events:
        return 0
    rows = [
        {
            "alert": name,
            "event": e["event"],
            "key": e["key"],
            "story_id": e.get("story_id"),
            "item_id": e.get("item_id"),
            "rule_id": e.get("rule_id"),
            "payload": json.dumps(e["payload"], sort_keys=True, default=str),
            "created_at": now,
        }
        for e in events
    ]
    with engine.begin() as conn:
        result = conn.execute(_insert(engine, AlertEvent).on_conflict_do_nothing(), rows)
        return max(0, result.rowcount)


def unassigned(engine: Engine, name: str) -> list[dict[str, Any]]:
    """The alert's events no message carries yet (held in quiet hours, or just taken on)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(AlertEvent.id, AlertEvent.event, AlertEvent.key, AlertEvent.payload, AlertEvent.created_at)
            .where(AlertEvent.alert == name, AlertEvent.message_id.is_(None))
            .order_by(AlertEvent.id)
        ).mappings()
        return [{**r, "payload": json.loads(r["payload"])} for r in rows]


def record_message(
    engine: Engine,
    name: str,
    *,
    kind: str,
    title: str,
    content: dict[str, Any],
    event_ids: Sequence[int],
    channels: Sequence[tuple[str, str]],
    now: datetime,
) -> int | None:
    """Record a message carrying ``event_ids`` and one pending send per (channel, target),
    in one transaction. None when another worker took some of the events first."""
    try:
        with engine.begin() as conn:
            message_id: int = conn.execute(
                insert(AlertMessage)
                .values(
                    alert=name,
                    ref=f"nt-{uuid.uuid4().hex[:20]}",
                    kind=kind,
                    title=title,
                    content=json.dumps(content, sort_keys=True, default=str),
                    n_events=len(event_ids),
                    created_at=now,
                )
                .returning(AlertMessage.id)
            ).scalar_one()
            taken = conn.execute(
                update(AlertEvent)
                .where(AlertEvent.id.in_(list(event_ids)), AlertEvent.message_id.is_(None))
                .values(message_id=message_id)
            ).rowcount
            if taken != len(event_ids):
                raise _Lost
            if channels:
                conn.execute(
                    insert(AlertSend),
                    [
                        {
                            "message_id": message_id,
                            "channel": channel,
                            "target": target,
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": now,
                        }
                        for channel, target in channels
                    ],
                )
    except (_Lost, IntegrityError):
        return None
    return message_id


class _Lost(Exception):
    """Another worker composed some of the events first: roll back."""


def due_sends(engine: Engine, names: Sequence[str], now: datetime) -> list[dict[str, Any]]:
    """Pending sends of alerts ``names`` whose time has come, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                AlertSend.id,
                AlertSend.channel,
                AlertSend.attempts,
                AlertMessage.alert,
                AlertMessage.ref,
                AlertMessage.kind,
                AlertMessage.title,
                AlertMessage.content,
            )
            .join(AlertMessage, AlertMessage.id == AlertSend.message_id)
            .where(AlertSend.status == "pending", AlertSend.next_attempt_at <= now, AlertMessage.alert.in_(names))
            .order_by(AlertSend.next_attempt_at, AlertSend.id)
        ).mappings()
        return [{**r, "content": json.loads(r["content"])} for r in rows]


def claim_send(engine: Engine, send_id: int, now: datetime, until: datetime) -> bool:
    """Take send ``send_id`` for a try now; until ``until`` nobody else takes it (after
    that, a send that was neither confirmed nor failed counts as interrupted)."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(AlertSend)
                .where(AlertSend.id == send_id, AlertSend.status == "pending", AlertSend.next_attempt_at <= now)
                .values(next_attempt_at=until, last_attempt_at=now, attempts=AlertSend.attempts + 1)
            ).rowcount
        )


def confirm_send(engine: Engine, send_id: int, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(AlertSend).where(AlertSend.id == send_id).values(status="sent", sent_at=now, error=None))


def fail_send(engine: Engine, send_id: int, error: str, retry_at: datetime | None) -> None:
    """The try failed: try again at ``retry_at``, or give up (None)."""
    values: dict[str, Any] = {"error": error[:2000]}
    values.update({"status": "failed"} if retry_at is None else {"next_attempt_at": retry_at})
    with engine.begin() as conn:
        conn.execute(update(AlertSend).where(AlertSend.id == send_id, AlertSend.status == "pending").values(**values))


def drop_send(engine: Engine, send_id: int, why: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(AlertSend).where(AlertSend.id == send_id).values(status="dropped", error=why))


def recent_sends(engine: Engine, name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest sends, newest message first (``tracker alerts list``)."""
    query = (
        select(
            AlertMessage.id.label("message"),
            AlertMessage.alert,
            AlertMessage.ref,
            AlertMessage.kind,
            AlertMessage.n_events.label("events"),
            AlertMessage.title,
            AlertMessage.created_at,
            AlertSend.target,
            AlertSend.status,
            AlertSend.attempts,
            AlertSend.sent_at,
            AlertSend.next_attempt_at,
            AlertSend.error,
        )
        .join(AlertSend, AlertSend.message_id == AlertMessage.id)
        .order_by(AlertMessage.id.desc(), AlertSend.id)
    )
    if name is not None:
        query = query.where(AlertMessage.alert == name)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def channel_health(engine: Engine, now: datetime, recent: timedelta = timedelta(days=1)) -> list[dict[str, Any]]:
    """Per (alert, channel) with sends pending, given up on, or tried within ``recent``:
    whether its latest try failed, why, and the counts (for `tracker status` and /healthz)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                AlertMessage.alert,
                AlertSend.channel,
                AlertSend.target,
                AlertSend.status,
                AlertSend.error,
                AlertSend.last_attempt_at,
                AlertSend.sent_at,
            )
            .join(AlertMessage, AlertMessage.id == AlertSend.message_id)
            .where((AlertSend.status == "pending") | (AlertSend.last_attempt_at >= now - recent))
            .order_by(AlertSend.last_attempt_at)
        ).mappings()
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            ch = out.setdefault(
                (r["alert"], r["channel"]),
                {
                    "alert": r["alert"],
                    "target": r["target"],
                    "failing": False,
                    "error": None,
                    "pending": 0,
                    "given_up": 0,
                    "sent": 0,
                    "last_sent": None,
                },
            )
            ch["pending"] += r["status"] == "pending"
            ch["given_up"] += r["status"] == "failed"
            ch["sent"] += r["status"] == "sent"
            if r["sent_at"] is not None:
                ch["last_sent"] = max(filter(None, (ch["last_sent"], r["sent_at"])))
            if r["last_attempt_at"] is not None:  # in order: the latest try decides
                ch["failing"] = r["status"] != "sent" and r["error"] is not None
                ch["error"] = r["error"] if ch["failing"] else None
    return list(out.values())


def update_texts(engine: Engine, item_id: int, limit: int = 50) -> tuple[str, str, list[str]] | None:
    """An update's title and text, and the titles and texts of its story's earlier items
    (at most ``limit``, latest first): what "New:" compares against."""
    with engine.connect() as conn:
        row = conn.execute(select(Item.title, Item.text, Item.story_id).where(Item.id == item_id)).first()
        if row is None or row.story_id is None:
            return None
        earlier = conn.execute(
            select(Item.title, Item.text)
            .where(Item.story_id == row.story_id, Item.id < item_id)
            .order_by(Item.id.desc())
            .limit(limit)
        ).all()
    return row.title, row.text, [f"{t}\n{x}" for t, x in earlier]
