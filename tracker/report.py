"""Plain-text rendering of cycle reports, feed health and stories (for the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .text import plain
from .types import CycleReport
from .urls import redact, redact_text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_is_num(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    text = plain(str(v)).replace("\n", " ").replace("\t", " ")
    return text if len(text) <= 60 else text[:59] + "…"


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _is_num(v: str) -> bool:
    return v.replace(".", "", 1).isdigit() or v == "-"


def cycle_summary(report: CycleReport, *, top: int = 3) -> str:
    rows = [
        (f.name, f.status.value, f.entries, f.new, f.extracted, f.fallbacks, f.article_failures) for f in report.feeds
    ]
    parts = [table(("feed", "status", "entries", "new", "extracted", "fallbacks", "failures"), rows)]
    seconds = (report.finished_at - report.started_at).total_seconds()
    parts.append(
        f"\n{len(report.feeds)} feeds, {report.new_items} new articles, "
        f"{len(report.failed)} failed feeds in {seconds:.1f}s"
    )
    if report.roles:
        r = report.roles
        parts.append(
            f"Stories: {r.get('new', 0)} new, {_n(r.get('update', 0), 'update')} of known stories, "
            f"{_n(r.get('copy', 0), 'near-duplicate copy', 'near-duplicate copies')}"
        )
    if report.topics:
        parts.append("\nTopics (new articles this cycle):")
        for rule_id, titles in sorted(report.topics.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            parts.append(f"  {rule_id}: {len(titles)}")
            parts.extend(f"    - {t}" for t in titles[:top])
    if report.failed:
        parts.append("\nFailed feeds:")
        parts.extend(
            f"  {f.name} ({redact(f.url)}): {f.status.value}: {redact_text(f.error or '')}" for f in report.failed
        )
    return "\n".join(parts)


def render_story(story: dict[str, Any]) -> str:
    """A story's header and its timeline, oldest item first."""
    topics = ", ".join(story["topics"]) or "none"
    lines = [
        f"Story {story['story_id']}: {story['headline']}",
        f"  {story['n_items']} items from {story['n_sources']} outlets, "
        f"{_cell(story['first_seen'])} to {_cell(story['last_seen'])}; topics: {topics}",
        "",
    ]
    rows = [
        (item["story_at"], item["outlet"], item["story_role"], ",".join(item["topics"]) or "-", item["title"])
        for item in story["items"]
    ]
    lines.append(table(("time", "outlet", "role", "topics", "title"), rows))
    lines.append("")
    lines.extend(f"  [{item['id']}] {item['url']}" for item in story["items"])
    return "\n".join(lines)
