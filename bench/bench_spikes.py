"""Spike detection on a synthetic year per topic: detection rate, false alarms, delay.

Each topic gets a year of hourly and of daily volumes (fixed seed), drawn as Poisson counts
around a rate that has what real topics have:

- a size: 3 to 150 items a day (log-uniform), so some topics see a handful of items a day;
- seasons: an hour-of-day profile (quiet nights) and a weekday profile (quiet weekends);
- a slow trend: a drift of up to ±40 % over the year and a seasonal wave of up to ±25 %;
- quiet periods: 2 to 4 stretches of 3–14 days at 30–60 % of the usual volume (holidays,
  a feed down);
- overdispersion: every day's rate is multiplied by a gamma variable (CV 0.25), every hour's
  by another (CV 0.3), so counts vary more than a Poisson process does;
- planted surges: about 1.5 a month per topic in the hourly series (1–6 hours long) and 1 a
  month in the daily series (1–3 days), each multiplying the rate by 2, 3, 5 or 10.

A surge is detected when a spike fires in one of its buckets; the delay is the number of
buckets from its start to that spike. A spike that fires neither inside a surge nor in the
as-long stretch right after one (its tail) is a false alarm. Prints, per sensitivity, the
detection rate per surge size, false alarms per topic per month, and the median and 95th
percentile delay.

Usage: python bench/bench_spikes.py [--topics 24] [--seed 21] [--sensitivities 6,7,7.5,8,8.5,9]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tracker.analysis.spikes import DAILY, HOURLY, Expectation, SpikeParams, expectations, spikes

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
DAYS = 365
SIZES = (2, 3, 5, 10)
WEEKDAY = (1.1, 1.12, 1.1, 1.08, 1.0, 0.62, 0.55)
MONTHS = DAYS / 30.44
VISIBLE = 15  #: a surge "visible" in the counts adds this many items or more over the baseline


@dataclass(frozen=True)
class Surge:
    start: int  #: bucket index
    length: int
    size: int


@dataclass
class Topic:
    per_day: float
    hourly: list[int]
    daily: list[int]
    hour_surges: list[Surge]
    day_surges: list[Surge]


def hour_profile(hour: int) -> float:
    return 0.25 + 1.6 * math.exp(-(((hour - 13) / 5.0) ** 2))


def plant(
    rng: random.Random, buckets: int, per_month: float, lengths: tuple[int, int], gap: int, first: int
) -> list[Surge]:
    """Non-overlapping surges at random places after the first ``first`` buckets."""
    want = round(per_month * MONTHS)
    out: list[Surge] = []
    tries = 0
    while len(out) < want and tries < 10_000:
        tries += 1
        length = rng.randint(*lengths)
        start = rng.randrange(first, buckets - length)
        if all(start + length + gap <= s.start or s.start + s.length + gap <= start for s in out):
            out.append(Surge(start, length, rng.choice(SIZES)))
    return sorted(out, key=lambda s: s.start)


def gamma(rng: random.Random, cv: float) -> float:
    shape = 1 / (cv * cv)
    return rng.gammavariate(shape, 1 / shape)


def topic(rng: random.Random) -> Topic:
    per_day = math.exp(rng.uniform(math.log(3), math.log(150)))
    drift = rng.uniform(-0.4, 0.4)
    wave, phase = rng.uniform(0, 0.25), rng.uniform(0, 2 * math.pi)
    quiet = [1.0] * DAYS
    for _ in range(rng.randint(2, 4)):
        at, length, level = rng.randrange(DAYS), rng.randint(3, 14), rng.uniform(0.3, 0.6)
        for d in range(at, min(DAYS, at + length)):
            quiet[d] = level
    day_rate = [
        per_day
        * WEEKDAY[(START + timedelta(days=d)).weekday()]
        / statistics.fmean(WEEKDAY)
        * (1 + drift * d / DAYS)
        * (1 + wave * math.sin(2 * math.pi * d / DAYS + phase))
        * quiet[d]
        * gamma(rng, 0.25)
        for d in range(DAYS)
    ]
    norm = statistics.fmean(hour_profile(h) for h in range(24))
    hour_surges = plant(rng, DAYS * 24, 1.5, (1, 6), 48, HOURLY.history)
    day_surges = plant(rng, DAYS, 1.0, (1, 3), 7, DAILY.history)
    hour_mult = _multipliers(DAYS * 24, hour_surges)
    day_mult = _multipliers(DAYS, day_surges)
    hourly = [
        _poisson(rng, day_rate[h // 24] / 24 * hour_profile(h % 24) / norm * gamma(rng, 0.3) * hour_mult[h])
        for h in range(DAYS * 24)
    ]
    daily = [_poisson(rng, day_rate[d] * day_mult[d]) for d in range(DAYS)]
    return Topic(per_day, hourly, daily, hour_surges, day_surges)


def _multipliers(buckets: int, surges: list[Surge]) -> list[float]:
    mult = [1.0] * buckets
    for s in surges:
        for i in range(s.start, s.start + s.length):
            mult[i] = float(s.size)
    return mult


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 60:  # normal approximation, plenty for counts this large
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass
class Row:
    found: dict[int, list[bool]]
    visible: list[bool]  #: surges of 3× or more that add at least VISIBLE items
    delays: list[int]
    false_alarms: int


def evaluate(scored: list[list[Expectation]], surges: list[list[Surge]], params: SpikeParams) -> Row:
    row = Row({size: [] for size in SIZES}, [], [], 0)
    for series, planted in zip(scored, surges, strict=True):
        fired = [s.index for s in spikes(series, params)]
        used: set[int] = set()
        for surge in planted:
            inside = [i for i in fired if surge.start <= i < surge.start + surge.length]
            row.found[surge.size].append(bool(inside))
            extra = (surge.size - 1) * sum(e.expected for e in series[surge.start : surge.start + surge.length])
            if surge.size >= 3 and extra >= VISIBLE:
                row.visible.append(bool(inside))
            if inside:
                row.delays.append(inside[0] - surge.start)
            used.update(i for i in fired if surge.start <= i < surge.start + 2 * surge.length)
        row.false_alarms += sum(1 for i in fired if i not in used)
    return row


def table(
    name: str,
    unit: str,
    scored: list[list[Expectation]],
    surges: list[list[Surge]],
    base: SpikeParams,
    sensitivities: list[float],
) -> None:
    print(f"\n{name}: {len(scored)} topics × {len(scored[0])} buckets, {sum(map(len, surges))} planted surges")
    head = ["sens", "alpha", *(f"det {s}×" for s in SIZES), "det ≥3×", f"det ≥3×, ≥{VISIBLE} extra"]
    head += ["FA/topic/month", f"delay med/p95 ({unit})"]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for sens in sensitivities:
        params = base.with_sensitivity(sens)
        row = evaluate(scored, surges, params)
        rates = [statistics.fmean(row.found[s]) if row.found[s] else float("nan") for s in SIZES]
        big = [f for s in SIZES if s >= 3 for f in row.found[s]]
        delays = sorted(row.delays)
        p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))] if delays else float("nan")
        med = statistics.median(delays) if delays else float("nan")
        cells = [f"{sens:g}", f"{params.alpha:.1e}", *(f"{r:.0%}" for r in rates)]
        cells += [f"{statistics.fmean(big):.0%}", f"{statistics.fmean(row.visible):.0%}"]
        cells += [f"{row.false_alarms / len(scored) / MONTHS:.2f}", f"{med:g} / {p95:g}"]
        print(" | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=24)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--sensitivities", default="6,7,7.5,8,8.5,9")
    args = parser.parse_args()
    sensitivities = [float(s) for s in args.sensitivities.split(",")]
    rng = random.Random(args.seed)
    topics = [topic(rng) for _ in range(args.topics)]
    t0 = time.perf_counter()
    hourly = [expectations(t.hourly, START, HOURLY) for t in topics]
    t1 = time.perf_counter()
    daily = [expectations(t.daily, START, DAILY) for t in topics]
    t2 = time.perf_counter()
    buckets = sum(len(t.hourly) for t in topics)
    print(
        f"scoring: {(t1 - t0) / buckets * 1e6:.1f} µs per hourly bucket, "
        f"{(t2 - t1) / sum(len(t.daily) for t in topics) * 1e6:.1f} µs per daily bucket"
    )
    table("hourly", "hours", hourly, [t.hour_surges for t in topics], HOURLY, sensitivities)
    table("daily", "days", daily, [t.day_surges for t in topics], DAILY, sensitivities)


if __name__ == "__main__":
    main()
