"""A second, statistical signal for the topic rules: one small linear model per topic.

The boolean query stays the primary record of why an article matched. A rule may also
carry a ``candidate`` query, looser than its query (the topic's actors are there, but not in
the phrasing the query asks for). When the query is false and the candidate is true, the
topic's model reads the article and confirms it when its probability reaches the model's
threshold; the match then says so (``Match.model``) and names the words that weighed most.

The model is logistic regression over binary features — the article's words and word pairs
(lower-cased, without the commonest function words) and the entities and terms the rules
found in it (``@gm+``, ``$oppose``) — each document's vector scaled to unit length. It is
trained by ``tracker rules train`` on labeled articles of the project's own writing and
stored as plain JSON beside the rules (``model.json``), so it can be read, diffed and
replaced. Inference is a dictionary look-up per feature: no numerical library is imported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_FILE = "model.json"
MODEL_VERSION = 1
#: Words too common to carry a topic (they only add noise to a small model).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "by",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "their",
        "we",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "not",
        "no",
        "so",
        "if",
        "than",
        "then",
        "there",
        "here",
        "which",
        "who",
        "whom",
        "what",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "only",
        "own",
        "same",
        "too",
        "very",
        "can",
        "will",
        "just",
        "should",
        "now",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
        "also",
        "into",
        "over",
        "after",
        "before",
        "about",
        "up",
        "down",
        "out",
        "off",
        "again",
        "further",
        "once",
        "s",
        "said",
        "says",
        "say",
        "would",
        "could",
        "may",
        "might",
        "must",
        "shall",
    ]
)
#: Features an article contributes at most (a giant page cannot make inference slow).
MAX_FEATURES = 20_000


@dataclass(frozen=True, slots=True)
class TopicModel:
    bias: float
    threshold: float
    weights: Mapping[str, float] = field(default_factory=dict)

    def probability(self, features: Iterable[str]) -> tuple[float, list[tuple[str, float]]]:
        """P(topic) and the features that pushed it most (by contribution, strongest first)."""
        distinct = set(features)
        present = [f for f in distinct if f in self.weights]
        scale = 1.0 / math.sqrt(max(len(distinct), 1))
        contributions = sorted(((f, self.weights[f] * scale) for f in present), key=lambda fc: -abs(fc[1]))
        z = self.bias + sum(c for _, c in contributions)
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0))), contributions


@dataclass(frozen=True, slots=True)
class Model:
    topics: Mapping[str, TopicModel]
    trained_on: tuple[str, ...] = ()

    def get(self, rule_id: str) -> TopicModel | None:
        return self.topics.get(rule_id)


def features(words: Sequence[str], labels: Iterable[str] = ()) -> list[str]:
    """Binary features of a document: its words and adjacent word pairs (lower-case, stopwords
    dropped; a pair does not span a paragraph break) and the rule labels found in it."""
    out: set[str] = set(labels)
    prev = ""
    for w in words:
        if not w[:1].isalnum():
            prev = ""  # a paragraph separator
            continue
        w = w.lower()
        if w in STOPWORDS or w.isdigit():
            prev = ""
            continue
        out.add(w)
        if prev:
            out.add(prev + " " + w)
        prev = w
        if len(out) >= MAX_FEATURES:
            break
    return sorted(out)


def load(path: Path) -> Model:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("version") != MODEL_VERSION or not isinstance(data.get("topics"), dict):
        raise ValueError(f"not a version-{MODEL_VERSION} topic model")
    topics = {}
    for rule_id, t in data["topics"].items():
        weights = {str(k): float(v) for k, v in dict(t["weights"]).items()}
        topics[str(rule_id)] = TopicModel(bias=float(t["bias"]), threshold=float(t["threshold"]), weights=weights)
    return Model(topics=topics, trained_on=tuple(str(x) for x in data.get("trained_on", [])))


def dump(model: Model, path: Path) -> None:
    data: dict[str, Any] = {
        "version": MODEL_VERSION,
        "trained_on": list(model.trained_on),
        "topics": {
            rule_id: {
                "bias": round(t.bias, 6),
                "threshold": t.threshold,
                "weights": {k: round(v, 6) for k, v in sorted(t.weights.items())},
            }
            for rule_id, t in sorted(model.topics.items())
        },
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


#: L2 penalty of the fit (features are unit-length vectors, so this is on their scale).
L2 = 0.1
#: No threshold below this is chosen (an unsure model confirms nothing).
MIN_THRESHOLD = 0.3


def choose_threshold(
    docs: Sequence[Sequence[str]],
    positive: Sequence[bool],
    query: Sequence[bool],
    candidate: Sequence[bool],
    *,
    folds: int = 5,
) -> float:
    """The probability above which candidates are confirmed: the one that gives the rule plus its
    confirmed candidates the best F1 on held-out folds (ties: the higher). 1.01 (never) when no
    threshold does better than the rule alone."""
    n = len(docs)
    oof = [0.0] * n
    for k in range(folds):
        train = [i for i in range(n) if i % folds != k]
        if not any(positive[i] for i in train) or all(positive[i] for i in train):
            continue
        model = train_topic([docs[i] for i in train], [positive[i] for i in train], threshold=0.5)
        for i in range(k, n, folds):
            oof[i] = model.probability(docs[i])[0]

    def f1(t: float) -> float:
        pred = [q or (c and p >= t) for q, c, p in zip(query, candidate, oof, strict=True)]
        tp = sum(1 for a, b in zip(pred, positive, strict=True) if a and b)
        fp = sum(1 for a, b in zip(pred, positive, strict=True) if a and not b)
        fn = sum(1 for a, b in zip(pred, positive, strict=True) if b and not a)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    best_t, best = 1.01, f1(1.01)
    for t in sorted({round(p, 3) for p in oof if p >= MIN_THRESHOLD}, reverse=True):
        score = f1(t)
        if score > best + 1e-9:
            best_t, best = t, score
    return best_t


def train_topic(
    docs: Sequence[Sequence[str]], positive: Sequence[bool], *, l2: float = L2, min_df: int = 2, threshold: float = 0.5
) -> TopicModel:
    """Logistic regression (L2) on binary unit-length features, fitted by Newton's method on the
    vocabulary of features in at least ``min_df`` documents. numpy is imported here only."""
    import numpy as np

    df: dict[str, int] = {}
    for doc in docs:
        for f in set(doc):
            df[f] = df.get(f, 0) + 1
    vocab = sorted(f for f, n in df.items() if n >= min_df)
    index = {f: i for i, f in enumerate(vocab)}
    x = np.zeros((len(docs), len(vocab) + 1))
    for r, doc in enumerate(docs):
        scale = 1.0 / math.sqrt(max(len(set(doc)), 1))
        for f in set(doc):
            if f in index:
                x[r, index[f]] = scale
        x[r, -1] = 1.0  # bias
    y = np.array([1.0 if p else 0.0 for p in positive])
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    # Newton in the dual-sized form: the features outnumber the documents, so solve in document space.
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + penalty * w
        s = p * (1 - p) + 1e-9
        # (X^T S X + L) d = grad  →  Woodbury with L diagonal (bias: a tiny ridge).
        lam = penalty + 1e-6
        xl = x / lam
        inner = np.diag(1.0 / s) + xl @ x.T
        d = grad / lam - xl.T @ np.linalg.solve(inner, xl @ grad)
        w -= d
        if float(np.abs(d).max()) < 1e-6:
            break
    weights = {f: float(w[i]) for f, i in index.items() if abs(w[i]) >= 0.01}
    return TopicModel(bias=float(w[-1]), threshold=threshold, weights=weights)
