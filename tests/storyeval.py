"""Pairwise precision and recall of "same story" on the labelled pairs.

``tests/data/story_pairs.jsonl`` holds pairs of articles labelled same event / different
event (see ``tests/data/README.md``). Every article of the set — the dev corpus, when it is
there, and the project's own written articles — goes through story grouping as one stream
in time order, exactly as the pipeline assigns items; a pair counts as "same story" when
both articles end up with the same story id.

    python -m tests.storyeval            # the table, and each pair it gets wrong

A second measure needs no choice of pairs: every pair of the 100 dev-corpus articles,
against story labels given to each article blind (``tests/data/story_clusters.jsonl``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tracker.stories.index import StoryParams, group
from tracker.stories.signature import signature

DATA = Path(__file__).resolve().parent / "data"
DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "news" / "dev.jsonl"


@dataclass(frozen=True)
class Score:
    label: str
    tp: int
    fp: int
    fn: int
    tn: int
    errors: tuple[str, ...]

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def _when(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def load(dev_path: Path | None = DEV) -> tuple[dict[str, tuple[str, str, datetime]], list[tuple[str, str, dict]]]:
    """The articles (key → title, text, time) and the pairs whose articles are available."""
    dev: dict[str, dict] = {}
    if dev_path is not None and dev_path.exists():
        dev = {d["id"]: d for d in map(json.loads, dev_path.read_text().splitlines())}
    docs: dict[str, tuple[str, str, datetime]] = {}
    pairs = []
    for line in (DATA / "story_pairs.jsonl").read_text().splitlines():
        pair = json.loads(line)
        keys = []
        for side in "ab":
            if side in pair:
                if pair[side] not in dev:
                    break
                d = dev[pair[side]]
                key = pair[side]
                docs[key] = (d["title"], d["text"], _when(d["published"]))
            else:
                key = "own:" + pair[f"{side}_title"]
                docs[key] = (pair[f"{side}_title"], pair[f"{side}_text"], _when(pair[f"{side}_date"]))
            keys.append(key)
        else:
            pairs.append((keys[0], keys[1], pair))
    return docs, pairs


def evaluate(params: StoryParams | None = None, dev_path: Path | None = DEV) -> list[Score]:
    docs, pairs = load(dev_path)
    keys = sorted(docs)
    number = {k: i for i, k in enumerate(keys)}
    stories = group([(number[k], docs[k][2], signature(docs[k][0], docs[k][1])) for k in keys], params)
    scores = []
    for label, select in (
        ("all pairs", lambda a: True),
        ("dev corpus pairs", lambda a: not a.startswith("own:")),
        ("own-writing pairs", lambda a: a.startswith("own:")),
    ):
        tp = fp = fn = tn = 0
        errors = []
        for a, b, pair in pairs:
            if not select(a):
                continue
            same = stories[number[a]] == stories[number[b]]
            if same and pair["same"]:
                tp += 1
            elif same:
                fp += 1
                errors.append(f"false same: {a[:40]} / {b[:40]} ({pair['kind']})")
            elif pair["same"]:
                fn += 1
                errors.append(f"missed: {a[:40]} / {b[:40]} ({pair['kind']})")
            else:
                tn += 1
        scores.append(Score(label, tp, fp, fn, tn, tuple(errors)))
    return scores


def evaluate_clusters(params: StoryParams | None = None, dev_path: Path | None = DEV) -> Score | None:
    """Every pair of dev-corpus articles, against the story labels of ``story_clusters.jsonl``
    (labelled blind, before and apart from the grouping code). None without the corpus."""
    if dev_path is None or not dev_path.exists():
        return None
    dev = {d["id"]: d for d in map(json.loads, dev_path.read_text().splitlines())}
    label = {r["id"]: r["story"] for r in map(json.loads, (DATA / "story_clusters.jsonl").read_text().splitlines())}
    ids = sorted(dev)
    stories = group(
        [(i, _when(dev[k]["published"]), signature(dev[k]["title"], dev[k]["text"])) for i, k in enumerate(ids)],
        params,
    )
    tp = fp = fn = tn = 0
    errors = []
    for i, a in enumerate(ids):
        for j in range(i + 1, len(ids)):
            b = ids[j]
            same, truth = stories[i] == stories[j], label[a] == label[b]
            tp += same and truth
            tn += not same and not truth
            if same and not truth:
                fp += 1
                errors.append(f"false same: {a} / {b}")
            elif truth and not same:
                fn += 1
                errors.append(f"missed: {a} / {b}")
    return Score("dev corpus, every pair", tp, fp, fn, tn, tuple(errors))


def main() -> None:
    scores = evaluate()
    exhaustive = evaluate_clusters()
    if exhaustive is not None:
        scores.append(exhaustive)
    print(f"{'pairs':<20} {'n':>4} {'tp':>4} {'fp':>4} {'fn':>4} {'tn':>4} {'precision':>9} {'recall':>7}")
    for s in scores:
        n = s.tp + s.fp + s.fn + s.tn
        print(f"{s.label:<20} {n:>4} {s.tp:>4} {s.fp:>4} {s.fn:>4} {s.tn:>4} {s.precision:>9.3f} {s.recall:>7.3f}")
    for s in (scores[0], scores[-1]):
        for line in s.errors:
            print(f"  {s.label}: {line}")


if __name__ == "__main__":
    sys.exit(main())
