"""The topic model: training, its threshold, confirming candidate queries, and `tracker rules train`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.rules import classifier
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import check_rules, load_rules

CATALOGUE = """
[acme]
type = "org"
names = ["Acme"]

[rivals]
type = "group"
names = ["foreign rivals"]
"""

RULE = """id = "acme-fights"
title = "Acme fights rivals"
query = 'sentence(@acme AND @rivals AND (oppose* OR fight*))'
candidate = 'paragraph(@acme AND @rivals)'
"""

OPPOSE = ["resists", "lobbies against", "warns about", "campaigns against", "pushes back on", "objects to"]
NEUTRAL = ["buys parts from", "sells cars beside", "shares a port with", "exhibits next to", "reports sales like"]
FILLER = ["in Ohio", "this week", "again", "on Monday", "at a fair", "quietly"]


def article(rng: random.Random, hostile: bool) -> dict[str, object]:
    verb = rng.choice(OPPOSE if hostile else NEUTRAL)
    lines = [f"Acme {verb} foreign rivals {rng.choice(FILLER)}."]
    lines += [f"Analysts {rng.choice(['expect', 'doubt', 'note'])} more {rng.choice(FILLER)}." for _ in range(2)]
    return {
        "id": str(rng.random()),
        "title": "Acme news",
        "text": "\n\n".join(lines),
        "labels": ["acme-fights"] * hostile,
    }


@pytest.fixture
def corpus() -> list[dict[str, object]]:
    rng = random.Random(7)
    return [article(rng, i % 2 == 0) for i in range(80)]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "entities.toml").write_text(CATALOGUE)
    (d / "acme-fights.toml").write_text(RULE)
    return d


def test_training_separates_the_classes_and_explains_itself(rules_dir: Path, corpus: list[dict[str, object]]) -> None:
    matcher = Matcher(load_rules([rules_dir]))
    feats = [matcher.inspect("acme-fights", str(d["title"]), str(d["text"])).features for d in corpus]
    topic = classifier.train_topic(feats, [bool(d["labels"]) for d in corpus])
    p_yes, why = topic.probability(
        matcher.inspect("acme-fights", "Acme news", "Acme lobbies against foreign rivals.").features
    )
    p_no, _ = topic.probability(
        matcher.inspect("acme-fights", "Acme news", "Acme buys parts from foreign rivals.").features
    )
    assert p_yes > 0.5 > p_no
    assert why[0][1] > 0 and "lobbies" in {w for w, c in why if c > 0} | {w for w, _ in why[:10]}


def test_the_model_confirms_a_candidate_the_query_misses(rules_dir: Path, corpus: list[dict[str, object]]) -> None:
    matcher = Matcher(load_rules([rules_dir]))
    from tracker.rules.evaluate import train_model

    model = train_model(matcher, corpus, ["synthetic"])
    assert 0.3 <= model.topics["acme-fights"].threshold <= 1.01
    classifier.dump(model, rules_dir / classifier.MODEL_FILE)
    with_model = Matcher(load_rules([rules_dir]))
    # "lobbies against" is not in the query's words: the query is false, the model confirms.
    found = with_model.match("Acme news", "Acme lobbies against foreign rivals on Monday.")
    assert [m.rule for m in found] == ["acme-fights"]
    assert found[0].model is not None and found[0].model_words
    # The query's own matches carry no model mark; an unrelated text gets nothing.
    plain = with_model.match("Acme news", "Acme will fight foreign rivals.")
    assert plain and plain[0].model is None
    assert with_model.match("Acme news", "Acme buys parts from foreign rivals.") == []
    # Without the model, the candidate alone matches nothing.
    (rules_dir / classifier.MODEL_FILE).unlink()
    assert Matcher(load_rules([rules_dir])).match("Acme news", "Acme lobbies against foreign rivals on Monday.") == []


def test_a_broken_model_file_is_one_error_naming_the_file(rules_dir: Path) -> None:
    (rules_dir / classifier.MODEL_FILE).write_text('{"version": 99}')
    _, errors = check_rules([rules_dir])
    assert len(errors) == 1 and "model.json" in str(errors[0]) and "topic model" in str(errors[0])


def test_changing_the_model_changes_the_rule_version(rules_dir: Path, corpus: list[dict[str, object]]) -> None:
    before = load_rules([rules_dir]).rules[0].content_hash
    matcher = Matcher(load_rules([rules_dir]))
    from tracker.rules.evaluate import train_model

    classifier.dump(train_model(matcher, corpus, ["x"]), rules_dir / classifier.MODEL_FILE)
    assert load_rules([rules_dir]).rules[0].content_hash != before  # so `tracker rematch` re-tags


def test_rules_train_and_match_through_the_cli(
    tmp_path: Path, rules_dir: Path, corpus: list[dict[str, object]]
) -> None:
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text("".join(json.dumps(d) + "\n" for d in corpus))
    config = tmp_path / "tracker.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n\n[rules]\npaths = ["{rules_dir}"]\n')
    run = [sys.executable, "-m", "tracker", "--config", str(config)]
    trained = subprocess.run([*run, "rules", "train", "--corpus", str(labeled)], capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    assert (rules_dir / "model.json").is_file() and "trained 1 topic models on 80 documents" in trained.stdout
    doc = json.dumps({"id": "x", "title": "Acme news", "text": "Acme lobbies against foreign rivals on Monday."})
    out = subprocess.run([*run, "match", "--explain", "-"], input=doc + "\n", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout)
    assert line["matches"][0]["rule"] == "acme-fights"
    assert line["matches"][0]["confirmed_by_model"]["probability"] >= 0.3
    missing = subprocess.run(
        [*run, "rules", "train", "--corpus", str(tmp_path / "nope.jsonl")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    # A model the tracker cannot read (damaged, or from another version) stops matching with one
    # line, but not training its replacement: the old model plays no part in training.
    (rules_dir / "model.json").write_text('{"version": 0}')
    broken = subprocess.run([*run, "match", "-"], input=doc + "\n", capture_output=True, text=True)
    assert broken.returncode == 2 and "model.json" in broken.stderr and "Traceback" not in broken.stderr
    again = subprocess.run([*run, "rules", "train", "--corpus", str(labeled)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert json.loads((rules_dir / "model.json").read_text())["version"] == classifier.MODEL_VERSION


def test_cutoffs_are_chosen_on_held_out_folds_and_stay_in_their_ranges() -> None:
    """The query over-matches (its false positives read like the negatives), the candidate
    misses, and some positives satisfy neither query but carry the topic's words: cross-
    validation should find a veto and an "alone" cut-off, each within its allowed range."""
    rng = random.Random(3)
    docs, positive, query, candidate, gate = [], [], [], [], []
    for i in range(240):
        pos = i % 2 == 0
        topical = ["lobbies", "resists", "warns", "objects"] if pos else ["buys", "sells", "ships", "rents"]
        words = ["acme", "rivals", *rng.sample(topical, 2)]
        kind = i % 6
        docs.append(classifier.features([*words, f"noise{rng.randrange(50)}"]))
        positive.append(pos)
        query.append(kind in (0, 1))  # half the positives (0) and a third of the negatives (1)
        candidate.append(kind in (2, 3))
        gate.append(True)
    cut = classifier.choose_cutoffs(docs, positive, query, candidate, gate)
    assert classifier.MIN_THRESHOLD <= cut.threshold <= 1.0
    assert 0.0 < cut.veto <= classifier.MAX_VETO  # the query's false positives are rejected
    assert classifier.MIN_ALONE <= cut.alone <= 1.0  # positives outside both queries are found
    # Without the gate, nothing is confirmed outside the candidate query.
    assert classifier.choose_cutoffs(docs, positive, query, candidate).alone == classifier.NEVER


def test_the_model_vetoes_a_query_and_confirms_alone_within_the_gate(rules_dir: Path) -> None:
    """A model with a veto and an ``alone`` cut-off: a true query the model is sure is wrong is
    dropped; a text with the candidate's entities but no paragraph satisfying it is confirmed
    when the model is sure (with its evidence and words); without those entities, never."""
    topic = classifier.TopicModel(
        bias=-2.0,
        threshold=0.5,
        weights={"lobbies": 10.0, "against": 6.0, "buys": -8.0, "parts": -6.0},
        veto=0.2,
        alone=0.6,
    )
    classifier.dump(classifier.Model(topics={"acme-fights": topic}), rules_dir / classifier.MODEL_FILE)
    matcher = Matcher(load_rules([rules_dir]))
    # The query is true ("fight"), but the article is about buying parts: vetoed.
    assert matcher.match("Acme news", "Acme buys parts to fight foreign rivals.") == []
    assert [m.rule for m in matcher.match("Acme news", "Acme will fight against foreign rivals.")] == ["acme-fights"]
    # Acme and the rivals in different paragraphs: the candidate is false, the model alone confirms.
    found = matcher.match("Acme news", "Acme lobbies against them.\n\nAnalysts say foreign rivals are worried.")
    assert [m.rule for m in found] == ["acme-fights"]
    assert found[0].model is not None and found[0].model >= 0.6 and "lobbies" in found[0].model_words
    assert {e.term for e in found[0].evidence} == {"@acme", "@rivals"} and found[0].snippets
    # Without the rivals anywhere, the model is never asked.
    assert matcher.match("Acme news", "Acme lobbies against the plan.") == []
