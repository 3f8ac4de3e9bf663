"""What an alert says about each event, as the JSON stored with it (``alert_events.payload``).

A story event comes from a stored item: ``new_story`` for the first item of a story,
``update`` for a later item that adds to it (its story role). A ``spike`` event comes from
the spike detector (``tracker.analysis.spikes``), handed in as a ``SpikeEvent``; both are
recorded, grouped and sent by the same code.

The "New:" line of an update — what it adds to its story — comes from a ``Developments``
function given by the caller (``tracker.stories.developments`` once it is wired in); without
one, updates go out without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracker.core.alertconfig import AlertConfig

#: item id -> what that update adds to its story (one line), or None
Developments = Callable[[int], str | None]

ROLES = {"new": "new_story", "update": "update"}


@dataclass(frozen=True, slots=True)
class SpikeEvent:
    """A topic with far more articles in a window than usual. All datetimes UTC."""

    topic: str  #: the rule id
    window_start: datetime
    window_end: datetime
    count: int  #: articles in the window
    baseline: float  #: articles usual for a window that long
    stories: tuple[tuple[str, str], ...] = ()  #: the top stories in it: (headline, url)

    def record(self, titles: Mapping[str, str]) -> dict[str, Any]:
        return {
            "event": "spike",
            "key": f"spike:{self.topic}:{self.window_start.isoformat()}",
            "rule_id": self.topic,
            "payload": {
                "event": "spike",
                "topic": self.topic,
                "topic_title": titles.get(self.topic, self.topic),
                "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(),
                "count": self.count,
                "baseline": self.baseline,
                "stories": [{"headline": h, "url": u} for h, u in self.stories],
            },
        }


def story_records(
    rows: Sequence[Mapping[str, Any]],
    outlets: Mapping[int, Sequence[str]],
    titles: Mapping[str, str],
    developments: Developments | None = None,
) -> list[dict[str, Any]]:
    """One event per item (its best-scoring match first in ``rows``, as the query orders)."""
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for r in rows:
        if r["item_id"] in seen or r["story_role"] not in ROLES:
            continue
        seen.add(r["item_id"])
        event = ROLES[r["story_role"]]
        story = r["story_id"] if r["story_id"] is not None else r["item_id"]
        new = developments(r["item_id"]) if developments is not None and event == "update" else None
        out.append(
            {
                "event": event,
                "key": f"story:{story}" if event == "new_story" else f"update:{story}:{r['item_id']}",
                "story_id": story,
                "item_id": r["item_id"],
                "rule_id": r["rule_id"],
                "payload": {
                    "event": event,
                    "story_id": story,
                    "item_id": r["item_id"],
                    "headline": r["title"],
                    "url": r["url"],
                    "outlets": list(outlets.get(story) or ([r["outlet"]] if r["outlet"] else [])),
                    "at": r["at"].isoformat() if isinstance(r["at"], datetime) else r["at"],
                    "topic": r["rule_id"],
                    "topic_title": titles.get(r["rule_id"], r["rule_id"]),
                    "snippet": snippet(r),
                    "new": new,
                },
            }
        )
    return out


def snippet(row: Mapping[str, Any]) -> str:
    """The sentence that carried the match; the start of the text when that was the headline."""
    first = (row["snippet"] or "").split("\n")[0].strip()
    if first and " ".join(first.split()) != " ".join((row["title"] or "").split()):
        return first[:400]
    lede = " ".join((row.get("lede") or "").split())
    cut = lede.find(". ", 0, 300)
    return lede[: cut + 1] if cut > 0 else lede[:300]


def wanted(alert: AlertConfig, spikes: Sequence[SpikeEvent]) -> list[SpikeEvent]:
    """The spikes ``alert`` sends: it takes spike events, and follows their topic."""
    return [s for s in spikes if "spike" in alert.events and alert.follows(s.topic)]


def roles(alert: AlertConfig) -> list[str]:
    return [role for role, event in ROLES.items() if event in alert.events]
