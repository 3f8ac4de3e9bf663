"""Pure topic matching: (title, text) + RuleSet → list[Match]. No I/O.

Every word, phrase and entity name of every rule is compiled into one Aho–Corasick
automaton (pyahocorasick), so a document is scanned once whatever the number of rules.
Entities are then resolved from their names (exclusions, context for ambiguous names),
and only the rules whose anchor terms occurred — terms without which the query cannot be
true — are evaluated. ``tracker match``, the poll pipeline and the tests all call
``Matcher.match``.

Score of a match: the number of paragraphs (the title counts as one) that hold evidence —
the hits that made the query true — + 0.5 more when the title does, + 0.01 per evidence hit
(at most 0.3), + 0.1 × the closeness of the best NEAR pair. A rule matches when its query
is true and the score reaches its threshold (default 1.0); ``threshold = 1.5`` asks for
evidence in the title or in a second paragraph.

Cost: every step is linear (or n log n) in the length of the document, however often a term
repeats: NEAR sweeps sorted occurrence lists instead of comparing every pair, scopes visit only
the windows inside the range they are asked about, and exclusions and context terms are looked
up, not scanned. As a second line of defence only the first ``MAX_MATCH_CHARS`` characters of
the title and of the text are matched, and a match reports at most ``MAX_EVIDENCE_PER_TERM``
evidence hits per term (its score and snippets still count them all).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from operator import itemgetter

import ahocorasick

from . import classifier, coref
from . import query as q
from .rules import Entity, RuleSet
from .textindex import Doc, index, words
from .types import Evidence, Match, Rule

Hit = tuple[int, int, str]  #: (first word, end word exclusive, label)
_FALSE: tuple[bool, list[Hit]] = (False, [])

#: Characters of the title and of the text that are matched; the rest is ignored (rules/README.md, "Limits").
MAX_MATCH_CHARS = 200_000
#: Evidence hits a Match reports per term label (the first ones in the document).
MAX_EVIDENCE_PER_TERM = 100
_NO_GAP = 1 << 62  #: "no partner" in gap computations
_NO_HIT: Hit = (-1, -1, "")  #: equal to no real hit
_NearFound = tuple[list[Hit], list[Hit], int, int]  #: see ``_Ctx.near``


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


class _Ctx:
    __slots__ = ("doc", "hits", "n", "near", "title_end")

    def __init__(self, doc: Doc, hits: dict[str, list[Hit]], title_end: int | None = None) -> None:
        self.doc = doc
        self.hits = hits
        self.n = len(doc.orig)
        #: ``title:`` means the tokens before this (in a section of a roundup: its heading).
        self.title_end = doc.title_end if title_end is None else title_end
        #: Every NEAR evaluation that found pairs: (left hits with a partner, right hits with a partner, distance,
        #: gap of the closest pair). The pairs themselves are not listed (there can be quadratically many); the
        #: score recovers the closest pair among the kept evidence from these lists (``_best_closeness``).
        self.near: list[_NearFound] = []


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a rule's queries say of one article, for training its topic model."""

    query: bool  #: the rule's query is true
    candidate: bool  #: its candidate query is true
    gate: bool  #: the entities its candidate query needs occur in the article
    features: frozenset[str]  #: what the model reads


class Matcher:
    """A RuleSet compiled for matching. Build once, call ``match`` for every article."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._auto = _Automaton()
        self._terms: dict[str, int] = {}  #: term label → pattern id
        self._refs: dict[str, _EntityRefs] = {}
        self._rules: list[tuple[Rule, _Eval, frozenset[str] | None, list[frozenset[str]]]] = []
        self._candidate_evals: dict[str, _Eval] = {}  #: rule id → its compiled candidate query
        #: rule index → (candidate evaluator, its required labels, the topic model), for rules with a model
        self._candidates: dict[int, tuple[_Eval, list[frozenset[str]], classifier.TopicModel]] = {}
        self._word_features: tuple[Doc | None, frozenset[str]] = (None, frozenset())
        self._rule_refs: dict[str, list[str]] = {}  #: rule id → entity labels of its queries (model features)
        extra_anchors: dict[int, frozenset[str] | None] = {}
        model = ruleset.model
        for i, rule in enumerate(ruleset.rules):
            node = ruleset.queries[rule.id]
            candidate = ruleset.candidates.get(rule.id)
            trees = [node] if candidate is None else [node, candidate]
            used: set[str] = set()
            for n in (n for tree in trees for n in q.walk(tree)):
                if isinstance(n, q.Term):
                    label = _term_label(n)
                    self._terms[label] = self._auto.add(n.text, n.case_sensitive, label)
                elif isinstance(n, q.EntityRef):
                    self._entity_ref(n)
                    used.add(_ref_label(n))
            self._rule_refs[rule.id] = sorted(used)
            self._rules.append((rule, _compile(node), _anchor(node), _required(node)))
            if candidate is None:
                continue
            self._candidate_evals[rule.id] = _compile(candidate)
            topic = model.get(rule.id) if model is not None else None
            if topic is not None:
                self._candidates[i] = (self._candidate_evals[rule.id], _required(candidate), topic)
                extra_anchors[i] = _anchor(candidate)
        self._coref = (
            _Coref(self, ruleset) if any(e.refer_as or e.pronouns for e in ruleset.entities.values()) else None
        )
        self._auto.build()
        # Pattern id → the term labels and entity refs it serves (a scan touches only these).
        self._pid_terms: dict[int, list[str]] = {}
        for label, pid in self._terms.items():
            self._pid_terms.setdefault(pid, []).append(label)
        self._pid_refs: dict[int, list[str]] = {}
        for label, ref in self._refs.items():
            for pid, _, _ in ref.names:
                self._pid_refs.setdefault(pid, []).append(label)
        self._anchored: dict[str, list[int]] = {}
        self._always: list[int] = []
        for i, (_, _, anchor, _) in enumerate(self._rules):
            if i in extra_anchors:
                more = extra_anchors[i]
                anchor = None if anchor is None or more is None else anchor | more
            if anchor is None:
                self._always.append(i)
            else:
                for label in anchor:
                    self._anchored.setdefault(label, []).append(i)

    def _entity_ref(self, ref: q.EntityRef) -> None:
        label = _ref_label(ref)
        if label in self._refs:
            return
        entities = self.ruleset.resolve(ref.name, ref.related)
        names: list[tuple[int, Entity, bool]] = []
        excludes: list[int] = []
        contexts: dict[str, list[int]] = {}
        not_contexts: dict[str, list[int]] = {}
        for ent in entities:
            ambiguous = set(ent.ambiguous)
            for name in ent.names:
                pid = self._auto.add(name, ent.case_sensitive, label)
                if pid >= 0:
                    names.append((pid, ent, name in ambiguous))
            excludes.extend(p for p in (self._auto.add(x, False, "!" + x) for x in ent.exclude) if p >= 0)
            contexts[ent.id] = self._context_patterns(ent.context, "?")
            not_contexts[ent.id] = self._context_patterns(ent.not_context, "!?")
        self._refs[label] = _EntityRefs(
            names=names,
            excludes=excludes,
            contexts=contexts,
            not_contexts=not_contexts,
            ids=frozenset(e.id for e in entities),
        )

    def _single(self, ent: Entity, label: str) -> _EntityRefs:
        """The name patterns of one entity (a group: its own names only), for reference resolution."""
        names = [
            (p, ent, n in ent.ambiguous) for n in ent.names if (p := self._auto.add(n, ent.case_sensitive, label)) >= 0
        ]
        excludes = [p for p in (self._auto.add(x, False, "!" + x) for x in ent.exclude) if p >= 0]
        return _EntityRefs(
            names=names,
            excludes=excludes,
            contexts={ent.id: self._context_patterns(ent.context, "?")},
            not_contexts={ent.id: self._context_patterns(ent.not_context, "!?")},
            ids=frozenset({ent.id}),
        )

    def _context_patterns(self, terms: Iterable[str], prefix: str) -> list[int]:
        ids = []
        for term in terms:
            case = term.startswith("case:")
            ids.append(self._auto.add(term[5:] if case else term, case, prefix + term))
        return [p for p in ids if p >= 0]

    # -- matching ------------------------------------------------------------------------

    def match(self, title: str, text: str) -> list[Match]:
        doc = _index(title, text)
        hits = self._hits(doc)
        present = set(hits)
        candidates = self._anchored_rules(present)
        out = []
        for i in sorted(candidates):
            rule, evaluator, _, required = self._rules[i]
            m = None
            if not any(need.isdisjoint(present) for need in required):  # else a part it cannot do without is absent
                m = _score(rule, evaluator, doc, hits)
            if i in self._candidates:
                m = self._confirm(i, doc, hits, present) if m is None else self._vet(i, m, doc, hits)
            if m is not None:
                out.append(m)
        return out

    def inspect(self, rule_id: str, title: str, text: str) -> Inspection:
        """For training the topic model of ``rule_id``: what its queries say of an article, and
        the features the model reads."""
        doc = _index(title, text)
        hits = self._hits(doc)
        i = next(n for n, r in enumerate(self._rules) if r[0].id == rule_id)
        rule, evaluator = self._rules[i][0], self._rules[i][1]
        query = _score(rule, evaluator, doc, hits) is not None
        candidate = self._candidate_evals.get(rule_id)
        cand = candidate is not None and _score(replace(rule, threshold=0.0), candidate, doc, hits) is not None
        present = set(hits)
        gate = (
            candidate is not None
            and i in self._anchored_rules(present)
            and not any(need.isdisjoint(present) for need in _required(self.ruleset.candidates[rule_id]))
        )
        return Inspection(query, cand, gate, self._features(rule_id, doc, hits))

    def _anchored_rules(self, present: set[str]) -> set[int]:
        found = set(self._always)
        for label in present:
            found.update(self._anchored.get(label, ()))
        return found

    def _features(self, rule_id: str, doc: Doc, hits: dict[str, list[Hit]]) -> frozenset[str]:
        """What the model of ``rule_id`` reads: the document's words and word pairs (computed once
        per document, whichever rules ask) and the rule's labels found in it."""
        seen, words = self._word_features
        if seen is not doc:
            words = frozenset(classifier.word_features(doc.lower, lowered=True))
            self._word_features = (doc, words)  # one tuple: safe to share between threads
        return words.union(label for label in self._rule_refs.get(rule_id, ()) if label in hits)

    def _confirm(self, i: int, doc: Doc, hits: dict[str, list[Hit]], present: set[str]) -> Match | None:
        """The rule's candidate query confirmed by its topic model; or, where no paragraph satisfies
        that query but the entities it needs occur, the model alone when it is sure enough (its
        ``alone`` cut-off). None when neither holds."""
        evaluator, required, topic = self._candidates[i]
        if any(need.isdisjoint(present) for need in required):
            return None
        rule = self._rules[i][0]
        found = _score(replace(rule, threshold=0.0), evaluator, doc, hits)
        if found is None and topic.alone > 1.0:
            return None
        feats = self._features(rule.id, doc, hits)
        p = topic.p(feats)
        if p < (topic.threshold if found is not None else topic.alone):
            return None
        p, contributions = topic.probability(feats)  # only for a match: the words that weighed most
        words = tuple(f for f, c in contributions if c > 0)[:8]
        if found is not None:
            return replace(found, score=max(found.score, rule.threshold), model=round(p, 3), model_words=words)
        # The evidence is where the entities the candidate needs first occur.
        firsts = (min((hits[label][0] for label in need if label in hits), key=itemgetter(0)) for need in required)
        evidence = sorted(set(firsts))
        return Match(
            rule=rule.id,
            score=rule.threshold,
            terms=tuple(dict.fromkeys(doc.full[doc.span(s)[0] : doc.span(e - 1)[1]] for s, e, _ in evidence)),
            snippets=_snippets(doc, evidence),
            rule_hash=rule.content_hash,
            evidence=tuple(_evidence(doc, h) for h in evidence),
            model=round(p, 3),
            model_words=words,
        )

    def _vet(self, i: int, found: Match, doc: Doc, hits: dict[str, list[Hit]]) -> Match | None:
        """A true query, unless the rule's topic model is all but sure it is wrong (its ``veto``)."""
        topic = self._candidates[i][2]
        if topic.veto <= 0.0:
            return found
        return None if topic.p(self._features(found.rule, doc, hits)) < topic.veto else found

    def explain_miss(self, rule_id: str, title: str, text: str) -> list[str]:
        """For a document the rule does not match: what is missing, from the closest branch of
        its query and the closest window (empty when the query is true but the score is low)."""
        doc = _index(title, text)
        ctx = _Ctx(doc, self._hits(doc))
        return _why_false(self.ruleset.queries[rule_id], ctx, 0, len(doc.orig))

    def _hits(self, doc: Doc) -> dict[str, list[Hit]]:
        """Term and entity label → sorted hits, for the labels that occur in ``doc``."""
        raw = self._auto.scan(doc)
        hits: dict[str, list[Hit]] = {}
        refs: set[str] = set()
        for pid, found in raw.items():
            for label in self._pid_terms.get(pid, ()):
                # One pattern's hits come in text order already (the automaton reports by end).
                hits[label] = [(s, e, label) for s, e in found]
            refs.update(self._pid_refs.get(pid, ()))
        where = _Where(doc, raw)
        referred = self._coref.resolve(doc, where) if self._coref is not None else {}
        if referred:
            refs.update(label for label, r in self._refs.items() if not r.ids.isdisjoint(referred))
        for label in refs:
            resolved = _resolve_entities(where, self._refs[label], label)
            more = [(s, e, label) for ent in self._refs[label].ids for s, e in referred.get(ent, ())]
            if more:
                resolved = sorted(set(resolved).union(more))
            if resolved:
                hits[label] = resolved
        return hits


class _Coref:
    """The catalogue's referring words (``refer_as``, ``pronouns``) and the names they resolve
    against (see ``tracker.coref``)."""

    def __init__(self, matcher: Matcher, ruleset: RuleSet) -> None:
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
            pid = matcher._auto.add(word, False, "~" + kind + word)
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
            self.named.append((matcher._single(ent, "=" + ent.id), targets))

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


def _index(title: str | None, text: str | None) -> Doc:
    return index(_clip(title or "", MAX_MATCH_CHARS), _clip(text or "", MAX_MATCH_CHARS))


def _clip(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, cut back a little so that no word is cut in two."""
    if len(text) <= limit:
        return text
    floor = max(0, limit - 64)
    cut = limit
    while cut > floor and text[cut - 1].isalnum() and text[cut].isalnum():
        cut -= 1
    return text[: cut if cut > floor else limit]


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


def _term_label(n: q.Term) -> str:
    # Quoted when it could read as an entity, a list or a case: term, so labels never collide.
    text = f'"{n.text}"' if n.text.startswith(("@", "$", '"', "case:")) else n.text
    return ("case:" if n.case_sensitive else "") + text


def _ref_label(n: q.EntityRef) -> str:
    return "@" + n.name + ("+" if n.related else "")


# -- evaluation ----------------------------------------------------------------------------


class _Eval:
    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        raise NotImplementedError


class _Lit(_Eval):
    def __init__(self, label: str) -> None:
        self.label = label

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        found = ctx.hits.get(self.label)
        if not found:
            return _FALSE
        if lo == 0 and hi >= ctx.n:
            return True, found
        a = bisect.bisect_left(found, (lo,))
        b = bisect.bisect_left(found, (hi,))
        inside = [h for h in found[a:b] if h[1] <= hi]
        return bool(inside), inside


class _And(_Eval):
    def __init__(self, children: Sequence[_Eval]) -> None:
        # Cheap literal checks first: they fail fastest.
        self.children = sorted(children, key=lambda c: not isinstance(c, _Lit))

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        acc: list[Hit] = []
        for child in self.children:
            ok, found = child.eval(ctx, lo, hi)
            if not ok:
                return _FALSE
            acc.extend(found)
        return True, acc


class _Or(_Eval):
    def __init__(self, children: Sequence[_Eval]) -> None:
        self.children = list(children)

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        acc: list[Hit] = []
        ok = False
        for child in self.children:
            c_ok, found = child.eval(ctx, lo, hi)
            if c_ok:
                ok = True
                acc.extend(found)
        return ok, acc


class _Not(_Eval):
    def __init__(self, child: _Eval) -> None:
        self.child = child

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        return (not self.child.eval(ctx, lo, hi)[0]), []


class _Near(_Eval):
    def __init__(self, left: _Eval, right: _Eval, distance: int) -> None:
        self.left, self.right, self.distance = left, right, distance

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        l_ok, left = self.left.eval(ctx, lo, hi)
        if not l_ok:
            return _FALSE
        r_ok, right = self.right.eval(ctx, lo, hi)
        if not r_ok:
            return _FALSE
        d = self.distance
        if len(left) * len(right) <= 16:  # a handful (one sentence or paragraph): comparing all pairs is quicker
            pairs = [(a, b) for a in left for b in right if max(b[0] - a[1], a[0] - b[1], 0) <= d and a != b]
            if not pairs:
                return _FALSE
            near_left, near_right = [a for a, _ in pairs], [b for _, b in pairs]
            closest = min(max(b[0] - a[1], a[0] - b[1], 0) for a, b in pairs)
        else:  # sorted sweeps: O((L + R) log(L + R)), where all pairs would be O(L × R)
            gaps = _nearest_gaps(left, right)
            near_left = [a for a, gap in zip(left, gaps, strict=True) if gap <= d]
            if not near_left:
                return _FALSE
            near_right = [b for b, gap in zip(right, _nearest_gaps(right, left), strict=True) if gap <= d]
            closest = min(gaps)
        ctx.near.append((near_left, near_right, d, closest))
        return True, sorted(set(near_left).union(near_right))


def _nearest_gaps(hits: Sequence[Hit], others: Sequence[Hit]) -> list[int]:
    """For each hit, the fewest words between it and a hit of ``others`` other than itself (``_NO_GAP``: none).

    O((n + m) log m): ``others`` sorted by start and by end answer, for a hit [s, e), "the first
    other starting at or after e", "the last other ending at or before s" and "does an other
    overlap [s, e)" by binary search. The last needs, for every prefix of ``others`` by start,
    the furthest end, and the furthest end of a hit that is not that one (the hit itself may be
    among the others, and a hit is never its own partner).
    """
    if not hits or not others:
        return [_NO_GAP] * len(hits)
    if len(hits) * len(others) <= 16:  # a handful (one sentence or paragraph): comparing all pairs is quicker
        return [min([max(b[0] - a[1], a[0] - b[1], 0) for b in others if b != a] or [_NO_GAP]) for a in hits]
    by_start = sorted(others, key=itemgetter(0))
    starts = [b[0] for b in by_start]
    ends = sorted(b[1] for b in others)
    # Prefix i (the first i others by start): furthest end, its hit, furthest end among the other hits.
    t_end, t_hit, s_end = -1, _NO_HIT, -1
    top_end, top_hit, second_end = [t_end], [t_hit], [s_end]
    for b in by_start:
        if b != t_hit:
            if b[1] > t_end:
                t_end, t_hit, s_end = b[1], b, t_end
            elif b[1] > s_end:
                s_end = b[1]
        top_end.append(t_end)
        top_hit.append(t_hit)
        second_end.append(s_end)
    out = []
    for a in hits:
        s, e = a[0], a[1]
        i = bisect.bisect_left(starts, e)  # others[:i] start before e; others[i] is the first at or after
        reach = second_end[i] if top_hit[i] == a else top_end[i]
        if reach > s:  # one of them also ends after s: it overlaps
            out.append(0)
            continue
        best = starts[i] - e if i < len(starts) else _NO_GAP
        j = bisect.bisect_right(ends, s)  # ends[:j] end at or before s
        if j and s - ends[j - 1] < best:
            best = s - ends[j - 1]
        out.append(best)
    return out


def _best_closeness(near: Iterable[_NearFound], kept: set[Hit]) -> float:
    """Closeness (1 − gap / (distance + 1)) of the closest NEAR pair whose two hits are both kept evidence."""
    best = 0.0
    for left, right, d, closest in near:
        if 1 - closest / (d + 1) <= best:
            continue  # not even its closest pair would do better
        k_left = [a for a in left if a in kept]
        k_right = [b for b in right if b in kept]
        if len(k_left) == len(left) and len(k_right) == len(right):
            gap = closest  # all kept: its closest pair counts
        else:
            gap = min(_nearest_gaps(k_left, k_right), default=_NO_GAP)
        if gap <= d:
            best = max(best, 1 - gap / (d + 1))
    return best


class _Field(_Eval):
    def __init__(self, field: str, child: _Eval) -> None:
        self.title = field == "title"
        self.child = child

    def bounds(self, ctx: _Ctx, lo: int, hi: int) -> tuple[int, int]:
        split = ctx.title_end
        return (lo, min(hi, split)) if self.title else (max(lo, split), hi)

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        lo, hi = self.bounds(ctx, lo, hi)
        if lo >= hi:
            return _FALSE
        return self.child.eval(ctx, lo, hi)


class _Scope(_Eval):
    def __init__(self, scope: str, child: _Eval, anchor: frozenset[str] | None) -> None:
        self.sentence = scope == "sentence"
        self.child = child
        self.anchor = anchor

    def windows(self, ctx: _Ctx, lo: int, hi: int) -> list[list[Hit]]:
        """Evidence of every window (within [lo, hi)) in which the child is true."""
        spans = ctx.doc.sentences if self.sentence else ctx.doc.paragraphs
        starts = ctx.doc.sent_starts if self.sentence else ctx.doc.para_starts
        if self.anchor is None:
            candidates: Iterable[int] = _windows_in(starts, spans, lo, hi)
        else:
            # Only windows holding an anchor term (one starting in [lo, hi)) can satisfy the child.
            candidates = sorted(
                {
                    bisect.bisect_right(starts, h[0]) - 1
                    for label in self.anchor
                    for h in _starting_in(ctx.hits.get(label, []), lo, hi)
                }
            )
        out = []
        for n in candidates:
            w_lo, w_hi = spans[n]
            a, b = max(lo, w_lo), min(hi, w_hi)
            if a < b:
                ok, found = self.child.eval(ctx, a, b)
                if ok:
                    out.append(found)
        return out

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        wins = self.windows(ctx, lo, hi)
        return (True, [h for w in wins for h in w]) if wins else _FALSE


def _windows_in(starts: Sequence[int], spans: Sequence[tuple[int, int]], lo: int, hi: int) -> range:
    """Numbers of the windows (sentences or paragraphs) that share a word with [lo, hi)."""
    first = max(bisect.bisect_right(starts, lo) - 1, 0)
    while first < len(spans) and spans[first][1] <= lo:  # lo falls after the window it starts in
        first += 1
    return range(first, bisect.bisect_left(starts, hi))


def _starting_in(hits: Sequence[Hit], lo: int, hi: int) -> Sequence[Hit]:
    """The hits (sorted) that start in [lo, hi)."""
    if lo <= 0 and (not hits or hits[-1][0] < hi):
        return hits
    return hits[bisect.bisect_left(hits, (lo,)) : bisect.bisect_left(hits, (hi,))]


class _AtLeast(_Eval):
    def __init__(self, count: int, child: _Eval) -> None:
        self.count, self.child = count, child

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        child = self.child
        if isinstance(child, _Field) and isinstance(child.child, _Scope):  # atleast(n, text:paragraph(...))
            lo, hi = child.bounds(ctx, lo, hi)
            child = child.child
        if isinstance(child, _Scope):
            wins = child.windows(ctx, lo, hi)
            if len(wins) < self.count:
                return _FALSE
            return True, [h for w in wins for h in w]
        ok, found = self.child.eval(ctx, lo, hi)
        if not ok or len({(h[0], h[1]) for h in found}) < self.count:
            return _FALSE
        return True, found


def _compile(node: q.Node) -> _Eval:
    if isinstance(node, q.Term):
        return _Lit(_term_label(node))
    if isinstance(node, q.EntityRef):
        return _Lit(_ref_label(node))
    if isinstance(node, q.And):
        return _And([_compile(c) for c in node.children])
    if isinstance(node, q.Or):
        return _Or([_compile(c) for c in node.children])
    if isinstance(node, q.Not):
        return _Not(_compile(node.child))
    if isinstance(node, q.Near):
        return _Near(_compile(node.left), _compile(node.right), node.distance)
    if isinstance(node, q.Field):
        return _Field(node.field, _compile(node.child))
    if isinstance(node, q.Scope):
        return _Scope(node.scope, _compile(node.child), _anchor(node.child))
    if isinstance(node, q.AtLeast):
        return _AtLeast(node.count, _compile(node.child))
    raise TypeError(f"unknown query node {node!r}")


def _anchor(node: q.Node) -> frozenset[str] | None:
    """Labels of which at least one must occur for the query to be true (None: cannot tell)."""
    if isinstance(node, q.Term):
        return frozenset({_term_label(node)})
    if isinstance(node, q.EntityRef):
        return frozenset({_ref_label(node)})
    if isinstance(node, q.And):
        options = [a for a in (_anchor(c) for c in node.children) if a is not None]
        return min(options, key=len) if options else None
    if isinstance(node, q.Or):
        parts = [_anchor(c) for c in node.children]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*parts)  # type: ignore[arg-type]
    if isinstance(node, q.Near):
        return _anchor(node.left)
    if isinstance(node, (q.Field, q.Scope, q.AtLeast)):
        return _anchor(node.child)
    return None


def _why_false(node: q.Node, ctx: _Ctx, lo: int, hi: int, compiled: dict[int, _Eval] | None = None) -> list[str]:
    """What ``node`` lacks in [lo, hi) (``compiled``: node id → evaluator, shared by the recursive calls,
    so that a query is compiled once and not again for every window)."""
    if compiled is None:
        compiled = {}

    def evaluator(n: q.Node) -> _Eval:
        found = compiled.get(id(n))
        if found is None:
            found = compiled[id(n)] = _compile(n)
        return found

    if evaluator(node).eval(ctx, lo, hi)[0]:
        return []
    if isinstance(node, q.And):
        return [why for child in node.children for why in _why_false(child, ctx, lo, hi, compiled)]
    if isinstance(node, q.Or) and not node.label:
        options = [_why_false(child, ctx, lo, hi, compiled) for child in node.children]
        return min(options, key=len)
    if isinstance(node, q.Field):
        split = ctx.doc.title_end
        a, b = (lo, min(hi, split)) if node.field == "title" else (max(lo, split), hi)
        if a >= b:
            return [render(node)]
        return [f"{node.field}: {why}" for why in _why_false(node.child, ctx, a, b, compiled)]
    if isinstance(node, q.Scope):
        windows = ctx.doc.sentences if node.scope == "sentence" else ctx.doc.paragraphs
        starts = ctx.doc.sent_starts if node.scope == "sentence" else ctx.doc.para_starts
        best: list[str] | None = None
        for n in _windows_in(starts, windows, lo, hi):
            w_lo, w_hi = windows[n]
            a, b = max(lo, w_lo), min(hi, w_hi)
            if a < b:
                why = _why_false(node.child, ctx, a, b, compiled)
                if best is None or len(why) < len(best):
                    best = why
        return [f"in every {node.scope}: {why}" for why in (best or [render(node.child)])]
    if isinstance(node, q.AtLeast):
        child = evaluator(node.child)
        if isinstance(child, _Scope):
            found = len(child.windows(ctx, lo, hi))
        else:
            found = len({(h[0], h[1]) for h in child.eval(ctx, lo, hi)[1]})
        return [f"{render(node)} (found {found})"]
    if isinstance(node, q.Not):
        return [f"{render(node)} (it occurs)"]
    return [render(node)]


def _required(node: q.Node) -> list[frozenset[str]]:
    """Label sets of which each must have a hit for the query to be true (a cheap pre-filter)."""
    if isinstance(node, (q.Term, q.EntityRef)):
        return [_anchor(node)]  # type: ignore[list-item]
    if isinstance(node, q.And):
        return [need for c in node.children for need in _required(c)]
    if isinstance(node, q.Or):
        anchor = _anchor(node)
        return [anchor] if anchor is not None else []
    if isinstance(node, q.Near):
        return _required(node.left) + _required(node.right)
    if isinstance(node, (q.Field, q.Scope, q.AtLeast)):
        return _required(node.child)
    return []


# -- scoring, evidence, snippets -------------------------------------------------------------


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


def render(node: q.Node) -> str:
    """A query node back as query text (for explanations)."""
    if isinstance(node, q.Term):
        body = f'"{node.text}"' if " " in node.text else node.text
        return ("case:" if node.case_sensitive else "") + body
    if isinstance(node, q.EntityRef):
        return _ref_label(node)
    if isinstance(node, q.And):
        return "(" + " AND ".join(render(c) for c in node.children) + ")"
    if isinstance(node, q.Or):
        return node.label or "(" + " OR ".join(render(c) for c in node.children) + ")"
    if isinstance(node, q.Not):
        return "NOT " + render(node.child)
    if isinstance(node, q.Near):
        return f"{render(node.left)} NEAR/{node.distance} {render(node.right)}"
    if isinstance(node, q.Field):
        return f"{node.field}:{render(node.child)}"
    if isinstance(node, q.Scope):
        return f"{node.scope}({render(node.child)})"
    if isinstance(node, q.AtLeast):
        return f"atleast({node.count}, {render(node.child)})"
    return repr(node)
