"""Precision and recall of "what an update adds" on the labelled cases.

``tests/data/developments.jsonl`` holds the project's own invented stories (no real article
text): each case has the earlier items of a story, an update, whether the update adds
something new (``adds_new``), and for those that do, the new facts:
``{"figure": "seven"}``, ``{"name": "Ines Varga"}``, ``{"quote": "words of it"}`` or
``{"statement": "words of it"}``. Half of the updates add a figure, a name, a place, a quote
or a statement; the other half only restate (paraphrase, reordering, numbers written another
way, the same quote given to someone else, boilerplate around known facts).

The ``dev`` cases were used to set the method's rules and thresholds; the ``holdout`` cases
were written afterwards and only measured.

Two measures:

- *adds new*: per case, whether :func:`tracker.stories.developments.developments` returns
  anything, against the label;
- *facts*: every new figure, name, quote or statement it reports, matched against the
  expected facts of the case (a figure by its normalised value, a name by its words, a quote
  or statement by containing the expected words). Facts reported for a restatement are all
  wrong.

    python -m tests.devcheck            # the figures, and each case it gets wrong
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.stories.developments import Development, developments, figures

DATA = Path(__file__).resolve().parent / "data" / "developments.jsonl"


@dataclass
class Count:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Result:
    cases: int = 0
    adds: Count = field(default_factory=Count)
    facts: Count = field(default_factory=Count)
    errors: list[str] = field(default_factory=list)


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text)}


def _found(kind: str, expected: str, reported: tuple[str, str, str]) -> bool:
    got_kind, got, sentence = reported
    if kind != got_kind:
        return False
    if kind == "figure":
        want = [f.key for f in figures(expected)]
        return bool(want) and want[0] in {f.key for f in figures(got)}
    if kind == "name":
        a, b = _words(expected), _words(got)
        return bool(a & b) and (a <= b or b <= a)
    return _words(expected) <= _words(got if kind == "quote" else sentence)


def _reported(found: list[Development]) -> list[tuple[str, str, str]]:
    out = []
    for d in found:
        out += [("figure", f, d.sentence) for f in d.figures]
        out += [("name", n, d.sentence) for n in d.names]
        out += [("quote", d.quote, d.sentence)] if d.quote else []
        out += [("statement", d.sentence, d.sentence)] if d.statement else []
    return out


def evaluate(cases: list[dict[str, Any]] | None = None) -> Result:
    result = Result()
    for case in cases if cases is not None else load():
        result.cases += 1
        found = developments(case["update"], case["earlier"], title=case.get("title", ""), limit=10)
        said = bool(found)
        if said and case["adds_new"]:
            result.adds.tp += 1
        elif said:
            result.adds.fp += 1
            result.errors.append(f"{case['id']}: restates, but found {[d.facts or d.sentence for d in found]}")
        elif case["adds_new"]:
            result.adds.fn += 1
            result.errors.append(f"{case['id']}: adds {case['new_facts']}, found nothing")
        expected = [next(iter(f.items())) for f in case["new_facts"]]
        reported = _reported(found)
        hit = [any(_found(k, v, r) for r in reported) for k, v in expected]
        right = [any(_found(k, v, r) for k, v in expected) for r in reported]
        result.facts.tp += sum(right)
        result.facts.fp += len(right) - sum(right)
        result.facts.fn += len(hit) - sum(hit)
        if case["adds_new"] and found and not all(hit):
            missed = [e for e, h in zip(expected, hit, strict=True) if not h]
            result.errors.append(f"{case['id']}: missed {missed}")
        if case["adds_new"] and not all(right):
            wrong = [r[:2] for r, ok in zip(reported, right, strict=True) if not ok]
            result.errors.append(f"{case['id']}: wrongly reported {wrong}")
    return result


def main() -> int:
    cases = load()
    print("split     cases  measure     precision  recall   tp  fp  fn")
    errors = []
    for split in ("dev", "holdout", "hard", "all"):
        chosen = [c for c in cases if split in ("all", c["split"])]
        result = evaluate(chosen)
        for name, c in (("adds new", result.adds), ("new facts", result.facts)):
            figures_ = f"{c.precision:>9.3f} {c.recall:>7.3f} {c.tp:>4} {c.fp:>3} {c.fn:>3}"
            print(f"{split:<9} {result.cases:>5}  {name:<11} {figures_}")
        if split == "all":
            errors = result.errors
    for error in errors:
        print("  " + error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
