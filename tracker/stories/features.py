"""The evidence that two items report one event, as a few numbers, and the learned decision
over them.

The index describes each candidate pair (a new item and an item of the window) by all of
:data:`FEATURES`, each a similarity a reader would check:

``lede``, ``text``   cosines of the rarity-weighted vectors of title and first 100 words, and
                     of the whole texts' heaviest words;
``headline``         how much of each headline the other item's title and lede carry (the
                     mean of both shares); ``headline_min``: the smaller share;
``headline_event``   the same for the headline's words that are not names (what happened,
                     rather than who): ``headline_event_min`` the smaller share;
``headline_lede``    the geometric mean of ``headline`` and ``lede``: high only when both are;
``names``            cosine of the capitalised names the texts mention (people, places, firms);
``figures``          the figures both report ("49,000", "6.1%"), log-counted;
``quotes``           the 4-word runs inside quotation marks both carry, log-counted;
``new_name``         the largest share of a headline taken by names the other item never uses
                     (a reaction puts its new actor in the headline);
``gap``              days apart beyond the first, log scale (1.0 at a week);
``*_local``          ``names``, ``figures``, ``lede`` and ``headline`` with each word weighed
                     by how rare it is in the window rather than in English;
``log_*``            log(0.05 + similarity): evidence that multiplies rather than adds;
``rule``             1 when the hand-set update test the project used before the model
                     holds (:func:`hand_rule`), else 0.

A model uses a few of them: a logistic regression giving the probability that the pair
reports one event. Which features, their weights and the bars are chosen and trained by
``bench/train_stories.py`` on labelled pairs (cross-validated with whole events left out)
and ship as ``model.json`` beside this module: a handful of numbers, readable as they are
(on standardised features; a positive weight is evidence for "same event").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

#: every feature the index computes for a pair; a model uses some of them (``PairModel.features``)
FEATURES = (
    "lede",
    "text",
    "headline",
    "headline_min",
    "names",
    "names_local",
    "figures",
    "figures_local",
    "quotes",
    "gap",
    "lede_local",
    "new_name",
    "headline_lede",
    "log_headline",
    "log_headline_min",
    "log_lede",
    "log_text",
    "log_names",
    "headline_local",
    "headline_event",
    "headline_event_min",
    "rule",
)
LOG_FLOOR = 0.05  #: ``log_*``: log(FLOOR + similarity), so that evidence multiplies: all of it must be there
WEEK_HOURS = 168.0


@dataclass(frozen=True, slots=True)
class Similarities:
    """What the index measures for a candidate pair, before it becomes :data:`FEATURES`."""

    lede: float
    text: float
    headlines: tuple[float, float]  #: the share of each headline that the other item carries
    names: float
    names_local: float
    figures: int  #: how many figures both report
    figures_local: float  #: their local rarities, summed
    quotes: int  #: how many quoted 4-word runs both carry
    hours: float
    lede_local: float
    new_name: float  #: the largest share of a headline taken by names the other item never mentions
    headlines_local: tuple[float, float] = (0.0, 0.0)  #: ``headlines``, words weighed by local rarity
    events: tuple[float, float] = (0.0, 0.0)  #: ``headlines`` for the words that are not names


def values(s: Similarities) -> list[float]:
    """:data:`FEATURES`, in order."""
    return [
        s.lede,
        s.text,
        (s.headlines[0] + s.headlines[1]) / 2,
        min(s.headlines),
        s.names,
        s.names_local,
        math.log1p(s.figures),
        math.log1p(s.figures_local),
        math.log1p(s.quotes),
        gap(s.hours),
        s.lede_local,
        s.new_name,
        math.sqrt(max(0.0, (s.headlines[0] + s.headlines[1]) / 2 * s.lede)),
        math.log(LOG_FLOOR + max(0.0, (s.headlines[0] + s.headlines[1]) / 2)),
        math.log(LOG_FLOOR + max(0.0, min(s.headlines))),
        math.log(LOG_FLOOR + max(0.0, s.lede)),
        math.log(LOG_FLOOR + max(0.0, s.text)),
        math.log(LOG_FLOOR + max(0.0, s.names)),
        (s.headlines_local[0] + s.headlines_local[1]) / 2,
        (s.events[0] + s.events[1]) / 2,
        min(s.events),
        1.0 if hand_rule(s) else 0.0,
    ]


def hand_rule(s: Similarities) -> bool:
    """The hand-set update test the project used before the model (kept as one piece of
    evidence): the ledes or whole texts alike (or a shared quotation and ledes somewhat
    alike), and, unless that match is strong, headlines that agree."""
    headline = (s.headlines[0] + s.headlines[1]) / 2
    text = 1.0 if s.lede >= 0.5 else s.text
    if not (s.lede >= 0.36 or text >= 0.45 or (s.quotes and s.lede >= 0.15)):
        return False
    return bool(s.quotes) or s.lede >= 0.5 or text >= 0.55 or headline >= 0.42


def gap(hours: float) -> float:
    """Days apart beyond the first, on a log scale (0 within a day, 1 at a week): publication
    times are often known to the day only, so within a day nothing is told apart."""
    return math.log1p(max(0.0, abs(hours) - 24) / 24) / math.log1p(6)


def local_rarity(df: int, n: int) -> float:
    """How telling a word (name, figure) is among the ``n`` items of the window when ``df``
    of them carry it: 1 for a word of one item, falling towards 0 for a word they all carry.
    A tracker watches a few topics, so its window is full of the same companies and
    figures: a word that is rare in English can be common there."""
    return math.log1p(n / df) / math.log1p(n) if n > 1 else 1.0


@dataclass(frozen=True, slots=True)
class PairModel:
    """Logistic regression over standardised features, and the bars it is used at."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    join: float  #: an item joins a story when its best link there is at least this probable
    merge: float  #: two stories become one only when an item links to each at least this strongly

    def pick(self, values: list[float]) -> list[float]:
        """This model's features out of all :data:`FEATURES`."""
        return [values[i] for i in self._columns()]

    def _columns(self) -> list[int]:
        return [FEATURES.index(f) for f in self.features]

    def logit(self, values: list[float]) -> float:
        """``values``: all :data:`FEATURES`."""
        return self.bias + sum(
            w * (x - m) / s for w, x, m, s in zip(self.weights, self.pick(values), self.mean, self.scale, strict=True)
        )

    def probability(self, values: list[float]) -> float:
        z = self.logit(values)
        return 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0

    def contributions(self, values: list[float]) -> dict[str, float]:
        """Each feature's share of the logit: what made the model decide (for explanations)."""
        return {
            name: round(w * (x - m) / s, 3)
            for name, w, x, m, s in zip(
                self.features, self.weights, self.pick(values), self.mean, self.scale, strict=True
            )
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "join": self.join,
            "merge": self.merge,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PairModel:
        model = cls(
            tuple(data["features"]),
            tuple(data["mean"]),
            tuple(data["scale"]),
            tuple(data["weights"]),
            float(data["bias"]),
            float(data["join"]),
            float(data["merge"]),
        )
        unknown = set(model.features) - set(FEATURES)
        if unknown or len(model.features) != len(model.weights):
            raise ValueError(f"story model: unknown features {sorted(unknown)} or weights missing: retrain it")
        return model


@lru_cache(maxsize=1)
def default_model() -> PairModel:
    """The shipped model (``tracker/stories/model.json``)."""
    data = json.loads(resources.files("tracker.stories").joinpath("model.json").read_text(encoding="utf-8"))
    return PairModel.from_json(data["model"])
