"""A second, statistical signal for the topic rules: one small linear model per topic.

The boolean query stays the primary record of why an article matched. A rule may also
carry a ``candidate`` query, looser than its query (the topic's actors are there, but not in
the phrasing the query asks for). When the query is false and the candidate is true, the
topic's model reads the article and confirms it when its probability reaches the model's
threshold; the match then says so (``Match.model``) and names the words that weighed most.
Two more cut-offs, each chosen by cross-validation and off unless it helps: ``veto`` rejects
a true query the model is all but sure is wrong, and ``alone`` confirms an article whose
candidate query is false but whose candidate entities occur in it, when the model is sure.

The model is logistic regression over binary features — the article's words and word pairs
(lower-cased, without the commonest function words) and the entities and terms the rules
found in it (``@gm+``, ``$oppose``) — each document's vector scaled to unit length. It is
trained by ``tracker rules train`` on labeled articles of the project's own writing and
stored as plain JSON beside the rules (``model.json``), so it can be read, diffed and
replaced. Inference is a dictionary look-up per feature: no numerical library is imported.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

MODEL_FILE = "model.json"
MODEL_VERSION = 1
NEVER = 1.01  #: a probability cut-off that is never reached
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
    threshold: float  #: a true candidate query is confirmed at this probability
    weights: Mapping[str, float] = field(default_factory=dict)
    #: a true query is rejected below this probability (0: never)
    veto: float = 0.0
    #: the article is confirmed at this probability even where no paragraph satisfies the candidate
    #: query, as long as the entities that query needs occur in it (above 1: never)
    alone: float = NEVER
    _keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", frozenset(self.weights))

    def p(self, features: Collection[str]) -> float:
        """P(topic) alone (``probability`` without the explanation: no sorting)."""
        known = (features if isinstance(features, (set, frozenset)) else set(features)) & self._keys
        z = self.bias + sum(map(self.weights.__getitem__, known)) / math.sqrt(max(len(features), 1))
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

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
    #: of the model file's bytes: a rule confirmed by the model changes when the file does
    digest: str = ""

    def get(self, rule_id: str) -> TopicModel | None:
        return self.topics.get(rule_id)


def features(words: Sequence[str], labels: Iterable[str] = ()) -> list[str]:
    """Binary features of a document, sorted: ``word_features`` and the rule labels found in it."""
    return sorted(word_features(words).union(labels))


def word_features(words: Sequence[str], *, lowered: bool = False) -> set[str]:
    """A document's words and adjacent word pairs (lower-case, stopwords and numbers dropped; a
    pair does not span a dropped token or a paragraph break), from at most ``MAX_FEATURES // 2``
    tokens (``lowered``: they are lower-case already)."""
    stop = STOPWORDS
    head = words[: MAX_FEATURES // 2]
    tokens = head if lowered else [w.lower() for w in head]
    kept = [w if w[:1].isalnum() and w not in stop and not w.isdigit() else "" for w in tokens]
    out = set(kept)
    out.update([f"{a} {b}" for a, b in pairwise(kept) if a and b])
    out.discard("")
    return out


def load(path: Path) -> Model:
    raw = path.read_bytes()
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or data.get("version") != MODEL_VERSION or not isinstance(data.get("topics"), dict):
        raise ValueError(f"not a version-{MODEL_VERSION} topic model")
    topics = {}
    for rule_id, t in data["topics"].items():
        weights = {str(k): float(v) for k, v in dict(t["weights"]).items()}
        topics[str(rule_id)] = TopicModel(
            bias=float(t["bias"]),
            threshold=float(t["threshold"]),
            weights=weights,
            veto=float(t.get("veto", 0.0)),
            alone=float(t.get("alone", NEVER)),
        )
    return Model(
        topics=topics,
        trained_on=tuple(str(x) for x in data.get("trained_on", [])),
        digest=hashlib.sha256(raw).hexdigest(),
    )


def dump(model: Model, path: Path) -> None:
    data: dict[str, Any] = {
        "version": MODEL_VERSION,
        "trained_on": list(model.trained_on),
        "topics": {
            rule_id: {
                "bias": round(t.bias, 6),
                "threshold": t.threshold,
                "veto": t.veto,
                "alone": t.alone,
                "weights": {k: round(v, 6) for k, v in sorted(t.weights.items())},
            }
            for rule_id, t in sorted(model.topics.items())
        },
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


#: L2 penalty of the fit (features are unit-length vectors, so this is on their scale).
L2 = 0.1
#: No threshold below this is chosen (an unsure model confirms nothing).
MIN_THRESHOLD = 0.4
#: A query is rejected only when the model is at least this sure it is wrong.
MAX_VETO = 0.25
#: An article without a true candidate query is confirmed only at this probability or higher.
MIN_ALONE = 0.5


@dataclass(frozen=True, slots=True)
class Cutoffs:
    threshold: float = NEVER
    veto: float = 0.0
    alone: float = NEVER


def out_of_fold(docs: Sequence[Collection[str]], positive: Sequence[bool], *, folds: int = 5) -> list[float]:
    """Each document's probability from a model fitted without its fold."""
    n = len(docs)
    oof = [0.0] * n
    for k in range(folds):
        train = [i for i in range(n) if i % folds != k]
        if not any(positive[i] for i in train) or all(positive[i] for i in train):
            continue
        model = train_topic([docs[i] for i in train], [positive[i] for i in train])
        for i in range(k, n, folds):
            oof[i] = model.probability(docs[i])[0]
    return oof


def choose_cutoffs(
    docs: Sequence[Collection[str]],
    positive: Sequence[bool],
    query: Sequence[bool],
    candidate: Sequence[bool],
    gate: Sequence[bool] | None = None,
    *,
    folds: int = 5,
) -> Cutoffs:
    """The model's three cut-offs, each the one that gives the rule with the model the best F1
    on held-out folds (ties: the more cautious), chosen in turn:

    - ``threshold`` (≥ ``MIN_THRESHOLD``): confirm a true candidate query;
    - ``veto`` (≤ ``MAX_VETO``): reject a true query the model finds very unlikely;
    - ``alone`` (≥ ``MIN_ALONE``): confirm an article whose candidate query is false but whose
      ``gate`` is true (the entities that query needs occur somewhere in it).

    A cut-off that does no better than without it is left at "never"."""
    gate = gate if gate is not None else [False] * len(docs)
    oof = out_of_fold(docs, positive, folds=folds)
    rows = list(zip(query, candidate, gate, oof, strict=True))
    grid = sorted({round(p, 3) for p in oof})

    def f1(t: float, v: float, a: float) -> float:
        pred = [(q and p >= v) or (c and p >= t) or (g and p >= a) for q, c, g, p in rows]
        tp = sum(1 for x, y in zip(pred, positive, strict=True) if x and y)
        fp = sum(1 for x, y in zip(pred, positive, strict=True) if x and not y)
        fn = sum(1 for x, y in zip(pred, positive, strict=True) if y and not x)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    def best(score: Any, values: Iterable[float], start: float) -> float:
        chosen, top = start, score(start)
        for value in values:
            got = score(value)
            if got > top + 1e-9:
                chosen, top = value, got
        return chosen

    t = best(lambda x: f1(x, 0.0, NEVER), (p for p in reversed(grid) if p >= MIN_THRESHOLD), NEVER)
    v = best(lambda x: f1(t, x, NEVER), (p for p in grid if p <= MAX_VETO), 0.0)
    a = best(lambda x: f1(t, v, x), (p for p in reversed(grid) if p >= max(MIN_ALONE, t)), NEVER)
    return Cutoffs(threshold=t, veto=v, alone=a)


def train_topic(
    docs: Sequence[Collection[str]],
    positive: Sequence[bool],
    *,
    l2: float = L2,
    min_df: int = 2,
    cutoffs: Cutoffs = Cutoffs(threshold=0.5),
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
    return TopicModel(
        bias=float(w[-1]), threshold=cutoffs.threshold, weights=weights, veto=cutoffs.veto, alone=cutoffs.alone
    )
