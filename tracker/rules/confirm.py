"""The topic-model step of matching: a rule with a model has its candidate query confirmed by the
model (or, where the model is sure enough, the model alone), and its true query vetoed where the
model is all but sure it is wrong."""

from __future__ import annotations

from dataclasses import replace
from operator import itemgetter

from tracker.core.types import Match, Rule
from tracker.rules import classifier
from tracker.rules.evaluators import Hit, _Eval
from tracker.rules.evidence import _evidence, _score, _snippets
from tracker.rules.textindex import Doc


class _TopicModels:
    """The topic models of the rules that have one, and the features they read."""

    def __init__(
        self,
        candidates: dict[int, tuple[_Eval, list[frozenset[str]], classifier.TopicModel]],
        rule_refs: dict[str, list[str]],
    ) -> None:
        #: rule index → (candidate evaluator, its required labels, the topic model), for rules with a model
        self.candidates = candidates
        self._rule_refs = rule_refs  #: rule id → entity labels of its queries (model features)
        self._word_features: tuple[Doc | None, frozenset[str]] = (None, frozenset())

    def features(self, rule_id: str, doc: Doc, hits: dict[str, list[Hit]]) -> frozenset[str]:
        """What the model of ``rule_id`` reads: the document's words and word pairs (computed once
        per document, whichever rules ask) and the rule's labels found in it."""
        seen, words = self._word_features
        if seen is not doc:
            words = frozenset(classifier.word_features(doc.lower, lowered=True))
            self._word_features = (doc, words)  # one tuple: safe to share between threads
        return words.union(label for label in self._rule_refs.get(rule_id, ()) if label in hits)

    def confirm(self, i: int, rule: Rule, doc: Doc, hits: dict[str, list[Hit]], present: set[str]) -> Match | None:
        """The rule's candidate query confirmed by its topic model; or, where no paragraph satisfies
        that query but the entities it needs occur, the model alone when it is sure enough (its
        ``alone`` cut-off). None when neither holds."""
        evaluator, required, topic = self.candidates[i]
        if any(need.isdisjoint(present) for need in required):
            return None
        found = _score(replace(rule, threshold=0.0), evaluator, doc, hits)
        if found is None and topic.alone > 1.0:
            return None
        feats = self.features(rule.id, doc, hits)
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

    def vet(self, i: int, found: Match, doc: Doc, hits: dict[str, list[Hit]]) -> Match | None:
        """A true query, unless the rule's topic model is all but sure it is wrong (its ``veto``)."""
        topic = self.candidates[i][2]
        if topic.veto <= 0.0:
            return found
        return None if topic.p(self.features(found.rule, doc, hits)) < topic.veto else found
