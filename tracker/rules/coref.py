"""Which named thing a description or a pronoun stands for: "the automaker", "she".

News names an actor once and then refers to it by role ("the Detroit automaker", "the
company") or by pronoun ("she"). The entity catalogue lists such words per entity
(``refer_as``, ``pronouns``, inherited from the entity's groups), and this module decides,
for each occurrence, which entity it stands for: the entity named most recently before it
among all entities of the same kind. It stands for nothing when that entity does not list
the word (after "Toyota", "the automaker" is not GM even though GM was named earlier), when
nothing was named before it, or, for a pronoun, when the name is further back than the
previous paragraph. This is the plain recency rule of salience-based resolvers; it is
right for the usual news pattern (name, then role) and errs on the side of resolving nothing.

Pure: positions in, positions out. ``tracker.rules.matching`` supplies the mentions (names
already disambiguated) and adds the resolved occurrences to the entity's hits.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

Span = tuple[int, int]  #: (first word, end word exclusive)

#: Kinds of antecedent: an organisation (its people count as mentions of it) or a person.
ORG, PERSON = "org", "person"


@dataclass(frozen=True, slots=True)
class Referent:
    """What one referring word can stand for."""

    kind: str  #: ORG or PERSON: the timeline it is resolved against
    entities: frozenset[str]  #: the entities that list it
    nearby: bool  #: a pronoun: its antecedent is in the same or the previous paragraph


class Timeline:
    """Every mention of every entity of one kind, in document order."""

    def __init__(self, mentions: Iterable[tuple[Span, str]]) -> None:
        ordered = sorted((span[1], span[0], ent) for span, ent in mentions)
        self.ends = [end for end, _, _ in ordered]
        self.starts = [start for _, start, _ in ordered]
        self.entities = [ent for _, _, ent in ordered]
        self._sorted_starts = sorted(self.starts)

    def named_at(self, word: int) -> bool:
        """A mention starts at ``word`` ("the company Acme": an apposition, not a reference)."""
        i = bisect.bisect_left(self._sorted_starts, word)
        return i < len(self._sorted_starts) and self._sorted_starts[i] == word

    def overlaps(self, span: Span) -> bool:
        i = bisect.bisect_right(self.ends, span[0])
        return i < len(self.ends) and self.starts[i] < span[1]


#: How much a mention counts for each paragraph it lies back (a description's salience).
DECAY = 0.5


def resolve(
    timelines: Mapping[str, Timeline],
    occurrences: Sequence[tuple[Span, Referent]],
    paragraph_of: Callable[[int], int],
) -> dict[str, list[Span]]:
    """Entity id → the spans of the referring words that stand for it.

    A pronoun stands for the entity named last (in its paragraph or the one before). A
    description ("the automaker") stands for the most salient entity of its kind so far: each
    mention counts 1 in its own paragraph and half as much for every paragraph further back,
    and a mention in the title counts 1 throughout (the headline names the subject). So "the
    company" after "GM ..., as rivals led by BYD ..." is GM, not BYD.
    """
    out: dict[str, list[Span]] = {}
    for kind, timeline in timelines.items():
        mine = sorted((span, ref) for span, ref in occurrences if ref.kind == kind)
        if mine:
            _resolve_kind(timeline, mine, paragraph_of, out)
    return out


def _resolve_kind(
    timeline: Timeline,
    occurrences: Sequence[tuple[Span, Referent]],
    paragraph_of: Callable[[int], int],
    out: dict[str, list[Span]],
) -> None:
    salience: dict[str, float] = {}
    titled: set[str] = set()
    paragraph = 0
    last: tuple[int, str] | None = None  #: (paragraph, entity) of the latest mention
    i = 0
    n = len(timeline.ends)
    for span, ref in occurrences:
        if timeline.overlaps(span) or timeline.named_at(span[1]):
            continue  # part of a name, or followed by one ("the Detroit automaker GM")
        while i < n and timeline.ends[i] <= span[0]:
            _advance(salience, paragraph, at := paragraph_of(timeline.starts[i]))
            paragraph = at
            entity = timeline.entities[i]
            if at == 0:
                titled.add(entity)
            else:
                salience[entity] = salience.get(entity, 0.0) + 1.0
            last = (at, entity)
            i += 1
        if last is None:
            continue
        here = paragraph_of(span[0])
        _advance(salience, paragraph, here)
        paragraph = here
        if ref.nearby:
            found = last[1] if last[0] >= here - 1 else None
        else:
            scores = {e: salience.get(e, 0.0) + (1.0 if e in titled else 0.0) for e in (*salience, *titled)}
            top = max(scores.values())
            # The most salient; of equals, the one named last.
            found = last[1] if scores.get(last[1]) == top else max(scores, key=scores.__getitem__)
        if found is not None and found in ref.entities:
            out.setdefault(found, []).append(span)


def _advance(salience: dict[str, float], old: int, new: int) -> None:
    """Decay every salience for the paragraphs between ``old`` and ``new``."""
    if new > old and salience:
        factor = DECAY ** (new - old)
        for entity in salience:
            salience[entity] *= factor
