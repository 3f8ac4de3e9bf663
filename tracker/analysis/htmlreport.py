"""`tracker report`: a self-contained HTML report — topic volume per day as an inline SVG
chart (matplotlib, the ``report`` extra) and the top stories of each topic.

The page needs nothing else: no scripts, no external files; every text from the store is
escaped by Jinja2, and the chart is an SVG drawn from our own numbers. Days and times are
those of the reader's time zone (``tz``): an item belongs to the day it was published there.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text

from tracker.core.errors import ConfigError
from tracker.core.resources import install_hint
from tracker.store.database import Store
from tracker.store.storydb import list_stories


def topic_volume(store: Store, since: datetime, until: datetime, tz: str = "UTC") -> dict[str, dict[str, int]]:
    """topic → day (YYYY-MM-DD in ``tz``) → tagged items published in [since, until]."""
    from tracker.store.models import Item, RuleMatch

    zone = ZoneInfo(tz)
    at = func.coalesce(Item.story_at, Item.published_at, Item.fetched_at)
    query = (
        select(RuleMatch.rule_id, at)
        .join(Item, Item.id == RuleMatch.item_id)
        .where(at >= since.astimezone(UTC), at <= until.astimezone(UTC))
    )
    out: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for topic, when in conn.execute(query):
            day = _aware(when).astimezone(zone).date().isoformat()
            days = out.setdefault(topic, {})
            days[day] = days.get(day, 0) + 1
    return out


def _aware(when: Any) -> datetime:
    if isinstance(when, str):  # a coalesce of stored times comes back as text on SQLite
        when = datetime.fromisoformat(when)
    assert isinstance(when, datetime)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def top_stories(store: Store, topic: str, since: datetime, n: int) -> list[dict[str, Any]]:
    """The topic's stories active since ``since``, most widely reported first."""
    stories = list_stories(store.engine, rule=topic, since=since, limit=None)
    stories.sort(key=lambda s: (-s["n_sources"], -s["n_items"], s["story_id"]))
    top = stories[:n]
    headline_url = text("SELECT url FROM items WHERE story_id = :s AND title = :h ORDER BY id LIMIT 1")
    with store.engine.connect() as conn:
        for story in top:  # the headline links to the article it is the title of
            url = conn.execute(headline_url, {"s": story["story_id"], "h": story["headline"]}).scalar()
            story["url"] = url if isinstance(url, str) and url.startswith(("http://", "https://")) else None
    return top


#: a window longer than this is charted per week (weeks start on Monday)
WEEKLY_AFTER_DAYS = 62


def chart_svg(volume: dict[str, dict[str, int]], first: datetime, last: datetime, surges: Iterable[str] = ()) -> str:
    """Items per day (per week, over a long window) for each topic, as an SVG document
    (days without items count 0); ``surges``: days (YYYY-MM-DD) with a spike, marked above
    their bar."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ConfigError(f"tracker report needs matplotlib: {install_hint('report')}") from None
    days = [first.date() + timedelta(days=i) for i in range((last.date() - first.date()).days + 1)]
    weekly = len(days) > WEEKLY_AFTER_DAYS  # one-day spikes over months read as noise: sum by week
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    try:
        # Stacked bars: a day (or week) reads as one column whose height is all tagged items
        # and whose colours are the topics; sparse days stay visible, none is drawn as a slope.
        bottoms: dict[Any, int] = {}
        for topic in sorted(volume):
            counts = [volume[topic].get(d.isoformat(), 0) for d in days]
            if weekly:
                weeks: dict[Any, int] = {}
                for d, n in zip(days, counts, strict=True):
                    monday = d - timedelta(days=d.weekday())
                    weeks[monday] = weeks.get(monday, 0) + n
                xs, ys = list(weeks), list(weeks.values())
            else:
                xs, ys = days, counts
            base = [bottoms.get(x, 0) for x in xs]
            if weekly:  # a week's bar spans Monday to Saturday
                ax.bar(xs, ys, bottom=base, width=6.0, align="edge", label=topic)
            else:
                ax.bar(xs, ys, bottom=base, width=0.8, align="center", label=topic)
            for x, y in zip(xs, ys, strict=True):
                bottoms[x] = bottoms.get(x, 0) + y
        marked = sorted({_bucket_of(date.fromisoformat(d), weekly) for d in surges} & set(bottoms))
        if marked:
            offset = 3.0 if weekly else 0.0  # over the middle of a week's bar
            ax.scatter(
                [m + timedelta(days=offset) for m in marked],  # type: ignore[arg-type]
                [bottoms[m] + max(bottoms.values()) * 0.06 + 0.1 for m in marked],
                marker="v",
                color="#bf3989",
                s=36,
                zorder=3,
                label="surge (topic_spikes)",
            )
        ax.set_ylabel("tagged items per week" if weekly else "tagged items per day")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.2 of an item
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if volume:
            ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3)
        else:
            ax.text(0.5, 0.5, "no tagged items in this period", transform=ax.transAxes, ha="center")
        fig.tight_layout()
        low, high = ax.get_xlim()
        ticks = [mdates.num2date(t).date() for t in ax.get_xticks() if low <= t <= high]  # type: ignore[no-untyped-call]
        buf = io.StringIO()
        with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: selectable, searchable
            fig.savefig(buf, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # inline: without the XML declaration and doctype
    # The dates of the first and last labelled tick, for a reader's tools (and the tests).
    axis = f' data-axis-from="{min(ticks).isoformat()}" data-axis-to="{max(ticks).isoformat()}"' if ticks else ""
    return "<svg" + axis + svg[len("<svg") :]


def _bucket_of(day: date, weekly: bool) -> date:
    return day - timedelta(days=day.weekday()) if weekly else day


def surge_days(store: Store, since: datetime, until: datetime, tz: str = "UTC") -> list[str]:
    """The days (in ``tz``) on which a topic's coverage surged (``topic_spikes``)."""
    from tracker.store.models import Spike

    zone = ZoneInfo(tz)
    query = select(Spike.bucket_start).where(
        Spike.bucket_start >= since.astimezone(UTC), Spike.bucket_start <= until.astimezone(UTC)
    )
    with store.engine.connect() as conn:
        return sorted({_aware(at).astimezone(zone).date().isoformat() for (at,) in conn.execute(query)})


def newest_day(store: Store) -> datetime | None:
    """The last day with a tagged item (UTC), from the ``topic_daily`` view."""
    with store.engine.connect() as conn:
        day = conn.execute(text("SELECT max(day) FROM topic_daily")).scalar()
    return datetime.fromisoformat(str(day)).replace(tzinfo=UTC) if day else None


def report_window(store: Store, now: datetime, days: int, tz: str = "UTC") -> tuple[datetime, datetime, str | None]:
    """(first day, end, note), in ``tz``: the ``days`` up to ``now``; when those hold no tagged
    item but the store has older ones, the ``days`` up to the newest one instead, and a note
    saying so."""
    now = now.astimezone(ZoneInfo(tz))
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    newest = newest_day(store)
    if newest is not None:
        newest = newest.replace(tzinfo=ZoneInfo(tz))
    if newest is None or newest >= since:
        return since, now, None
    end = newest + timedelta(days=1) - timedelta(microseconds=1)
    note = (
        f"No tagged items in the {days} days to {now:%Y-%m-%d}: this report covers the {days} days "
        f"up to the newest one ({newest:%Y-%m-%d}). Use --days to choose another period."
    )
    return (end - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0), end, note


def _timeline_link(web_url: str | None) -> Any:
    if not web_url or not web_url.startswith(("http://", "https://")):
        return None
    base = web_url.rstrip("/")
    return lambda story_id: f"{base}/story_timeline?story_id={int(story_id)}"


def build_report(
    store: Store,
    rule_titles: dict[str, str],
    now: datetime,
    *,
    days: int = 30,
    top: int = 10,
    tz: str = "UTC",
    web_url: str | None = None,
) -> str:
    """The report's HTML. ``web_url``: where `tracker web` serves this store (its database
    page, e.g. ``http://127.0.0.1:8001/tracker``); each story then links to its timeline there."""
    from tracker.digest.render import _env, local

    since, now, note = report_window(store, now, days, tz)
    volume = topic_volume(store, since, now, tz)
    topics = sorted(set(rule_titles) | set(volume))
    sections = [
        {
            "id": t,
            "title": rule_titles.get(t, t),
            "n_items": sum(volume.get(t, {}).values()),
            "stories": top_stories(store, t, since, top),
        }
        for t in topics
    ]
    return str(
        _env()
        .get_template("report.html.j2")
        .render(
            generated=now,
            since=since,
            days=days,
            note=note,
            tz=tz,
            local=lambda dt: local(dt, tz, now),
            timeline=_timeline_link(web_url),
            chart=chart_svg(volume, since, now, surge_days(store, since, now, tz)),
            per="week" if (now.date() - since.date()).days + 1 > WEEKLY_AFTER_DAYS else "day",
            sections=sections,
        )
    )
