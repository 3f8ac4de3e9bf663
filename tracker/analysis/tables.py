"""Plain-text rendering of cycle reports, feed health and stories (for the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from tracker.core.text import plain
from tracker.core.types import CycleReport
from tracker.core.urls import redact, redact_text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, width: int | None = None) -> str:
    """A plain-text table; with ``width`` (a terminal's), the widest columns are cut to fit it."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_is_num(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]
    if width is not None:
        widths = _fit(widths, width - 2 * (len(widths) - 1))

    def line(values: Sequence[str]) -> str:
        out = [
            _clip(v, w).rjust(w) if num else _clip(v, w).ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


#: no column is cut narrower than this to fit a terminal
MIN_COLUMN = 8


def _fit(widths: list[int], room: int) -> list[int]:
    """Column widths that fit ``room`` characters, taken from the widest columns first."""
    widths = list(widths)
    while sum(widths) > room:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        if widths[widest] <= MIN_COLUMN:
            break
        widths[widest] -= 1
    return widths


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, list | tuple | set | frozenset):
        return _cell(",".join(str(x) for x in v))
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
    common = common_failure(report)
    if common:
        parts.append(common)
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


#: what failures have in common, by words in their errors, and what to check
_CAUSES = (
    (
        ("name or service not known", "name resolution", "nodename nor servname", "getaddrinfo", "no address"),
        "name resolution — is the network or proxy up?",
    ),
    (("certificate", "ssl", "tls"), "TLS errors — is a proxy intercepting HTTPS? ([fetch] ca_file trusts its CA)"),
    (("timed out", "timeout"), "timeouts — is the network slow, or a firewall dropping traffic?"),
    (("connection refused", "refused the connection"), "connection refused — is a proxy or firewall in the way?"),
    (("private address", "not a public address"), "refused by the private-address guard ([fetch] allowed_hosts)"),
    (("network is unreachable", "no route to host"), "no route — is the machine offline?"),
)


def common_failure(report: CycleReport) -> str | None:
    """One line when every feed of a cycle (two or more) failed for the same kind of reason."""
    failed = report.failed
    if len(report.feeds) < 2 or len(failed) != len(report.feeds):
        return None
    for words, cause in _CAUSES:
        hits = sum(1 for f in failed if any(w in (f.error or "").lower() for w in words))
        if hits >= 0.8 * len(failed):
            return f"{len(failed)}/{len(report.feeds)} feeds failed: {cause}"
    statuses = {f.status.value for f in failed}
    if len(statuses) == 1:
        return f"{len(failed)}/{len(report.feeds)} feeds failed, all with {statuses.pop()}"
    return f"{len(failed)}/{len(report.feeds)} feeds failed"


def render_story(story: dict[str, Any]) -> str:
    """A story's header and its timeline, oldest item first."""
    topics = ", ".join(story["topics"]) or "none"
    lines = [
        f"Story {story['story_id']}: {story['headline']}",
        f"  {_n(story['n_items'], 'item')} from {_n(story['n_sources'], 'outlet')}, "
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
    updates = [item for item in story["items"] if item["story_role"] == "update"]
    if updates:
        lines += ["", "What each update added:"]
        for item in updates:
            added = item.get("developments") or []
            if not added:
                lines.append(f"  [{item['id']}] {item['outlet']}: nothing the story did not already report")
            for n, found in enumerate(added):
                facts = f"  ({', '.join(found['facts'])})" if found["facts"] else ""
                head = f"  [{item['id']}] {item['outlet']}: " if n == 0 else "      "
                lines.append(f"{head}New: {_clip(found['sentence'], 220)}{facts}")
    if story.get("merges"):
        lines.extend(["", "Merged stories:"])
        lines.extend(
            f"  story {m['merged_story_id']} at {_cell(m['at'])}: item {m['item_id']} linked both "
            f"(probability {m['score']:.2f}, mostly {m['reason']})"
            for m in story["merges"]
        )
    return "\n".join(lines)
