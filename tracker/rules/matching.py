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

This module holds the ``Matcher``, the compiling of query trees into evaluators (with the anchor
and required labels of each) and the explanation of misses. The pieces it ties together:
``terms`` (word patterns, the automaton), ``mentions`` (entities and references found in a
document), ``evaluators`` (a query over a range of words), ``evidence`` (score, evidence,
snippets) and ``confirm`` (the topic-model step).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tracker.core.types import Match, Rule
from tracker.rules import classifier
from tracker.rules import query as q
from tracker.rules.confirm import _TopicModels
from tracker.rules.evaluators import (
    Hit,
    _And,
    _AtLeast,
    _Ctx,
    _Eval,
    _Field,
    _Lit,
    _Near,
    _Not,
    _Or,
    _Scope,
    _windows_in,
)
from tracker.rules.evidence import MAX_EVIDENCE_PER_TERM, _score, highlight
from tracker.rules.mentions import _Coref, _resolve_entities, _Where
from tracker.rules.ruleset import Entity, RuleSet
from tracker.rules.terms import _Automaton, _context_patterns, _EntityRefs, _ref_label, _term_label
from tracker.rules.textindex import Doc, index

__all__ = ["MAX_EVIDENCE_PER_TERM", "MAX_MATCH_CHARS", "Inspection", "Matcher", "highlight", "render"]

#: Characters of the title and of the text that are matched; the rest is ignored (rules/README.md, "Limits").
MAX_MATCH_CHARS = 200_000


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
        rule_refs: dict[str, list[str]] = {}  #: rule id → entity labels of its queries (model features)
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
            rule_refs[rule.id] = sorted(used)
            self._rules.append((rule, _compile(node), _anchor(node), _required(node)))
            if candidate is None:
                continue
            self._candidate_evals[rule.id] = _compile(candidate)
            topic = model.get(rule.id) if model is not None else None
            if topic is not None:
                self._candidates[i] = (self._candidate_evals[rule.id], _required(candidate), topic)
                extra_anchors[i] = _anchor(candidate)
        self._models = _TopicModels(self._candidates, rule_refs)
        self._coref = (
            _Coref(self._auto, ruleset) if any(e.refer_as or e.pronouns for e in ruleset.entities.values()) else None
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
            contexts[ent.id] = _context_patterns(self._auto, ent.context, "?")
            not_contexts[ent.id] = _context_patterns(self._auto, ent.not_context, "!?")
        self._refs[label] = _EntityRefs(
            names=names,
            excludes=excludes,
            contexts=contexts,
            not_contexts=not_contexts,
            ids=frozenset(e.id for e in entities),
        )

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
                m = (
                    self._models.confirm(i, rule, doc, hits, present)
                    if m is None
                    else self._models.vet(i, m, doc, hits)
                )
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
        return Inspection(query, cand, gate, self._models.features(rule_id, doc, hits))

    def _anchored_rules(self, present: set[str]) -> set[int]:
        found = set(self._always)
        for label in present:
            found.update(self._anchored.get(label, ()))
        return found

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


# -- query trees compiled into evaluators ------------------------------------------------------


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
