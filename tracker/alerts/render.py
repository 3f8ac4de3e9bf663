"""An alert message's stored content rendered as plain text, Markdown or HTML, whichever
the receiving service takes.

Everything that comes from a feed (headlines, outlet names, snippets, "New:" lines) is
text, never markup: escaped for HTML, and for Markdown every character that Markdown or a
chat dialect of it reads as markup backslash-escaped (so ``*``, ``_``, ``[x](...)``,
``<script>``, ``@everyone`` all show as typed); a link is made only to an ``http(s)`` URL. Titles
never carry feed text (a service may show its title field as markup): they name the
event and the topic, which come from the rules.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

FORMATS = ("text", "markdown", "html")
LABELS = {"new_story": "NEW", "update": "UPDATE", "spike": "SPIKE"}
#: what Markdown (CommonMark, and the chat dialects Apprise converts it to) reads as markup:
#: emphasis, code, links, HTML, entities, headings, lists, tables, mentions
_MARKUP = re.compile(r"([\\`*_\[\]()<>#+\-!|~{}&@])")
_LIST_START = re.compile(r"^(\s*\d+)([.)])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(value: Any) -> str:
    """One line of feed text: no control characters, no line breaks."""
    return " ".join(_CONTROL.sub(" ", str(value or "")).split())


def escape(text: str, fmt: str) -> str:
    if fmt == "html":
        return html.escape(text, quote=True)
    if fmt == "markdown":
        return _LIST_START.sub(r"\1\\\2", _MARKUP.sub(r"\\\1", text))
    return text


def safe_url(url: Any) -> str | None:
    """``url`` when it is an http(s) URL fit to link to, else None."""
    url = str(url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or _CONTROL.search(url):
        return None
    return quote(url, safe=":/?#[]@!$&'()*+,;=%-._~")  # spaces, quotes and angle brackets encoded


def link(text: str, url: Any, fmt: str) -> str:
    """``text`` (feed text) linked to ``url`` when that is a safe http(s) URL."""
    shown = escape(clean(text), fmt)
    target = safe_url(url)
    if target is None or fmt == "text":
        return shown
    if fmt == "html":
        return f'<a href="{html.escape(target, quote=True)}">{shown}</a>'
    return f"[{shown}](<{target}>)"


def bold(text: str, fmt: str) -> str:
    return {"html": f"<b>{text}</b>", "markdown": f"**{text}**"}.get(fmt, text)


def when(value: Any, timezone: str) -> str:
    if not value:
        return ""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def title(content: Mapping[str, Any]) -> str:
    """The message's title: the kind of event and the topic, or the counts of a summary."""
    events = content["events"]
    if content["kind"] == "summary":
        return f"{content['alert']}: {counts(events)}"
    e = events[0]
    topic = e.get("topic_title") or e.get("topic") or ""
    what = {"new_story": "New story", "update": "Story update", "spike": "Spike"}.get(e["event"], e["event"])
    return f"{what} · {topic}" if topic else what


def counts(events: Sequence[Mapping[str, Any]]) -> str:
    names = {"new_story": ("new story", "new stories"), "update": ("update", "updates"), "spike": ("spike", "spikes")}
    parts = []
    for kind, (one, many) in names.items():
        n = sum(1 for e in events if e["event"] == kind)
        if n:
            parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts) or "nothing"


def render(content: Mapping[str, Any], fmt: str, ref: str) -> str:
    """The body of the message in ``fmt`` ("text", "markdown" or "html")."""
    tz = content.get("timezone") or "UTC"
    if content["kind"] == "summary":
        lines = _summary(content, fmt, tz)
    else:
        e = content["events"][0]
        lines = _spike(e, fmt, tz) if e["event"] == "spike" else _story(e, fmt, tz)
    lines.append(escape(f"ref {ref}", fmt))
    return ("<br>\n" if fmt == "html" else "\n").join(lines)


def _story(e: Mapping[str, Any], fmt: str, tz: str) -> list[str]:
    label = escape(f"[{LABELS.get(e['event'], e['event'])}]", fmt)
    lines = [f"{label} {bold(link(e.get('headline', ''), e.get('url'), fmt), fmt)}"]
    meta = [
        f"Outlets: {', '.join(clean(o) for o in e.get('outlets') or []) or 'unknown'}",
        when(e.get("at"), tz),
        f"Topic: {clean(e.get('topic_title') or e.get('topic'))}",
    ]
    lines.append(escape(" · ".join(m for m in meta if m), fmt))
    if e.get("snippet"):
        lines.append(escape(clean(e["snippet"]), fmt))
    if e.get("new"):
        lines.append(escape(f"New: {clean(e['new'])}", fmt))
    target = safe_url(e.get("url"))
    if target:
        lines.append(link(target, target, fmt))
    return lines


def _spike(e: Mapping[str, Any], fmt: str, tz: str) -> list[str]:
    topic = clean(e.get("topic_title") or e.get("topic"))
    head = (
        f"[SPIKE] {topic}: {e.get('count')} articles between {when(e.get('window_start'), tz)} "
        f"and {when(e.get('window_end'), tz)}, against a usual {float(e.get('baseline') or 0):g}"
    )
    lines = [escape(head, fmt)]
    for story in e.get("stories") or []:
        lines.append("• " + link(story.get("headline", ""), story.get("url"), fmt))
    return lines


def _summary(content: Mapping[str, Any], fmt: str, tz: str) -> list[str]:
    events = content["events"]
    intro = f"{counts(events)} for {clean(content['alert'])}"
    if content.get("held"):
        intro += f", held during the quiet hours ({clean(content.get('quiet'))})"
    lines = [escape(intro + ":", fmt)]
    for e in events:
        label = escape(f"[{LABELS.get(e['event'], e['event'])}]", fmt)
        if e["event"] == "spike":
            text = f"{clean(e.get('topic_title') or e.get('topic'))}: {e.get('count')} articles"
            lines.append(f"• {label} {escape(text, fmt)}")
            continue
        outlets = ", ".join(clean(o) for o in (e.get("outlets") or [])[:3])
        line = f"• {label} {link(e.get('headline', ''), e.get('url'), fmt)}"
        if outlets:
            line += escape(f" ({outlets})", fmt)
        target = safe_url(e.get("url"))
        if target and fmt == "text":
            line += f" {target}"
        lines.append(line)
    return lines
