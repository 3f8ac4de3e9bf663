"""Volume spikes per topic: a bucket (an hour or a day) that holds far more stories or items
than the topic's own recent baseline, found once and carrying what lies behind it.

Pure computation, no SQL: the store counts a topic's stories (or items) per bucket, and this
module says which buckets are spikes (:func:`detect`) and what they are about
(:func:`behind`).

The baseline of a bucket uses only the buckets before it:

- a *level*: the mean of the last ``baseline`` buckets (14 days, or 24 hours), each divided by
  its seasonal factor first, so a quiet Sunday does not pull Monday's expectation down;
- *seasonal factors* from the last ``history`` buckets (8 weeks of days, or 4 weeks of hours):
  the weekday's mean over the overall mean (and, for hours, the hour of the day's as well),
  shrunk toward 1 while a slot has few observations;
- a *dispersion*: news is burstier than a Poisson process, so the variance is taken as
  ``expected × dispersion``, the dispersion being the mean Pearson residual of the history
  (at least 1, at most ``MAX_DISPERSION``).

``expected = level × factors``, and ``p_value`` is the upper tail of a negative binomial
with that mean and variance (a Poisson when the dispersion is 1): the chance of a count at
least as high as the one observed if nothing had happened. A count already far above its
expectation enters the baseline capped at ``expected + 3 sd``, so a surge does not raise
the bar for the buckets that follow it; but three buckets in a row above that cap are a new
level rather than a burst: they enter in full and the level restarts from them, so a topic
that has grown for good stops firing after one spike.

The same detector serves both series the issue asks for (new stories, and items, per topic),
per hour and per day: the store counts per bucket (buckets start at UTC midnight or on the
hour; :func:`series` fills the empty ones with zeros) and passes the counts with the first
bucket's start, which places each bucket in its weekday and hour.

A bucket is a spike when all of these hold:

- ``p_value ≤ alpha``. **sensitivity** is a number from 0 to 10 that sets how unlikely a
  count must be: ``alpha = 10 ** (sensitivity − 10)`` for a day, and a 24th of that for an
  hour, so that the setting means the same for both: if the baseline were exact, a topic would
  raise a chance alarm on 1 day in ``10 ** (10 − sensitivity)``. At the default, 8, that is one
  day in 100 (about 0.3 chance alarms a month for each of the daily and the hourly series);
  each step up multiplies the alarms by ten, each step down divides them. Higher sensitivity
  never gives fewer spikes. ``bench/bench_spikes.py`` measures the real rates on a synthetic
  year per topic with planted surges (at the default: 0.11 false alarms a month per topic
  from days and 0.35 from hours; 86 % of daily surges of 3× or more found, and 83 % of hourly
  ones that bring 15 items or more; median delay 0 buckets);
- ``observed ≥ min_count`` and ``observed ≥ min_ratio × expected``: a significant rise from 2
  to 6 stories, or 3 % more stories on a busy topic, is not news;
- at least ``min_history`` buckets come before it: no spike on too little history;
- it is not in a cool-down: no spike in the ``cooldown`` buckets after a spike (3 days, or
  12 hours), so a surge fires once. (Cool-down counts from the spike, not from the last
  bucket above the bar: so a more sensitive setting can only add spikes.)
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from tracker.stories.signature import terms as content_words

DEFAULT_SENSITIVITY = 8.0  #: alpha = 0.01 a day (see the module docstring and bench/bench_spikes.py)
MAX_DISPERSION = 12.0
MIN_EXPECTED = 0.1  #: the least a bucket is ever expected to hold (a dormant topic waking up)
SEASON_PRIOR = 2.0  #: pseudo-buckets at the overall mean shrinking each seasonal factor
RESIDUAL_CAP = 4.0  #: a Pearson residual counts at most this many times the dispersion
RESIDUAL_BIAS = 1.0 / 0.9205  #: E[min(χ²₁, 4)] = P(χ²₃ < 4) + 4 P(χ²₁ > 4) = 0.9205
CAP_SD = 3.0  #: counts above expected + CAP_SD standard deviations enter the baseline capped...
SHIFT_RUN = 3  #: ...unless this many buckets in a row are: then they are a new level, taken as they are
BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True, slots=True)
class SpikeParams:
    """How spikes are found in one topic's counts (see the module docstring)."""

    bucket: str = "day"  #: "day" or "hour": a bucket's length, and its seasons
    sensitivity: float = DEFAULT_SENSITIVITY  #: 0–10: alpha = 10 ** (sensitivity − 10) a day
    baseline: int = 14  #: buckets averaged for the recent level
    history: int = 56  #: buckets behind the seasonal factors and the dispersion
    min_history: int = 14  #: buckets that must come before a spike
    cooldown: int = 3  #: buckets after a spike in which the topic does not fire again
    min_count: int = 5
    min_ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {sorted(BUCKETS)}, not {self.bucket!r}")
        if not 0 <= self.sensitivity <= 10:
            raise ValueError(f"sensitivity must be between 0 and 10, not {self.sensitivity}")
        if self.baseline < 1 or self.history < self.baseline or self.min_history < 1 or self.cooldown < 0:
            raise ValueError("need 1 ≤ baseline ≤ history, min_history ≥ 1 and cooldown ≥ 0")

    @property
    def alpha(self) -> float:
        """The largest upper-tail probability that still makes a spike: 10 ** (sensitivity − 10)
        a day, shared out over the day's buckets (a 24th of it for an hour)."""
        return float(10.0 ** (self.sensitivity - 10.0)) * (BUCKETS[self.bucket] / BUCKETS["day"])

    def with_sensitivity(self, sensitivity: float) -> SpikeParams:
        return replace(self, sensitivity=sensitivity)


DAILY = SpikeParams()
HOURLY = SpikeParams(bucket="hour", baseline=24, history=28 * 24, min_history=7 * 24, cooldown=12)


@dataclass(frozen=True, slots=True)
class Expectation:
    """One bucket against its baseline (before any spike decision)."""

    index: int  #: the bucket's position in the series
    start: datetime  #: the bucket's start
    observed: int
    expected: float  #: 0.0 when there was no history yet
    dispersion: float  #: variance / expected of the baseline (1 = Poisson)
    p_value: float  #: P(count ≥ observed) under the baseline; 1.0 without history
    history: int  #: buckets of history behind the baseline

    @property
    def ratio(self) -> float:
        return self.observed / self.expected if self.expected > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Spike:
    """A bucket whose count the topic's baseline does not explain."""

    index: int
    start: datetime  #: the bucket's start
    observed: int
    expected: float
    ratio: float  #: observed / expected
    p_value: float
    score: float  #: −log10(p_value): 4 = a one-in-10,000 count
    reason: str  #: one line for people: "12 vs 2.1 expected (5.7×), p = 3e-06"


def series(counts: Mapping[datetime, int], start: datetime, end: datetime, bucket: str = "day") -> list[int]:
    """Counts per bucket from ``start`` (included) to ``end`` (excluded), zero where ``counts``
    has no entry: what the store returns (bucket start → count) made into a series."""
    step = BUCKETS[bucket]
    out = []
    at = start
    while at < end:
        out.append(int(counts.get(at, 0)))
        at += step
    return out


def _slots(bucket: str) -> Callable[[datetime], tuple[int, ...]]:
    if bucket == "hour":
        return lambda at: (at.hour, at.weekday())
    return lambda at: (at.weekday(),)


class _Baseline:
    """The sliding history of one series: per-slot sums for the seasonal factors, Pearson
    residuals for the dispersion, and the last buckets for the level."""

    def __init__(self, params: SpikeParams, seasons: int) -> None:
        self.params = params
        self.window: deque[tuple[tuple[int, ...], float, float]] = deque()  # slots, capped count, residual
        self.sums: list[dict[int, float]] = [{} for _ in range(seasons)]
        self.sizes: list[Counter[int]] = [Counter() for _ in range(seasons)]
        self.total = 0.0
        self.residuals = 0.0
        self.run = 0  # buckets in a row above their cap
        self.since_shift = params.history  # buckets since the level last shifted
        self.raw: deque[tuple[tuple[int, ...], int]] = deque(maxlen=SHIFT_RUN - 1)  # the last buckets, uncapped

    def factor(self, slots: tuple[int, ...]) -> float:
        mean = self.total / len(self.window)
        if mean <= 0:
            return 1.0
        out = 1.0
        for season, slot in enumerate(slots):
            prior = SEASON_PRIOR * mean
            out *= (self.sums[season].get(slot, 0.0) + prior) / (self.sizes[season][slot] + SEASON_PRIOR) / mean
        return out

    def expect(self, slots: tuple[int, ...]) -> tuple[float, float]:
        """The expected count of a bucket in ``slots``, and the dispersion."""
        recent = list(islice(reversed(self.window), min(self.params.baseline, self.since_shift)))
        weights = sum(self.factor(s) for s, _, _ in recent)
        level = sum(c for _, c, _ in recent) / weights if weights > 0 else 0.0
        here = self.factor(slots)
        expected = max(MIN_EXPECTED, level * here)
        dispersion = min(MAX_DISPERSION, max(1.0, self.residuals / len(self.window)))
        # the level is itself an estimate: its variance widens the prediction's
        dispersion *= 1.0 + here / max(weights, 1.0)
        return expected, min(MAX_DISPERSION, dispersion)

    def add(self, slots: tuple[int, ...], count: int, expected: float, dispersion: float) -> None:
        cap = expected + CAP_SD * math.sqrt(expected * dispersion) + 1.0
        self.run = self.run + 1 if count > cap else 0
        if self.run >= SHIFT_RUN:  # not a burst but a new level: the run counts in full
            if self.run == SHIFT_RUN:  # and the level is learnt from the new buckets only
                self.since_shift = SHIFT_RUN - 1
                for _ in self.raw:
                    self._drop_last()
                for old_slots, raw in self.raw:
                    self._append(old_slots, float(raw), 1.0)
            cap = math.inf
        capped = min(float(count), cap)
        # each Pearson residual counts at most RESIDUAL_CAP times the current dispersion, so
        # the odd burst does not inflate it: the mean of a capped χ²₁ is then 1 / RESIDUAL_BIAS
        residual = min((capped - expected) ** 2 / max(expected, 0.5), RESIDUAL_CAP * dispersion) * RESIDUAL_BIAS
        self._append(slots, capped, residual)
        self.since_shift += 1
        self.raw.append((slots, count))
        if len(self.window) > self.params.history:
            old_slots, old_count, old_residual = self.window.popleft()
            self._count(old_slots, old_count, old_residual, -1)

    def _append(self, slots: tuple[int, ...], count: float, residual: float) -> None:
        self.window.append((slots, count, residual))
        self._count(slots, count, residual, 1)

    def _drop_last(self) -> None:
        slots, count, residual = self.window.pop()
        self._count(slots, count, residual, -1)

    def seed(self, slots: tuple[int, ...], count: int) -> None:
        """A bucket of the first ones, before any expectation: taken as it is."""
        self.window.append((slots, float(count), 1.0))
        self._count(slots, float(count), 1.0, 1)

    def _count(self, slots: tuple[int, ...], count: float, residual: float, sign: int) -> None:
        for season, slot in enumerate(slots):
            self.sums[season][slot] = self.sums[season].get(slot, 0.0) + sign * count
            self.sizes[season][slot] += sign
        self.total += sign * count
        self.residuals += sign * residual


def expectations(counts: Sequence[int], start: datetime, params: SpikeParams = DAILY) -> list[Expectation]:
    """Each bucket of a topic's series against its baseline (buckets from ``start``, each of
    ``params.bucket`` length; the series must have a count, maybe 0, for every bucket)."""
    step = BUCKETS[params.bucket]
    slots_of = _slots(params.bucket)
    base = _Baseline(params, len(slots_of(start)))
    out = []
    for i, count in enumerate(counts):
        at = start + i * step
        slots = slots_of(at)
        if count < 0:
            raise ValueError(f"bucket {i}: a negative count ({count})")
        if len(base.window) < 2:  # nothing to compare with yet
            out.append(Expectation(i, at, count, 0.0, 1.0, 1.0, len(base.window)))
            base.seed(slots, count)
            continue
        expected, dispersion = base.expect(slots)
        p = upper_tail(count, expected, dispersion)
        out.append(Expectation(i, at, count, expected, dispersion, p, len(base.window)))
        base.add(slots, count, expected, dispersion)
    return out


def spikes(scored: Iterable[Expectation], params: SpikeParams = DAILY) -> list[Spike]:
    """The spikes among buckets already scored by :func:`expectations` (the thresholds and
    the cool-down only: a benchmark scores once and tries several sensitivities)."""
    out: list[Spike] = []
    alpha = params.alpha
    for e in scored:
        if out and e.index - out[-1].index <= params.cooldown:
            continue
        if (
            e.history >= params.min_history
            and e.expected > 0
            and e.p_value <= alpha
            and e.observed >= params.min_count
            and e.observed >= params.min_ratio * e.expected
        ):
            out.append(_spike(e))
    return out


def detect(counts: Sequence[int], start: datetime, params: SpikeParams = DAILY) -> list[Spike]:
    """The spikes of one topic's series of counts per bucket (see the module docstring)."""
    return spikes(expectations(counts, start, params), params)


def _spike(e: Expectation) -> Spike:
    score = -math.log10(max(e.p_value, 1e-300))
    reason = f"{e.observed} vs {e.expected:.1f} expected ({e.ratio:.1f}×), p = {e.p_value:.1g}"
    ratio = round(e.ratio, 2)
    return Spike(e.index, e.start, e.observed, round(e.expected, 3), ratio, e.p_value, round(score, 2), reason)


def upper_tail(observed: int, mean: float, dispersion: float = 1.0) -> float:
    """P(X ≥ observed) for X negative binomial with this mean and variance mean × dispersion
    (Poisson when the dispersion is 1)."""
    if observed <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    law = _Law(mean, dispersion)
    if observed <= mean:  # the lower part is the shorter sum: 1 − P(X < observed)
        return max(0.0, 1.0 - law.sum_down(observed - 1))
    return min(1.0, law.sum_up(observed))


class _Law:
    """A Poisson or negative binomial law: its pmf, summed term by term from one point."""

    def __init__(self, mean: float, dispersion: float) -> None:
        self.mean = mean
        self.poisson = dispersion <= 1.0 + 1e-9
        self.r = 0.0 if self.poisson else mean / (dispersion - 1.0)
        self.q = 0.0 if self.poisson else (dispersion - 1.0) / dispersion

    def log_pmf(self, k: int) -> float:
        if self.poisson:
            return k * math.log(self.mean) - self.mean - math.lgamma(k + 1)
        r, q = self.r, self.q
        return math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1) + r * math.log1p(-q) + k * math.log(q)

    def up(self, k: int) -> float:
        """pmf(k + 1) / pmf(k)"""
        return self.mean / (k + 1) if self.poisson else (k + self.r) / (k + 1) * self.q

    def sum_up(self, k: int) -> float:
        term = math.exp(self.log_pmf(k))
        total = term
        for _ in range(100_000):
            ratio = self.up(k)
            term *= ratio
            total += term
            k += 1
            if ratio < 1 and term <= total * 1e-13 * (1 - ratio):
                break
        return total

    def sum_down(self, k: int) -> float:
        term = math.exp(self.log_pmf(k))
        total = term
        while k > 0:
            term /= self.up(k - 1)
            total += term
            k -= 1
            if term <= total * 1e-15:
                break
        return total


# What lies behind a spike ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RisingTerm:
    term: str
    stories: int  #: stories of the spike that carry it
    baseline: int  #: baseline texts that carry it
    log_ratio: float  #: log of its (smoothed) share of spike stories over its share of baseline texts


@dataclass(frozen=True, slots=True)
class Behind:
    """The stories behind a spike and the words that rose most."""

    stories: tuple[Mapping[str, Any], ...]  #: the top stories, most outlets first
    terms: tuple[RisingTerm, ...]


def behind(
    stories: Sequence[Mapping[str, Any]],
    baseline_texts: Iterable[str],
    *,
    top: int = 5,
    limit: int = 10,
    smoothing: float = 0.5,
) -> Behind:
    """The ``top`` stories of a spike bucket by number of outlets, and the ``limit`` terms
    whose share of the bucket's stories rose most against the baseline texts.

    Each story is a mapping with ``headline``, ``n_sources`` (or ``outlets``), ``url``, and
    ``terms`` (its words) or ``text``. A term's rise is
    ``log((s + a) / (S + 2a)) − log((b + a) / (B + 2a))`` with ``s`` of ``S`` spike stories
    and ``b`` of ``B`` baseline texts carrying it, ``a = smoothing``; a term must be in at
    least two stories of the spike (in one, if the spike holds a single story).
    """
    ranked = sorted(stories, key=lambda s: (-_outlets(s), str(s.get("headline", ""))))
    spike_df = Counter[str]()
    for story in stories:
        spike_df.update(_story_terms(story))
    base_df = Counter[str]()
    n_base = 0
    for text in baseline_texts:
        base_df.update(set(content_words(text)))
        n_base += 1
    n_spike = len(stories)
    need = min(2, n_spike)
    rising = []
    for term, s in spike_df.items():
        if s < need:
            continue
        b = base_df.get(term, 0)
        rise = math.log((s + smoothing) / (n_spike + 2 * smoothing)) - math.log(
            (b + smoothing) / (n_base + 2 * smoothing)
        )
        if rise > 0:
            rising.append(RisingTerm(term, s, b, round(rise, 3)))
    rising.sort(key=lambda t: (-t.log_ratio, -t.stories, t.term))
    return Behind(tuple(ranked[:top]), tuple(rising[:limit]))


def _outlets(story: Mapping[str, Any]) -> int:
    value = story.get("n_sources", story.get("outlets", 0))
    if isinstance(value, (list, tuple, set, frozenset)):
        return len(value)
    return int(value or 0)


def _story_terms(story: Mapping[str, Any]) -> set[str]:
    words = story.get("terms")
    if words is not None:
        return set(content_words(" ".join(words)))
    return set(content_words(" ".join(str(story.get(k, "")) for k in ("headline", "text"))))
