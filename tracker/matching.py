"""Pure topic matching: (title, text) + RuleSet → list[Match].

No I/O here: ``tracker match``, the poll pipeline and the tests all call the same
``Matcher.match``. Each distinct term is compiled once into a regular expression and
searched once over the document; windows (title, paragraphs, sentences) are then
evaluated from the hit positions.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .rules import Entity, RuleSet
from .types import Match, Rule

_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’']))\s+(?=[\"“‘'(]?[A-Z0-9])")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\n(?=\S)")


@dataclass(frozen=True, slots=True)
class Hit:
    start: int
    end: int
    surface: str


def term_pattern(term: str) -> re.Pattern[str]:
    """Regex for a plain term: whole words, ``word*`` = any ending, spaces/hyphens interchangeable.

    A term with an upper-case letter is matched case-sensitively ("GM", "Xi"), others not.
    """
    parts = []
    for word in re.split(r"[\s\-]+", term.strip()):
        if word:
            parts.append(re.escape(word.rstrip("*")) + (r"[\w\-]*" if word.endswith("*") else ""))
    body = r"[\s\-]+".join(parts)
    flags = 0 if any(c.isupper() for c in term) else re.IGNORECASE
    return re.compile(rf"(?<![\w\-]){body}(?![\w])", flags)


def _names_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    alts = sorted({n for n in names if n}, key=len, reverse=True)
    if not alts:
        return None
    body = "|".join(r"[\s\-]+".join(re.escape(w) for w in re.split(r"\s+", n)) for n in alts)
    return re.compile(rf"(?<![\w]){body}(?![\w])")


class _EntityFinder:
    def __init__(self, entities: tuple[Entity, ...]) -> None:
        self.names = _names_pattern(n for e in entities for n in e.names)
        self.exclude = _names_pattern(x for e in entities for x in e.exclude)

    def find(self, doc: str) -> list[Hit]:
        if self.names is None:
            return []
        blocked = [(m.start(), m.end()) for m in self.exclude.finditer(doc)] if self.exclude else []
        hits = []
        for m in self.names.finditer(doc):
            if not any(s <= m.start() < e or s < m.end() <= e for s, e in blocked):
                hits.append(Hit(m.start(), m.end(), m.group(0)))
        return hits


class Matcher:
    """A RuleSet compiled for matching. Build once, call ``match`` for every article."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._finders: dict[str, _EntityFinder | re.Pattern[str]] = {}
        for rule in ruleset.rules:
            for term in _terms(rule):
                if term not in self._finders:
                    self._finders[term] = (
                        _EntityFinder(ruleset.members(term[1:])) if term.startswith("@") else term_pattern(term)
                    )
        # A literal every hit must contain (lower-cased): a cheap substring test skips the
        # regular expressions of terms that cannot occur in a document.
        self._probes = {term: _probe(term) for term in self._finders}

    def match(self, title: str, text: str) -> list[Match]:
        doc = _Document(title or "", text or "")
        lowered = doc.full.lower()
        hits = {term: self._find(term, doc.full) if self._probes[term] in lowered else [] for term in self._finders}
        out = []
        for rule in self.ruleset.rules:
            m = _evaluate(rule, doc, hits)
            if m is not None:
                out.append(m)
        return out

    def _find(self, term: str, full: str) -> list[Hit]:
        finder = self._finders[term]
        if isinstance(finder, _EntityFinder):
            return finder.find(full)
        return [Hit(m.start(), m.end(), m.group(0)) for m in finder.finditer(full)]


def _probe(term: str) -> str:
    if term.startswith("@"):
        return ""
    words = [w.rstrip("*") for w in re.split(r"[\s\-]+", term.strip()) if w.rstrip("*")]
    return max(words, key=len).lower() if words else ""


def _terms(rule: Rule) -> list[str]:
    return [t for g in rule.all_of for t in g] + list(rule.any_of) + list(rule.none_of)


class _Document:
    """Title and text joined, with window boundaries: window 0 is the title."""

    def __init__(self, title: str, text: str) -> None:
        self.full = title + "\n\n" + text
        offset = len(title) + 2
        title_window = (0, len(title))  # always window 0, even when empty, and never split
        self.paragraphs = [title_window]
        pos = 0
        for m in _PARAGRAPH_BREAK.finditer(text):
            self._add(self.paragraphs, offset + pos, offset + m.start())
            pos = m.end()
        self._add(self.paragraphs, offset + pos, offset + len(text))
        self.sentences: list[tuple[int, int]] = [title_window]
        for start, end in self.paragraphs[1:]:
            pos = start
            for m in _SENTENCE_END.finditer(self.full, start, end):
                self._add(self.sentences, pos, m.start())
                pos = m.end()
            self._add(self.sentences, pos, end)

    @staticmethod
    def _add(windows: list[tuple[int, int]], start: int, end: int) -> None:
        if end > start and (not windows or start >= windows[-1][1]):
            windows.append((start, end))

    def windows(self, kind: str) -> list[tuple[int, int]]:
        if kind == "sentence":
            return self.sentences
        if kind == "document":
            return [(0, len(self.full))]
        return self.paragraphs


def _window_of(starts: list[int], pos: int) -> int:
    return bisect.bisect_right(starts, pos) - 1


def _evaluate(rule: Rule, doc: _Document, hits: dict[str, list[Hit]]) -> Match | None:
    if not all(any(hits[t] for t in group) for group in rule.all_of):
        return None
    windows = doc.windows(rule.window)
    starts = [s for s, _ in windows]

    def per_window(terms: Iterable[str]) -> dict[int, list[Hit]]:
        found: dict[int, list[Hit]] = {}
        for t in terms:
            for h in hits[t]:
                found.setdefault(_window_of(starts, h.start), []).append(h)
        return found

    group_windows = [per_window(group) for group in rule.all_of]
    blocked = set(per_window(rule.none_of))
    good = sorted(set.intersection(*(set(g) for g in group_windows)) - blocked)
    if len(good) < rule.min_windows:
        return None
    title_hit = bool(good) and good[0] == 0 and rule.window != "document"
    boosts = {h.surface.lower() for t in rule.any_of for h in hits[t]}
    score = len(good) + (0.5 if title_hit else 0.0) + 0.25 * len(boosts)
    if score < rule.threshold:
        return None
    terms: dict[str, str] = {}
    for h in sorted((h for g in group_windows for w in good for h in g.get(w, [])), key=lambda h: h.start):
        terms.setdefault(h.surface.lower(), h.surface)
    snippets = tuple(_snippet(doc.full, *windows[w]) for w in good[:2])
    return Match(
        rule=rule.id, score=round(score, 3), terms=tuple(terms.values()), snippets=snippets, rule_hash=rule.content_hash
    )


def _snippet(full: str, start: int, end: int, limit: int = 320) -> str:
    text = " ".join(full[start:end].split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
