"""A true query made a Match: its score (see ``tracker.rules.matching``), over the whole document or
one section of a roundup, the evidence hits it reports, its terms and its snippets; and ``highlight``
for showing spans of text."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from tracker.core.types import Evidence, Match, Rule
from tracker.rules.evaluators import Hit, _best_closeness, _Ctx, _Eval
from tracker.rules.textindex import Doc

#: Evidence hits a Match reports per term label (the first ones in the document).
MAX_EVIDENCE_PER_TERM = 100


def _score(rule: Rule, evaluator: _Eval, doc: Doc, hits: dict[str, list[Hit]]) -> Match | None:
    """The match over the whole document or, in a roundup, within one of its sections (its heading as
    its title), whichever scores higher: a section can carry a topic the headline does not name."""
    best = _evaluate(evaluator, _Ctx(doc, hits), 0, len(doc.orig), doc.title_end)
    for lo, hi, title_end in doc.sections:
        found = _evaluate(evaluator, _Ctx(doc, hits, title_end), lo, hi, title_end)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    if best is None or best[0] < rule.threshold:
        return None
    score, evidence = best
    shown = _first_per_label(evidence, MAX_EVIDENCE_PER_TERM)
    terms: dict[str, str] = {}
    for s, e, _ in shown:
        surface = doc.full[doc.span(s)[0] : doc.span(e - 1)[1]]
        terms.setdefault(surface.lower(), surface)
    return Match(
        rule=rule.id,
        score=score,
        terms=tuple(terms.values()),
        snippets=_snippets(doc, evidence),
        rule_hash=rule.content_hash,
        evidence=tuple(_evidence(doc, h) for h in shown),
    )


def _evaluate(evaluator: _Eval, ctx: _Ctx, lo: int, hi: int, title_end: int) -> tuple[float, list[Hit]] | None:
    """(score, evidence) of the query over [lo, hi), or None when it is false there."""
    ok, found = evaluator.eval(ctx, lo, hi)
    if not ok:
        return None
    doc = ctx.doc
    evidence = sorted(set(found))
    paragraphs = {doc.paragraph_of(s) for s, _, _ in evidence}
    in_title = any(s < title_end for s, _, _ in evidence if s >= lo)
    score = len(paragraphs) + (0.5 if in_title else 0.0)
    closeness = _best_closeness(ctx.near, set(evidence))  # of the NEAR pairs that count
    score += min(0.01 * len(evidence), 0.3) + 0.1 * closeness
    return round(score, 3), evidence


def _first_per_label(hits: Sequence[Hit], limit: int) -> list[Hit]:
    """The hits in order, without those after the first ``limit`` of their label."""
    seen: dict[str, int] = {}
    out = []
    for hit in hits:
        n = seen.get(hit[2], 0)
        if n < limit:
            seen[hit[2]] = n + 1
            out.append(hit)
    return out


def _evidence(doc: Doc, hit: Hit) -> Evidence:
    s, e, label = hit
    start, end = doc.span(s)[0], doc.span(e - 1)[1]
    in_title = s < doc.title_end
    base = 0 if in_title else len(doc.title) + 2
    return Evidence(
        term=label, text=doc.full[start:end], field="title" if in_title else "text", start=start - base, end=end - base
    )


def _snippets(doc: Doc, evidence: Sequence[Hit], limit: int = 2) -> tuple[str, ...]:
    """The one or two text sentences with the most evidence (the title when that is all there is)."""
    counts: dict[int, int] = {}
    starts = [lo for lo, _ in doc.sentences]
    for s, _, _ in evidence:
        n = bisect.bisect_right(starts, s) - 1
        counts[n] = counts.get(n, 0) + 1
    body = [n for n in counts if n > 0]
    chosen = sorted(sorted(body, key=lambda n: (-counts[n], n))[:limit]) or [0]
    return tuple(_sentence_text(doc, n) for n in chosen)


def _sentence_text(doc: Doc, n: int, limit: int = 400) -> str:
    a, b = doc.sentence_chars[n]
    text = " ".join(doc.full[a:b].split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def highlight(text: str, spans: Iterable[tuple[int, int]], before: str = "[", after: str = "]") -> str:
    """Wrap the character spans of ``text`` (sorted, non-overlapping) in markers."""
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out += [text[pos:start], before, text[start:end], after]
        pos = end
    out.append(text[pos:])
    return "".join(out)
