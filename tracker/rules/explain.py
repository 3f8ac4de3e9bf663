"""Readable explanations of matches (for `tracker match --explain` and `tracker explain`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tracker.core.types import Match
from tracker.rules.matching import highlight


def explain_match(m: Match) -> dict[str, Any]:
    """The explanation fields added to a `tracker match` line."""
    out: dict[str, Any] = {
        "terms": list(m.terms),
        "evidence": [asdict(e) for e in m.evidence],
        "highlighted": [highlight_terms(s, m.terms) for s in m.snippets],
    }
    if m.model is not None:
        # The query was false; its candidate query was true and the topic model confirmed it.
        out["confirmed_by_model"] = {"probability": m.model, "words": list(m.model_words)}
    return out


def highlight_terms(snippet: str, terms: tuple[str, ...] | list[str]) -> str:
    """The snippet with every occurrence of the matched terms in [brackets]."""
    spans: list[tuple[int, int]] = []
    lowered = snippet.lower()
    for term in sorted(set(terms), key=len, reverse=True):
        needle, start = term.lower(), 0
        while needle and (i := lowered.find(needle, start)) >= 0:
            end = i + len(needle)
            boundary = (i == 0 or not lowered[i - 1].isalnum()) and (end == len(lowered) or not lowered[end].isalnum())
            if boundary and not any(a < end and i < b for a, b in spans):
                spans.append((i, end))
            start = end
    return highlight(snippet, spans)


def render_item(item: dict[str, Any]) -> str:
    lines = [
        f"item {item['id']}: {item['title']}",
        f"  url:       {item['url']}",
        f"  published: {item['published_at'] or '-'}",
        f"  text:      {item['text_source']}, {len(item['text'] or '')} characters",
    ]
    for src in item["sources"]:
        lines.append(f"  source:    {src['name']} ({src['entry_url']})")
    if not item["matches"]:
        lines.append("\nno rule matched")
    for m in item["matches"]:
        lines.append(f"\n{m['rule_id']}  score {m['score']}  (rule version {m['rule_hash']})")
        lines.append("  terms: " + ", ".join(m["terms"]))
        for ev in m["evidence"]:
            if ev.get("field") == "model":
                lines.append(
                    f"  confirmed by the topic model: probability {ev.get('probability')} (the query was false, "
                    f"its candidate query true); words that weighed most: {ev['text'] or '-'}"
                )
        shown = [ev for ev in m["evidence"] if ev.get("field") != "model"]
        for ev in shown[:30]:
            lines.append(f"    {ev['field']}[{ev['start']}:{ev['end']}]  {ev['text']!r}  ← {ev['term']}")
        if len(shown) > 30:
            lines.append(f"    … {len(shown) - 30} more")
        for snippet in (m["snippet"] or "").split("\n"):
            if snippet:
                lines.append("  > " + highlight_terms(snippet, m["terms"]))
    return "\n".join(lines)
