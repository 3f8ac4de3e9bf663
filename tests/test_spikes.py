"""Volume spikes per topic (tracker.analysis.spikes): the detector's promises, checked as
properties over random series (hypothesis draws seeds and rates; numpy draws the counts).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.analysis.spikes import (
    DAILY,
    HOURLY,
    SpikeParams,
    behind,
    detect,
    expectations,
    series,
    spikes,
    upper_tail,
)

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)


def flat(seed: int, rate: float, n: int) -> list[int]:
    return [int(x) for x in np.random.default_rng(seed).poisson(rate, n)]


def seasonal_hours(seed: int, per_hour: float, days: int) -> list[int]:
    """Hourly counts with quiet nights and weekends."""
    rng = np.random.default_rng(seed)
    out = []
    for h in range(days * 24):
        at = START + timedelta(hours=h)
        night = 0.3 if at.hour < 7 or at.hour > 21 else 1.3
        weekend = 0.6 if at.weekday() >= 5 else 1.1
        out.append(int(rng.poisson(per_hour * night * weekend)))
    return out


# No false alarms to speak of --------------------------------------------------------------


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), rate=st.floats(0.5, 300))
def test_a_flat_poisson_series_fires_rarely(seed: int, rate: float) -> None:
    counts = flat(seed, rate, 200)
    assert len(detect(counts, START, DAILY)) <= 2


def test_false_alarms_on_flat_series_stay_below_the_nominal_rate() -> None:
    """Over 100 series of 200 days, the default raises well under one alarm per 100 days."""
    alarms = sum(len(detect(flat(seed, 3 + seed % 40, 200), START, DAILY)) for seed in range(100))
    days = 100 * (200 - DAILY.min_history)
    assert alarms / days < 0.005, alarms


def test_seasonal_hours_do_not_fire() -> None:
    """Nights and weekends are learnt: a Monday morning after a quiet Sunday is no spike."""
    alarms = sum(len(detect(seasonal_hours(seed, 3.0, 42), START, HOURLY)) for seed in range(6))
    assert alarms <= 2, alarms


# Surges are found, once -------------------------------------------------------------------


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), rate=st.floats(3, 300), at=st.integers(30, 80))
def test_a_planted_5x_surge_fires_within_one_bucket(seed: int, rate: float, at: int) -> None:
    counts = flat(seed, rate, 100)
    rng = np.random.default_rng(seed + 1)
    for i in (at, at + 1):
        counts[i] = int(rng.poisson(5 * rate))
    found = [s.index for s in detect(counts, START, DAILY)]
    assert at in found or at + 1 in found, (found, counts[at - 3 : at + 3])
    spike = next(s for s in detect(counts, START, DAILY) if s.index in (at, at + 1))
    assert spike.ratio >= 2 and spike.p_value <= DAILY.alpha
    assert spike.start == START + timedelta(days=spike.index)
    assert "expected" in spike.reason


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), per_hour=st.floats(6, 60))
def test_a_5x_hour_surge_fires_within_an_hour_on_a_seasonal_series(seed: int, per_hour: float) -> None:
    counts = seasonal_hours(seed, per_hour, 35)
    at = 33 * 24 + 14  # a Saturday afternoon
    rng = np.random.default_rng(seed + 1)
    for i in (at, at + 1):
        counts[i] = int(rng.poisson(5 * per_hour * 1.3 * 0.6))
    found = [s.index for s in detect(counts, START, HOURLY)]
    assert at in found or at + 1 in found, found


def test_cool_down_prevents_re_firing() -> None:
    counts = [*flat(7, 20, 60), 200, 210, 190, *flat(8, 20, 20)]
    assert [s.index for s in detect(counts, START, DAILY)] == [60]
    eager = detect(counts, START, replace(DAILY, cooldown=0))
    assert [s.index for s in eager][:2] == [60, 61]


def test_a_new_surge_after_the_cool_down_fires_again() -> None:
    counts = [*flat(7, 20, 60), 200, *flat(8, 20, 10), 200, *flat(9, 20, 10)]
    assert [s.index for s in detect(counts, START, DAILY)] == [60, 71]


# No spike on too little history -----------------------------------------------------------


@pytest.mark.parametrize("params", [DAILY, HOURLY])
def test_no_spike_on_too_little_history(params: SpikeParams) -> None:
    counts = [2] * (params.min_history - 1) + [500]
    assert detect(counts, START, params) == []
    assert detect([3, 500, 900], START, params) == []
    assert detect([], START, params) == []


def test_the_first_bucket_with_enough_history_may_fire() -> None:
    counts = [2] * DAILY.min_history + [500]
    assert [s.index for s in detect(counts, START, DAILY)] == [DAILY.min_history]


def test_small_counts_never_fire() -> None:
    """A topic dormant for weeks that sees 4 stories is below ``min_count``."""
    assert detect([0] * 60 + [4], START, DAILY) == []
    assert [s.index for s in detect([0] * 60 + [5], START, DAILY)] == [60]


# Sensitivity ------------------------------------------------------------------------------


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    rate=st.floats(0.5, 80),
    low=st.floats(0, 10),
    high=st.floats(0, 10),
)
def test_higher_sensitivity_never_gives_fewer_spikes(seed: int, rate: float, low: float, high: float) -> None:
    low, high = sorted((low, high))
    rng = np.random.default_rng(seed)
    counts = [int(x) for x in rng.poisson(rate * rng.choice([1, 1, 1, 1, 1.5, 2, 4], 150))]
    scored = expectations(counts, START, DAILY)
    few = spikes(scored, DAILY.with_sensitivity(low))
    many = spikes(scored, DAILY.with_sensitivity(high))
    assert len(few) <= len(many)


def test_sensitivity_is_a_daily_chance_shared_over_hours() -> None:
    assert DAILY.with_sensitivity(8).alpha == pytest.approx(0.01)
    assert HOURLY.with_sensitivity(8).alpha == pytest.approx(0.01 / 24)
    assert DAILY.with_sensitivity(7).alpha == pytest.approx(DAILY.with_sensitivity(8).alpha / 10)


@pytest.mark.parametrize(
    "bad",
    [{"sensitivity": 11}, {"sensitivity": -1}, {"bucket": "week"}, {"baseline": 0}, {"history": 5}, {"cooldown": -1}],
)
def test_bad_params_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SpikeParams(**bad)  # type: ignore[arg-type]


# The baseline -----------------------------------------------------------------------------


def test_the_baseline_follows_the_weekday() -> None:
    week = [30, 32, 31, 29, 28, 8, 6]
    scored = expectations(week * 10, START, DAILY)
    sunday, monday = scored[-1], scored[-7]
    assert sunday.expected < 12 < 20 < monday.expected


def test_a_lasting_change_of_level_is_learnt() -> None:
    counts = flat(1, 10, 60) + flat(2, 40, 40)
    fired = [s.index for s in detect(counts, START, DAILY) if s.index >= 60]
    assert len(fired) == 1 and fired[0] <= 63, fired  # fires once (or in the cool-down of a chance alarm)
    assert expectations(counts, START, DAILY)[-1].expected > 30


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        expectations([1, 2, 3, -1], START, DAILY)


def test_series_fills_missing_buckets_with_zero() -> None:
    counts = {START: 3, START + timedelta(days=2): 5}
    assert series(counts, START, START + timedelta(days=4)) == [3, 0, 5, 0]
    hours = {START + timedelta(hours=1): 2}
    assert series(hours, START, START + timedelta(hours=3), "hour") == [0, 2, 0]


# The upper tail ---------------------------------------------------------------------------


def test_poisson_upper_tail() -> None:
    assert upper_tail(0, 3.0) == 1.0
    assert upper_tail(3, 1.0) == pytest.approx(1 - math.exp(-1) * 2.5)
    assert upper_tail(1, 0.5) == pytest.approx(1 - math.exp(-0.5))
    assert upper_tail(2000, 1000.0) < 1e-150


@pytest.mark.parametrize(("mean", "dispersion"), [(0.3, 2.0), (4.0, 1.5), (40.0, 6.0), (300.0, 11.0)])
def test_negative_binomial_tail_matches_its_sum(mean: float, dispersion: float) -> None:
    r = mean / (dispersion - 1)
    q = (dispersion - 1) / dispersion

    def pmf(k: int) -> float:
        return math.exp(math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1) + r * math.log1p(-q) + k * math.log(q))

    for x in (1, int(mean), int(2 * mean) + 1, int(4 * mean) + 3):
        want = 1 - math.fsum(pmf(k) for k in range(x))
        assert upper_tail(x, mean, dispersion) == pytest.approx(want, rel=1e-6, abs=1e-12)
    # overdispersion makes a high count likelier than a Poisson says
    assert upper_tail(int(3 * mean) + 2, mean, dispersion) > upper_tail(int(3 * mean) + 2, mean)


# What lies behind a spike -----------------------------------------------------------------


def test_behind_ranks_stories_by_outlets_and_finds_the_rising_terms() -> None:
    stories: list[dict[str, Any]] = [
        {
            "headline": "Harbour crane collapse halts Port Veldra",
            "n_sources": 3,
            "url": "u1",
            "text": "A crane collapse at Port Veldra halted container traffic on Tuesday.",
        },
        {
            "headline": "Crane collapse: unions demand inquiry",
            "n_sources": 9,
            "url": "u2",
            "text": "Dockworker unions demanded an inquiry after the crane collapse at Port Veldra.",
        },
        {
            "headline": "Shipping rates steady",
            "outlets": ["a", "b"],
            "url": "u3",
            "text": "Container shipping rates held steady this week, brokers said.",
        },
    ]
    baseline = [
        "Container shipping rates rose slightly as brokers reported steady demand.",
        "Port authorities published monthly container traffic figures.",
        "Brokers said shipping demand was steady across the region.",
    ] * 5
    found = behind(stories, baseline, top=2, limit=5)
    assert [s["url"] for s in found.stories] == ["u2", "u1"]
    words = [t.term for t in found.terms]
    assert "crane" in words[:3] and "veldra" in words[:3]
    assert "container" not in words[:2]
    assert all(t.stories >= 2 and t.log_ratio > 0 for t in found.terms)


def test_behind_takes_given_terms_and_a_single_story() -> None:
    found = behind([{"headline": "x", "n_sources": 1, "terms": ["Flood", "Rivermouth"]}], ["dry weather again"])
    assert {t.term for t in found.terms} == {"flood", "rivermouth"}
    assert behind([], []).terms == ()
