"""Scoring rules on a labelled corpus (``tracker rules test``) and training the topic model
(``tracker rules train``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.core.errors import RuleError
from tracker.rules import classifier
from tracker.rules.matching import Matcher


@dataclass(frozen=True, slots=True)
class Miss:
    doc_id: str
    title: str
    detail: str  #: a false positive's snippet, or the query parts a false negative lacks


@dataclass
class RuleScore:
    rule: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    false_positives: list[Miss] = field(default_factory=list)
    false_negatives: list[Miss] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_labeled(path: Path) -> list[dict[str, Any]]:
    """JSON Lines with id, title, text, labels; errors name the file and line."""
    docs = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise RuleError(f"not JSON: {exc}", path=str(path), line=number) from None
            if not isinstance(doc, dict) or not isinstance(doc.get("labels", []), list):
                raise RuleError("expected an object with id, title, text, labels", path=str(path), line=number)
            docs.append(doc)
    return docs


def train_model(matcher: Matcher, docs: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> classifier.Model:
    """A topic model for every rule with a candidate query, fitted on labeled documents
    (``tracker rules train``). Its cut-offs are chosen by 5-fold cross-validation: those at which
    the rule together with the model scores the best F1 on the held-out folds."""
    topics = {}
    for rule_id in sorted(matcher.ruleset.candidates):
        seen = [matcher.inspect(rule_id, str(d.get("title") or ""), str(d.get("text") or "")) for d in docs]
        feats = [s.features for s in seen]
        positive = [rule_id in (d.get("labels") or []) for d in docs]
        if not any(positive) or all(positive):
            continue
        cutoffs = classifier.choose_cutoffs(
            feats, positive, [s.query for s in seen], [s.candidate for s in seen], [s.gate for s in seen]
        )
        topics[rule_id] = classifier.train_topic(feats, positive, cutoffs=cutoffs)
    return classifier.Model(topics=topics, trained_on=tuple(sources))


def evaluate(matcher: Matcher, docs: Sequence[Mapping[str, Any]], rule_ids: Iterable[str]) -> list[RuleScore]:
    scores = {r: RuleScore(r) for r in rule_ids}
    for doc in docs:
        title, text = str(doc.get("title") or ""), str(doc.get("text") or "")
        found = {m.rule: m for m in matcher.match(title, text)}
        labels = set(doc.get("labels") or [])
        for rule, score in scores.items():
            gold, got = rule in labels, rule in found
            if gold and got:
                score.tp += 1
            elif got:
                score.fp += 1
                score.false_positives.append(Miss(str(doc.get("id")), title, " … ".join(found[rule].snippets)))
            elif gold:
                score.fn += 1
                missing = matcher.explain_miss(rule, title, text)
                detail = "missing: " + "; ".join(missing) if missing else "query true, score below threshold"
                score.false_negatives.append(Miss(str(doc.get("id")), title, detail))
    return list(scores.values())
