"""Train the story model (``tracker/stories/model.json``) and measure it, with whole events
left out.

Labelled data, each used when present:

- the story corpus ``../shared/corpus/stories/newscluster-dev.jsonl`` (independent reports
  of one event by many outlets: ``event``);
- the dev news corpus ``../shared/corpus/news/dev.jsonl`` with the blind story labels of
  ``tests/data/story_clusters.jsonl`` (few rewrites, many hard negatives: same companies,
  other events);
- the project's own pairs in ``tests/data/story_pairs.jsonl`` (always there).

Only numbers leave this script: the model's weights and bars. No text is copied.

Training pairs are the pairs published within the window that the index's candidate step
would put side by side (they share two distinctive words or a quotation), described by
``tracker.stories.features.FEATURES``; the model is an L2-regularised logistic regression
fitted by Newton's method (numpy), so a run is deterministic.

Cross-validation: events (story labels) are dealt into ``--folds`` folds by a hash of their
name; for each fold a model is trained on the pairs whose two articles both lie outside it,
every article of the corpus is then grouped in time order, exactly as the pipeline does,
and only pairs and items of the held-out fold are scored. The join bar is chosen on these
held-out figures: the highest recall with pairwise precision ≥ ``--precision`` on every
corpus.

    python bench/train_stories.py            # CV figures for each design and bar
    python bench/train_stories.py --write    # … and write tracker/stories/model.json
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations, permutations
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tracker.stories.features import FEATURES, PairModel  # noqa: E402
from tracker.stories.index import StoryIndex, StoryParams, group  # noqa: E402
from tracker.stories.signature import Signature, signature  # noqa: E402

SHARED = REPO.parent / "shared" / "corpus"
NEWSCLUSTER = SHARED / "stories" / "newscluster-dev.jsonl"
DEV = SHARED / "news" / "dev.jsonl"
DATA = REPO / "tests" / "data"
SEEDS = SHARED.parent / "seeds"
MODEL = REPO / "tracker" / "stories" / "model.json"
WEEK = timedelta(days=7)
L2 = 1.0
JOIN_GRID = (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8)
#: the features the shipped model uses (see tracker/stories/features.py)
USE: tuple[str, ...] = ("rule", "headline_event_min", "headline", "quotes")
#: features left out of selection: in the story corpus, events lie months or years apart, so
#: "published the same week" all but names the event there, a prior a tracker watching a few
#: topics does not share (its window is full of same-day reports of different events); on the
#: dev news set the feature merged such reports
NOT_SELECTED = ("gap",)
#: how much each corpus weighs in training, relative to the others
CORPUS_WEIGHT: dict[str, float] = {}
#: merge bars tried once the join bar is chosen (those above it); a tie goes to the higher bar
MERGE_GRID = (0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass
class Doc:
    key: str
    when: datetime
    label: str
    sig: Signature
    group: str = ""  #: what cross-validation folds by: the event, or the labelled pair

    def __post_init__(self) -> None:
        self.group = self.group or self.label


@dataclass
class Corpus:
    name: str
    docs: list[Doc]


def _when(value: str) -> datetime:
    d = datetime.fromisoformat(value)
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def load() -> list[Corpus]:
    corpora = []
    if NEWSCLUSTER.exists():
        rows = [json.loads(line) for line in NEWSCLUSTER.read_text(encoding="utf-8").splitlines() if line.strip()]
        docs = [Doc(r["id"], _when(r["published"]), r["event"], signature(r["title"], r["text"])) for r in rows]
        corpora.append(Corpus("newscluster", docs))
    if DEV.exists():
        labels = {
            r["id"]: r["story"] for r in map(json.loads, (DATA / "story_clusters.jsonl").read_text().splitlines())
        }
        rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
        docs = [Doc(r["id"], _when(r["published"]), labels[r["id"]], signature(r["title"], r["text"])) for r in rows]
        corpora.append(Corpus("devnews", docs))
    own = []
    for n, line in enumerate((DATA / "story_pairs.jsonl").read_text().splitlines()):
        pair = json.loads(line)
        if "a_title" not in pair:
            continue
        for side in "ab":
            label = f"own{n}" if pair["same"] or side == "a" else f"own{n}b"
            sig = signature(pair[f"{side}_title"], pair[f"{side}_text"])
            own.append(Doc(f"own{n}{side}", _when(pair[f"{side}_date"]), label, sig, f"own{n}"))
    corpora.append(Corpus("own", own))
    return corpora


def fold_of(corpus: str, label: str, folds: int) -> int:
    return zlib.crc32(f"{corpus}:{label}".encode()) % folds


# -- pairs and the model ----------------------------------------------------------------------


def candidate_pairs(corpus: Corpus) -> list[tuple[int, int, list[float], bool]]:
    """(i, j, features, same) for the pairs the index scores when the articles arrive in
    time order: each article against the candidates of the window before it, with the
    window's word counts as they are then (the index is told the true stories)."""
    docs = corpus.docs
    if corpus.name == "own":  # labelled one row at a time (an article may be in several rows)
        out = []
        for i in range(0, len(docs), 2):
            index = StoryIndex()
            early, late = sorted((i, i + 1), key=lambda k: (docs[k].when, k))
            index.add(early, early, docs[early].when, docs[early].sig)
            for _, x in index.evidence(docs[late].sig, docs[late].when):
                out.append((early, late, x, docs[i].label == docs[i + 1].label))
        return out
    index = StoryIndex()
    out = []
    story: dict[str, int] = {}
    for k in sorted(range(len(docs)), key=lambda k: (docs[k].when, k)):
        d = docs[k]
        for j, x in index.evidence(d.sig, d.when):
            out.append((j, k, x, docs[j].label == d.label))
        index.add(k, story.setdefault(d.label, k), d.when, d.sig)
    return out


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Weighted L2 logistic regression on standardised features: (mean, scale, w, bias)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], L2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ beta))
        grad = z.T @ (weight * (p - y)) + penalty * beta
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return mean, scale, beta[:-1], float(beta[-1])


def train(
    rows: list[tuple[str, list[float], bool]], join: float, features: tuple[str, ...] | None = None, merge: float = 0.9
) -> PairModel:
    features = features or USE
    columns = [FEATURES.index(f) for f in features]
    x = np.array([[r[1][c] for c in columns] for r in rows], dtype=float)
    y = np.array([r[2] for r in rows], dtype=float)
    # Each corpus weighs the same, and within one, positives as much as negatives.
    weight = np.zeros(len(rows))
    names = sorted({r[0] for r in rows})
    for name in names:
        for label in (0.0, 1.0):
            mask = np.array([r[0] == name for r in rows]) & (y == label)
            if mask.any():
                weight[mask] = CORPUS_WEIGHT.get(name, 1.0) * len(rows) / (2 * len(names) * mask.sum())
    mean, scale, w, bias = fit(x, y, weight)
    return PairModel(
        features,
        tuple(round(float(v), 6) for v in mean),
        tuple(round(float(v), 6) for v in scale),
        tuple(round(float(v), 6) for v in w),
        round(bias, 6),
        join,
        max(merge, join),
    )


# -- scoring ------------------------------------------------------------------------------------


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    b3p: float = 0.0
    b3r: float = 0.0
    items: int = 0

    def add(self, other: Tally) -> None:
        for f in ("tp", "fp", "fn", "b3p", "b3r", "items"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def row(self) -> dict[str, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        bp, br = (self.b3p / self.items, self.b3r / self.items) if self.items else (1.0, 1.0)
        return {"P": p, "R": r, "B3P": bp, "B3R": br, "B3F": 2 * bp * br / (bp + br) if bp + br else 0.0}


def score(docs: list[Doc], stories: dict[int, int], scored: set[int]) -> Tally:
    """Pairwise and B-cubed tallies within 7 days: the pairs with an article in ``scored``
    (the held-out events: a model trained without them never saw such a pair), and the
    B-cubed figures of those articles."""
    t = Tally()
    idx = sorted(scored)
    for i, j in combinations(range(len(docs)), 2):
        if (i not in scored and j not in scored) or abs(docs[i].when - docs[j].when) > WEEK:
            continue
        gold, same = docs[i].label == docs[j].label, stories[i] == stories[j]
        t.tp += gold and same
        t.fp += same and not gold
        t.fn += gold and not same
    for i in idx:
        near = [j for j in range(len(docs)) if abs(docs[i].when - docs[j].when) <= WEEK]
        ps = [j for j in near if stories[j] == stories[i]]
        gs = [j for j in near if docs[j].label == docs[i].label]
        both = sum(1 for j in ps if docs[j].label == docs[i].label)
        t.b3p += both / len(ps)
        t.b3r += both / len(gs)
        t.items += 1
    return t


Grouper = Callable[[list[Doc], PairModel], dict[int, int]]


def single_link(docs: list[Doc], model: PairModel) -> dict[int, int]:
    """The shipped design: candidates from the inverted index, the learned pair decision."""
    return group([(i, d.when, d.sig) for i, d in enumerate(docs)], StoryParams(), model)


def centroid(docs: list[Doc], model: PairModel) -> dict[int, int]:
    """Online centroid clustering: each story is the normalised sum of its items' vectors
    (lede, text, names), the union of its figures and quotes, the headline of its first
    item; a new item joins the most probable story at the join bar."""
    from tracker.stories.features import Similarities, values
    from tracker.stories.signature import cosine, headline_shares

    stories: list[dict] = []
    out: dict[int, int] = {}
    for i in sorted(range(len(docs)), key=lambda k: (docs[k].when, k)):
        d, best = docs[i], (0.0, -1)
        for n, s in enumerate(stories):
            if d.when - s["last"] > WEEK:
                continue
            shared = d.sig.figures & s["figures"]
            x = values(
                Similarities(
                    lede=cosine(d.sig.lede, _unit(s["lede"])),
                    text=cosine(d.sig.text, _unit(s["text"])),
                    headlines=headline_shares(d.sig.headline, d.sig.lede, s["headline"], s["lede"]),
                    names=cosine(d.sig.names, _unit(s["names"])),
                    names_local=cosine(d.sig.names, _unit(s["names"])),
                    figures=len(shared),
                    figures_local=len(shared),
                    quotes=len(d.sig.quotes & s["quotes"]),
                    hours=(d.when - s["last"]).total_seconds() / 3600,
                    lede_local=cosine(d.sig.lede, _unit(s["lede"])),
                    new_name=0.0,
                )
            )
            best = max(best, (model.probability(x), n))
        if best[0] >= model.join:
            s = stories[best[1]]
        else:
            s = {
                "id": i,
                "lede": Counter(),
                "text": Counter(),
                "names": Counter(),
                "figures": frozenset(),
                "quotes": frozenset(),
                "headline": d.sig.headline,
                "last": d.when,
            }
            stories.append(s)
        for f in ("lede", "text", "names"):
            s[f].update(getattr(d.sig, f))
        s["figures"] |= d.sig.figures
        s["quotes"] |= d.sig.quotes
        s["last"] = max(s["last"], d.when)
        out[i] = s["id"]
    return out


def _unit(v: Counter) -> dict[str, float]:
    norm = sum(x * x for x in v.values()) ** 0.5 or 1.0
    return {w: x / norm for w, x in v.items()}


DESIGNS: dict[str, Grouper] = {"single-link": single_link, "centroid": centroid}


def cross_validate(
    corpora: list[Corpus],
    pairs: dict[str, list],
    folds: int,
    grouper: Grouper,
    joins: tuple[float, ...],
    merge: float = 0.9,
) -> dict[tuple[str, float], Tally]:
    """Held-out figures per corpus and join bar."""
    results = {(c.name, j): Tally() for c in corpora for j in joins}
    for k in range(folds):
        held = {c.name: {i for i, d in enumerate(c.docs) if fold_of(c.name, d.group, folds) == k} for c in corpora}
        rows = [
            (c.name, x, same)
            for c in corpora
            for i, j, x, same in pairs[c.name]
            if i not in held[c.name] and j not in held[c.name]
        ]
        for join in joins:
            model = train(rows, join, merge=merge)
            for c in corpora:
                if c.name == "own":  # each labelled pair on its own
                    for i in sorted(held[c.name])[::2]:
                        stories = grouper(c.docs[i : i + 2], model)
                        same, gold = stories[0] == stories[1], c.docs[i].label == c.docs[i + 1].label
                        tally = Tally(tp=same and gold, fp=same and not gold, fn=gold and not same)
                        results[(c.name, join)].add(tally)
                elif held[c.name]:
                    results[(c.name, join)].add(score(c.docs, grouper(c.docs, model), held[c.name]))
    return results


def objective(
    results: dict[tuple[str, float], Tally],
    names: list[str],
    joins: tuple[float, ...],
    floor: dict[str, float],
    seeds_hold: Callable[[float], bool] = lambda join: True,
) -> tuple[bool, float, float]:
    """The best join bar's (precision floors kept and seed check held, summed pairwise F1 +
    B-cubed F1 over the corpora, -bar): bars that keep the constraints come first, then the
    held-out figures, then the lower bar."""
    best = (False, -1.0, -joins[0])
    for join in joins:
        rows = [results[(n, join)].row() for n in names]
        kept = all(r["P"] >= floor.get(n, 0.0) for n, r in zip(names, rows, strict=True)) and seeds_hold(join)
        total = sum(r["B3F"] + (2 * r["P"] * r["R"] / (r["P"] + r["R"]) if r["P"] + r["R"] else 0.0) for r in rows)
        best = max(best, (kept, total, -join))
    return best


def _seeds() -> list[Signature] | None:
    """The five seed articles of ``../shared/seeds`` (000–004), when present."""
    paths = sorted(SEEDS.glob("00[0-4]_*.txt")) if SEEDS.is_dir() else []
    if len(paths) != 5:
        return None
    out = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip())
        out.append(signature(lines[start].strip(), "\n".join(lines[start + 1 :])))
    return out


def seed_check(corpora: list[Corpus], pairs: dict[str, list]) -> Callable[[float], bool]:
    """Whether a model trained on every pair at a join bar passes the project's seed check
    (seeds 002–004 one story, 000 and 001 each their own, in every order of arrival; the
    seeds are not training data). Always true without the seeds."""
    seeds = _seeds()
    rows = [(c.name, x, same) for c in corpora for _i, _j, x, same in pairs[c.name]]
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)

    def holds(join: float) -> bool:
        if seeds is None:
            return True
        model = train(rows, join)
        for order in permutations(range(5)):
            items = [(n, start + timedelta(days=k), seeds[n]) for k, n in enumerate(order)]
            story = group(items, StoryParams(), model)
            if not (story[2] == story[3] == story[4] and len({story[0], story[1], story[2]}) == 3):
                return False
        return True

    return holds


def select(
    corpora: list[Corpus], pairs: dict[str, list], folds: int, joins: tuple[float, ...], floor: dict[str, float]
) -> tuple[str, ...]:
    """Greedy forward selection of features on the held-out objective; stops when no
    feature improves it by at least 0.005."""
    global USE
    names = [c.name for c in corpora]
    chosen: list[str] = []
    score = (False, -1.0, 0.0)
    while True:
        trials = []
        for f in FEATURES:
            if f in chosen or f in NOT_SELECTED:
                continue
            USE = (*chosen, f)
            results = cross_validate(corpora, pairs, folds, single_link, joins)
            trials.append((objective(results, names, joins, floor, seed_check(corpora, pairs)), f))
        if not trials:
            break
        value, f = max(trials)
        print(f"  + {f}: floor {'kept' if value[0] else 'missed'}, objective {value[1]:.3f} at join {-value[2]:.2f}")
        if value[:2] < (score[0], score[1] + 0.005):
            break
        chosen.append(f)
        score = value
    USE = tuple(chosen)
    return USE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--floor",
        action="append",
        default=[],
        help="NAME=P: a corpus's held-out pairwise precision must reach P (default: own=1.0, the "
        "project's own hard negatives, which the tests pin, and devnews=0.85: the issue asks for "
        "precision first on the dev news set's hard negatives)",
    )
    ap.add_argument("--design", choices=sorted(DESIGNS), action="append", help="default: all")
    ap.add_argument("--join", type=float, action="append", help="join bars to try (default: a grid)")
    ap.add_argument("--features", help="comma-separated features to use (default: the USE list)")
    ap.add_argument("--select", action="store_true", help="choose the features by greedy forward selection")
    ap.add_argument("--write", action="store_true", help=f"write {MODEL.relative_to(REPO)}")
    global USE
    ap.add_argument("--weight", action="append", default=[], help="NAME=W: weigh a corpus W times")
    a = ap.parse_args()
    for spec in a.weight:
        name, w = spec.split("=")
        CORPUS_WEIGHT[name] = float(w)
    floor = {n: float(p) for n, p in (spec.split("=") for spec in a.floor or ["own=1.0", "devnews=0.85"])}
    if a.features:
        USE = tuple(a.features.split(","))
    corpora = load()
    pairs = {c.name: candidate_pairs(c) for c in corpora}
    for c in corpora:
        pos = sum(1 for *_, same in pairs[c.name] if same)
        print(f"{c.name}: {len(c.docs)} articles, {len(pairs[c.name])} candidate pairs ({pos} same event)")
    joins = tuple(a.join or JOIN_GRID)
    if a.select:
        print("feature selection (held-out pairwise F1 + B-cubed F1, summed over corpora):")
        print("selected:", ",".join(select(corpora, pairs, a.folds, joins, floor)))
    scored = corpora
    chosen: dict[str, float] = {}
    for name in a.design or sorted(DESIGNS, reverse=True):
        if not scored:
            break
        print(f"\n{name}: held-out figures ({a.folds} folds, events left out), within 7 days")
        results = cross_validate(corpora, pairs, a.folds, DESIGNS[name], joins)
        best: tuple[bool, float, float] | None = None
        for join in joins:
            rows = {c.name: results[(c.name, join)].row() for c in scored}
            cells = " | ".join(
                f"{n} P {r['P']:.3f} R {r['R']:.3f} B3 P {r['B3P']:.3f} R {r['B3R']:.3f} F1 {r['B3F']:.3f}"
                for n, r in rows.items()
            )
            print(f"  join {join:.2f}: {cells}")
            # Bars keeping the precision floors come first; then the held-out objective.
            key = objective(results, [c.name for c in scored], (join,), floor, seed_check(corpora, pairs))
            if best is None or key > best:
                best = key
        assert best is not None
        chosen[name] = -best[2]
        print(f"  chosen join bar: {chosen[name]:.2f} (floors and seed check {'kept' if best[0] else 'not kept'})")
    join = chosen.get("single-link", 0.5)
    merge = 0.9
    if "single-link" in chosen:
        print(f"\nsingle-link, join bar {join:.2f}: the merge bar, held out")
        names = [c.name for c in scored]
        merges = []
        for bar in (b for b in MERGE_GRID if b >= join):
            results = cross_validate(corpora, pairs, a.folds, single_link, (join,), bar)
            cells = " | ".join(
                "{} P {P:.3f} R {R:.3f} B3 F1 {B3F:.3f}".format(n, **results[(n, join)].row()) for n in names
            )
            print(f"  merge {bar:.2f}: {cells}")
            merges.append((objective(results, names, (join,), floor)[:2], bar))
        merge = max(merges)[1]
        print(f"  chosen merge bar: {merge:.2f}")
    rows = [(c.name, x, same) for c in corpora for _i, _j, x, same in pairs[c.name]]
    model = train(rows, join, merge=merge)
    print("\nmodel on every pair:", json.dumps(model.to_json()))
    print("weights (standardised):", {f: round(w, 2) for f, w in zip(model.features, model.weights, strict=True)})
    for c in corpora:  # training figures: the shipped model on the data it was fitted to
        if c.name != "own":
            r = score(c.docs, single_link(c.docs, model), set(range(len(c.docs)))).row()
            print("  in-sample {}: P {P:.3f} R {R:.3f} B3 P {B3P:.3f} R {B3R:.3f} F1 {B3F:.3f}".format(c.name, **r))
    if a.write:
        MODEL.write_text(
            json.dumps(
                {
                    "about": "Story pair model: logistic regression over tracker.stories.features.FEATURES. "
                    "Written by bench/train_stories.py; numbers only.",
                    "trained_on": {c.name: len(pairs[c.name]) for c in corpora},
                    "model": model.to_json(),
                },
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {MODEL}")


if __name__ == "__main__":
    main()
