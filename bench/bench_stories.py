"""Story assignment cost against the size of the window: 100 to 100,000 recent items.

Assigning a new item to a story must cost about the same whatever the number of items
the window holds: candidates come from LSH buckets and from inverted indexes over each
item's most distinctive words, never from a scan. This fills a ``StoryIndex`` with N
synthetic items (all within the 7-day window), then times ``assign`` for 300 queries:
100 rewrites of indexed items (30 % of their words changed), 100 near-copies (5 %
changed), 100 new items. Prints, per N, the median and 95th-percentile microseconds per assignment, how
many candidates each looked at, whether rewrites and copies found their story, and the
memory the index takes.

Items are synthetic signatures over a Zipf-distributed vocabulary of 200,000 words (so
some words are common to thousands of items, as "automaker" is in a tracker), weighted by
rarity as real ones are, with random MinHash values, built directly rather than from text
so that filling 100,000 items takes a minute rather than an hour.

Usage: python bench/bench_stories.py [--sizes 100,1000,10000,100000]
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np
from datasketch import LeanMinHash, MinHash

from tracker.stories.index import StoryIndex
from tracker.stories.signature import NUM_PERM, Signature

VOCAB = 200_000
START = datetime(2026, 3, 1, tzinfo=UTC)


def zipf_words(rng: random.Random, n: int, weights: list[float]) -> list[str]:
    return [f"w{i}" for i in rng.choices(range(VOCAB), cum_weights=weights, k=n)]


def unit(words: list[str], rng: random.Random) -> dict[str, float]:
    # as in real signatures, rare words weigh most: weight grows with the log of the rank
    raw = {w: math.log(2 + int(w[1:])) * (0.8 + 0.4 * rng.random()) for w in words}
    norm = math.sqrt(sum(x * x for x in raw.values()))
    return {w: round(x / norm, 5) for w, x in raw.items()}


def minhash(values: np.ndarray) -> bytes:
    lean = LeanMinHash(MinHash(num_perm=NUM_PERM, seed=7, hashvalues=values, scheme="affine32"))
    buf = bytearray(lean.bytesize())
    lean.serialize(buf)
    return bytes(buf)


def random_hashes(rng: random.Random) -> np.ndarray:
    return np.array([rng.getrandbits(32) for _ in range(NUM_PERM)], dtype=np.uint64)


def make(rng: random.Random, weights: list[float]) -> tuple[Signature, list[str], np.ndarray]:
    lede = zipf_words(rng, 40, weights)
    body = lede + zipf_words(rng, 60, weights)
    hashes = random_hashes(rng)
    return Signature(minhash(hashes), unit(lede, rng), unit(body, rng)), body, hashes


def variant(rng: random.Random, weights: list[float], body: list[str], hashes: np.ndarray, change: float) -> Signature:
    """The same story retold: ``change`` of its words and of its MinHash values replaced
    (so the estimated Jaccard similarity to the original is about 1 - change)."""
    words = [w if rng.random() > change else zipf_words(rng, 1, weights)[0] for w in body]
    fresh = random_hashes(rng)
    mixed = np.array([h if rng.random() > change else f for h, f in zip(hashes, fresh, strict=True)], dtype=np.uint64)
    return Signature(minhash(mixed), unit(words[:40], rng), unit(words, rng))


def run(size: int, weights: list[float]) -> dict[str, float]:
    rng = random.Random(size)
    bodies = []
    gc.collect()
    tracemalloc.start()
    index = StoryIndex()
    for i in range(size):
        sig, body, hashes = make(rng, weights)
        index.add(i, i, START + timedelta(seconds=rng.randrange(7 * 86400)), sig)
        if len(bodies) < 100:
            bodies.append((i, body, hashes))
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    queries: list[tuple[str, Signature, int | None]] = []
    for kind, change in (("rewrite", 0.3), ("copy", 0.05)):
        for i, body, hashes in rng.sample(bodies, 100):
            queries.append((kind, variant(rng, weights, body, hashes, change), i))
    queries += [("new", make(rng, weights)[0], None) for _ in range(100)]
    when = START + timedelta(days=7)
    times, found = [], {"rewrite": 0, "copy": 0, "new": 0}
    candidates = []
    for kind, sig, expected in queries:
        candidates.append(len(index._candidates(sig)))
        t0 = time.perf_counter()
        result = index.assign(sig, when)
        times.append((time.perf_counter() - t0) * 1e6)
        found[kind] += (result.story_id == expected) if expected is not None else (result.story_id is None)
    times.sort()
    return {
        "size": size,
        "median_us": statistics.median(times),
        "p95_us": times[int(len(times) * 0.95)],
        "candidates": statistics.mean(candidates),
        "rewrites": found["rewrite"],
        "copies": found["copy"],
        "new": found["new"],
        "mb": memory / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    args = parser.parse_args()
    acc, weights = 0.0, []
    for rank in range(1, VOCAB + 1):
        acc += 1 / rank**1.05
        weights.append(acc)
    print(
        f"{'items':>8} {'median µs':>10} {'p95 µs':>8} {'candidates':>10} "
        f"{'rewrites':>8} {'copies':>7} {'new':>5} {'index MB':>9}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        r = run(size, weights)
        print(
            f"{r['size']:>8,} {r['median_us']:>10.0f} {r['p95_us']:>8.0f} {r['candidates']:>10.1f} "
            f"{r['rewrites']:>5}/100 {r['copies']:>4}/100 {r['new']:>2}/100 {r['mb']:>9.1f}"
        )


if __name__ == "__main__":
    main()
