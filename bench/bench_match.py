"""Matching throughput: synthetic documents × 5, 100 and 1,000 rules, on one core.

Documents: ~800 words drawn from a Zipf-distributed vocabulary of 20,000 synthetic words,
with the names and topic words of the real rules mixed in, split into paragraphs of ~80
words. Rules: the 5 shipped topic rules, plus generated rules of the same shapes
(paragraph-scoped AND of OR-lists, NEAR, NOT, atleast) over mid-frequency words. Prints
documents per second and microseconds per document for each rule count.

Usage: python bench/bench_match.py [--docs 10000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from tracker.rules.matching import Matcher
from tracker.rules.ruleset import load_rules

REPO = Path(__file__).resolve().parent.parent
SEED_WORDS = [
    "Ford",
    "Geely",
    "BYD",
    "Trump",
    "Xi",
    "summit",
    "partnership",
    "joint",
    "venture",
    "tariffs",
    "Canada",
    "Mexico",
    "plant",
    "GM",
    "Barra",
    "union",
    "UAW",
    "lawmakers",
    "Chinese",
    "automakers",
    "Beijing",
    "meeting",
    "talks",
]


def vocabulary(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def documents(count: int, vocab: list[str], rng: random.Random) -> list[tuple[str, str]]:
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    docs = []
    for _ in range(count):
        words = rng.choices(vocab, weights=weights, k=800)
        for i in rng.sample(range(800), 12):
            words[i] = rng.choice(SEED_WORDS)
        paragraphs = [" ".join(words[i : i + 80]) + "." for i in range(0, 800, 80)]
        docs.append((" ".join(rng.choices(vocab[:2000], k=8)), "\n\n".join(paragraphs)))
    return docs


def generated_rules(count: int, vocab: list[str], rng: random.Random, folder: Path) -> None:
    mid = vocab[200:6000]
    shapes = [
        'paragraph(({a} OR {b}*) AND ({c} OR "{d} {e}"))',
        "{a} NEAR/5 ({b} OR {c})",
        "atleast(2, paragraph({a} AND {b})) OR title:{c}",
        "paragraph({a} AND {b} AND NOT {c})",
        "atleast(3, {a}) AND ({b} OR {c} OR {d})",
    ]
    for i in range(count):
        words = dict(zip("abcde", rng.sample(mid, 5), strict=True))
        query = rng.choice(shapes).format(**words)
        (folder / f"gen-{i:04d}.toml").write_text(f"id = \"gen-{i:04d}\"\nquery = '{query}'\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=10_000)
    args = ap.parse_args()
    rng = random.Random(2026)
    vocab = vocabulary(20_000, rng)
    docs = documents(args.docs, vocab, rng)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for extra in (0, 95, 995):
            folder = Path(d) / f"r{extra}"
            folder.mkdir()
            generated_rules(extra, vocab, rng, folder)
            t0 = time.perf_counter()
            matcher = Matcher(load_rules([REPO / "rules", folder]))
            build = time.perf_counter() - t0
            # CPU time of this process: "per core", and steady while other processes run.
            t0 = time.process_time()
            matches = sum(len(matcher.match(title, text)) for title, text in docs)
            seconds = time.process_time() - t0
            rows.append((len(matcher.ruleset.rules), build, seconds, matches))
    print(f"{len(docs)} documents of ~800 words, one process (CPU time of one core)")
    print(f"{'rules':>6} {'build s':>8} {'docs/s':>8} {'us/doc':>8} {'matches':>8}")
    for n, build, seconds, matches in rows:
        print(f"{n:6d} {build:8.2f} {len(docs) / seconds:8.0f} {seconds / len(docs) * 1e6:8.0f} {matches:8d}")


if __name__ == "__main__":
    main()
