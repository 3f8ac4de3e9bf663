"""The words of the rules, compiled for scanning: word patterns (``partner*``, case-sensitive
names), the one Aho–Corasick automaton that finds all of them in a document, the name patterns
of entity references, and the labels under which terms and references are looked up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

from tracker.rules import query as q
from tracker.rules.ruleset import Entity
from tracker.rules.textindex import Doc, words


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A word sequence; ``prefix[i]``: word i may continue (``partner*``)."""

    key: str  #: label used in evidence
    lower: tuple[str, ...]
    prefix: tuple[bool, ...]
    case: tuple[str, ...] | None  #: as written, for case-sensitive patterns

    def verify(self, doc: Doc, start: int) -> int:
        """End word index when the pattern matches at ``start``, else -1 (the first words already matched)."""
        end = start + len(self.lower)
        if end > len(doc.orig):
            return -1
        lower = doc.lower
        for i, (w, pre) in enumerate(zip(self.lower, self.prefix, strict=True)):
            got = lower[start + i]
            if not (got.startswith(w) if pre else got == w):
                return -1
        if self.case is not None:
            for i, (w, pre) in enumerate(zip(self.case, self.prefix, strict=True)):
                got = doc.orig[start + i]
                if not (got.startswith(w) if pre else got == w):
                    return -1
        return end


def _pattern(text: str, case_sensitive: bool, key: str) -> _Pattern | None:
    raw = text.split()
    parts: list[tuple[str, bool]] = []
    for token in raw:
        pre = token.endswith("*")
        ws = words(token.rstrip("*"))
        for j, w in enumerate(ws):
            parts.append((w, pre and j == len(ws) - 1))
    if not parts:
        return None
    return _Pattern(
        key=key,
        lower=tuple(w.lower() for w, _ in parts),
        prefix=tuple(p for _, p in parts),
        case=tuple(w for w, _ in parts) if case_sensitive else None,
    )


class _Automaton:
    """All patterns in one automaton, keyed on their words up to the first wildcard."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[tuple[int, _Pattern | None, int]]] = {}
        self.patterns: list[_Pattern] = []
        self._ids: dict[tuple[str, bool, str], int] = {}

    def add(self, text: str, case_sensitive: bool, key: str) -> int:
        """Register a pattern; returns its id (−1 when it has no words)."""
        ident = (text, case_sensitive, key)
        if ident in self._ids:
            return self._ids[ident]
        pat = _pattern(text, case_sensitive, key)
        if pat is None:
            self._ids[ident] = -1
            return -1
        pid = len(self.patterns)
        self.patterns.append(pat)
        self._ids[ident] = pid
        cut = next((i + 1 for i, p in enumerate(pat.prefix) if p), len(pat.lower))
        head = " " + " ".join(pat.lower[:cut]) + ("" if pat.prefix[cut - 1] else " ")
        # When the key is the whole pattern and case does not matter, a key hit is a match.
        exact = cut == len(pat.lower) and pat.case is None
        self._by_key.setdefault(head, []).append((pid, None if exact else pat, len(pat.lower)))
        return pid

    def build(self) -> None:
        self._auto = ahocorasick.Automaton()
        for head, pats in self._by_key.items():
            self._auto.add_word(head, (len(head), tuple(pats)))
        if self._by_key:
            self._auto.make_automaton()

    def scan(self, doc: Doc) -> dict[int, list[tuple[int, int]]]:
        """Pattern id → (start word, end word) of every occurrence."""
        hits: dict[int, list[tuple[int, int]]] = {}
        if not self._by_key:
            return hits
        for end_char, (length, pats) in self._auto.iter(doc.norm):
            start = doc.word_at(end_char - length + 1)
            for pid, pat, size in pats:
                end = start + size if pat is None else pat.verify(doc, start)
                if end >= 0:
                    hits.setdefault(pid, []).append((start, end))
        return hits


@dataclass
class _EntityRefs:
    """How an ``@ref`` is found: the name patterns of the entities it stands for."""

    names: list[tuple[int, Entity, bool]]  #: (pattern id, entity, ambiguous)
    excludes: list[int]
    contexts: dict[str, list[int]]  #: entity id → context pattern ids
    not_contexts: dict[str, list[int]]  #: entity id → pattern ids that rule an ambiguous name out
    ids: frozenset[str] = frozenset()  #: the entities it stands for


def _single(auto: _Automaton, ent: Entity, label: str) -> _EntityRefs:
    """The name patterns of one entity (a group: its own names only), for reference resolution."""
    names = [(p, ent, n in ent.ambiguous) for n in ent.names if (p := auto.add(n, ent.case_sensitive, label)) >= 0]
    excludes = [p for p in (auto.add(x, False, "!" + x) for x in ent.exclude) if p >= 0]
    return _EntityRefs(
        names=names,
        excludes=excludes,
        contexts={ent.id: _context_patterns(auto, ent.context, "?")},
        not_contexts={ent.id: _context_patterns(auto, ent.not_context, "!?")},
        ids=frozenset({ent.id}),
    )


def _context_patterns(auto: _Automaton, terms: Iterable[str], prefix: str) -> list[int]:
    ids = []
    for term in terms:
        case = term.startswith("case:")
        ids.append(auto.add(term[5:] if case else term, case, prefix + term))
    return [p for p in ids if p >= 0]


def _term_label(n: q.Term) -> str:
    # Quoted when it could read as an entity, a list or a case: term, so labels never collide.
    text = f'"{n.text}"' if n.text.startswith(("@", "$", '"', "case:")) else n.text
    return ("case:" if n.case_sensitive else "") + text


def _ref_label(n: q.EntityRef) -> str:
    return "@" + n.name + ("+" if n.related else "")
