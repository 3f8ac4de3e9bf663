"""Which entities a document mentions: the name hits of an ``@ref`` kept or dropped by its
exclusions and context terms (looked up, not scanned), and the referring words ("the automaker",
"she") resolved to the catalogue's entities (``tracker.rules.coref``)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from itertools import accumulate

from tracker.rules import coref
from tracker.rules.evaluators import Hit
from tracker.rules.ruleset import RuleSet
from tracker.rules.terms import _Automaton, _EntityRefs, _single
from tracker.rules.textindex import Doc


class _Coref:
    """The catalogue's referring words (``refer_as``, ``pronouns``) and the names they resolve
    against (see ``tracker.rules.coref``)."""

    def __init__(self, auto: _Automaton, ruleset: RuleSet) -> None:
        entities = ruleset.entities
        by_word: dict[tuple[str, str, bool], set[str]] = {}
        for ent in entities.values():
            if ent.type not in (coref.ORG, coref.PERSON):
                continue
            groups = [entities[g] for g in ent.groups if g in entities]
            for nearby, listed in ((False, ent.refer_as), (True, ent.pronouns)):
                inherited = [w for g in groups for w in (g.pronouns if nearby else g.refer_as)]
                for word in (*listed, *inherited):
                    by_word.setdefault((word, ent.type, nearby), set()).add(ent.id)
        self.referents: dict[int, list[coref.Referent]] = {}
        for (word, kind, nearby), ids in by_word.items():
            pid = auto.add(word, False, "~" + kind + word)
            if pid >= 0:
                self.referents.setdefault(pid, []).append(coref.Referent(kind, frozenset(ids), nearby))
        # Who can be an antecedent: organisations (their people count as them), people, and groups
        # (after "lawmakers", "she" is none of the catalogue's people).
        #: (names of one entity, the (kind, entity) timelines each of its mentions joins): a person is resolved
        #: once and counts as itself among people and as its organisation among organisations.
        self.named: list[tuple[_EntityRefs, tuple[tuple[str, str], ...]]] = []
        for ent in entities.values():
            if ent.type == coref.ORG:
                targets: tuple[tuple[str, str], ...] = ((coref.ORG, ent.id),)
            elif ent.type == coref.PERSON:
                targets = ((coref.PERSON, ent.id), *((coref.ORG, org) for org in ent.related_to[:1]))
            elif ent.type == "group" and ent.names:
                targets = ((coref.ORG, ent.id), (coref.PERSON, ent.id))
            else:
                continue
            self.named.append((_single(auto, ent, "=" + ent.id), targets))

    def resolve(self, doc: Doc, where: _Where) -> dict[str, list[tuple[int, int]]]:
        raw = where.raw
        occurrences = [(span, r) for pid, refs in self.referents.items() for span in raw.get(pid, ()) for r in refs]
        if not occurrences:
            return {}
        mentions: dict[str, list[tuple[tuple[int, int], str]]] = {coref.ORG: [], coref.PERSON: []}
        for refs, targets in self.named:
            if not any(raw.get(pid) for pid, _, _ in refs.names):
                continue
            for s, e, _ in _resolve_entities(where, refs, ""):
                for kind, entity in targets:
                    mentions[kind].append(((s, e), entity))
        timelines = {kind: coref.Timeline(found) for kind, found in mentions.items() if found}
        return coref.resolve(timelines, occurrences, doc.paragraph_of)


class _Where:
    """Where patterns occur in a document, for exclusions and context terms (each looked up, not scanned)."""

    def __init__(self, doc: Doc, raw: dict[int, list[tuple[int, int]]]) -> None:
        self.doc = doc
        self.raw = raw
        self._paragraphs: dict[tuple[int, ...], set[int]] = {}

    def anywhere(self, pids: Sequence[int]) -> bool:
        return any(self.raw.get(pid) for pid in pids)

    def in_paragraph(self, pids: Sequence[int], paragraph: int) -> bool:
        key = tuple(pids)
        found = self._paragraphs.get(key)
        if found is None:
            found = {self.doc.paragraph_of(s) for pid in pids for s, _ in self.raw.get(pid, ())}
            self._paragraphs[key] = found
        return paragraph in found

    def has_context(self, pids: Sequence[int], scope: str, at: int) -> bool:
        """A hit of ``pids`` in the document, or with ``scope == "paragraph"`` in the paragraph of word ``at``."""
        if scope == "paragraph":
            return self.in_paragraph(pids, self.doc.paragraph_of(at))
        return self.anywhere(pids)


class _Spans:
    """Sorted word spans; ``covers(s, e)``: one of them contains [s, e)."""

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        ordered = sorted(spans)
        self.starts = [s for s, _ in ordered]
        self.reach = list(accumulate((e for _, e in ordered), max))  #: furthest end among the first i + 1

    def covers(self, s: int, e: int) -> bool:
        i = bisect.bisect_right(self.starts, s)
        return i > 0 and self.reach[i - 1] >= e


def _resolve_entities(where: _Where, refs: _EntityRefs, label: str) -> list[Hit]:
    raw = where.raw
    out: list[Hit] = []
    blocked: _Spans | None = None
    for pid, ent, ambiguous in refs.names:
        found = raw.get(pid)
        if not found:
            continue
        if blocked is None:
            blocked = _Spans(span for x in refs.excludes for span in raw.get(x, ()))
        for s, e in found:
            if blocked.covers(s, e):
                continue
            if ambiguous and (
                not where.has_context(refs.contexts.get(ent.id, []), ent.context_scope, s)
                or where.has_context(refs.not_contexts.get(ent.id, []), "paragraph", s)
            ):
                continue
            out.append((s, e, label))
    out.sort()
    # Overlapping names of one ref ("Ford" inside "Ford Motor"): keep the longest.
    kept: list[Hit] = []
    for hit in out:
        if kept and hit[0] < kept[-1][1]:
            if hit[1] > kept[-1][1]:
                kept[-1] = hit
            continue
        kept.append(hit)
    return kept
