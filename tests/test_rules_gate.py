"""Regression gate on the labeled dev set (in the spirit of trafilatura's pinned eval floors).

F1 per topic must stay at or above the floors in rules_baseline.json. The corpus hash is
pinned: if the dev set changes, the gate says so instead of comparing against other data.
Lowering a floor is an explicit edit of rules_baseline.json, reviewed like code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tracker.rules.matching import Matcher
from tracker.rules.ruleset import load_rules

from .conftest import REPO

BASELINE = json.loads((Path(__file__).with_name("rules_baseline.json")).read_text())
HOLDOUT = Path(__file__).parent / "data" / "news_holdout.jsonl"
HOLDOUT2 = Path(__file__).parent / "data" / "news_holdout2.jsonl"
HOLDOUT3 = Path(__file__).parent / "data" / "news_holdout3.jsonl"
HOLDOUT4 = Path(__file__).parent / "data" / "news_holdout4.jsonl"
HOLDOUT5 = Path(__file__).parent / "data" / "news_holdout5.jsonl"
#: Written for issue 15 from LABELS.md alone, after the topic model's training sets (1–5) were fixed;
#: never trained on. Sets 9 and 10 are kept blind: their errors are not read when rules change. Sets
#: 11-13 were written as training sets, then kept as held-out ones (training on them did not help).
FRESH = {n: Path(__file__).parent / "data" / f"news_holdout{n}.jsonl" for n in (6, 7, 8, 9, 10, 11, 12, 13)}


@pytest.mark.corpus
def test_dev_f1_at_or_above_floors(corpus: Path) -> None:
    path = corpus / BASELINE["corpus"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != BASELINE["corpus_sha256"]:
        pytest.skip(f"{path} changed (sha256 {digest[:12]}…): re-pin tests/rules_baseline.json after review")
    assert_floors(path, BASELINE["floors"])


def test_holdout_f1_at_or_above_floors() -> None:
    """Our own labeled articles (tests/data/news_holdout.jsonl), written apart from the rules."""
    assert_floors(HOLDOUT, BASELINE["holdout_floors"])


def test_second_holdout_f1_at_or_above_floors() -> None:
    """A second set of our own, in deliberately varied forms (briefs, transcripts, indirect names)."""
    assert_floors(HOLDOUT2, BASELINE["holdout2_floors"])


def test_third_holdout_f1_at_or_above_floors() -> None:
    """A third set: Canadian, Mexican, state-media, trade-press and analyst-note perspectives."""
    assert_floors(HOLDOUT3, BASELINE["holdout3_floors"])


def test_fourth_holdout_f1_at_or_above_floors() -> None:
    """A fourth set: names given once, then "the automaker", "the company", "the two leaders"."""
    assert_floors(HOLDOUT4, BASELINE["holdout4_floors"])


def test_fifth_holdout_f1_at_or_above_floors() -> None:
    """A fifth set, mostly hard negatives that share the topics' vocabulary (precision)."""
    assert_floors(HOLDOUT5, BASELINE["holdout5_floors"])


def assert_floors(path: Path, floors: dict[str, float]) -> None:
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    matcher = Matcher(load_rules([REPO / "rules"]))
    predicted = {d["id"]: {m.rule for m in matcher.match(d["title"], d["text"])} for d in docs}
    report = {}
    for topic, floor in floors.items():
        tp = sum(1 for d in docs if topic in d["labels"] and topic in predicted[d["id"]])
        fp = sum(1 for d in docs if topic not in d["labels"] and topic in predicted[d["id"]])
        fn = sum(1 for d in docs if topic in d["labels"] and topic not in predicted[d["id"]])
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        report[topic] = (round(f1, 3), floor)
    below = {t: v for t, v in report.items() if v[0] < v[1]}
    assert not below, f"F1 below the pinned floor (f1, floor): {below}"


@pytest.mark.parametrize("n", sorted(FRESH))
def test_fresh_holdout_f1_at_or_above_floors(n: int) -> None:
    """The fresh sets stay at or above their floors (8 and 9 are held out: never trained on)."""
    assert_floors(FRESH[n], BASELINE[f"holdout{n}_floors"])
