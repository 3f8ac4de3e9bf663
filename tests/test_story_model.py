"""The learned story decision: the shipped model, its evidence, merges that need evidence,
old stored signatures, and the training script.

Texts are the project's own fictional writing (written here, or ``tests/data/story_pairs.jsonl``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import DATA, REPO, SHARED
from tests.test_stories import BOTH, DEPOT, MERGE_ANY, TRAMS, lenient, sig, stored
from tracker.analysis.tables import render_story
from tracker.core.types import FeedSource
from tracker.pipeline.grouping import StoryGrouper
from tracker.store.database import Store
from tracker.store.models import StoryMerge
from tracker.store.storydb import story_detail
from tracker.stories.features import FEATURES, PairModel, Similarities, default_model, values
from tracker.stories.index import StoryIndex, group
from tracker.stories.signature import Signature, figures, names, signature

T0 = datetime(2026, 6, 1, 8, tzinfo=UTC)

# A second report of each of the two events of tests/test_stories.py, by another outlet.
TRAMS_REWRITE = (
    "Fenwick Rail picks Corvel for 30 new trams in $410 million deal",
    "Fenwick Rail will buy 30 trams built by Corvel in Dunmore, a contract worth $410 million, it announced "
    "on Tuesday. The Lynx trams are due from 2028 and will take over from cars in service since 1991. Chief "
    "executive Odile Marsh said the fleet would break down less often and allow a new line to Harwick Park.",
)
DEPOT_REWRITE = (
    "Ledbury approves Sallow Street tram depot in 9-4 vote",
    "Councillors in Ledbury approved a maintenance depot at the Sallow Street industrial site by 9 votes to 4 "
    "on Wednesday, rejecting complaints from residents about noise and traffic at night. Priya Anand, a "
    "councillor, said 140 jobs would come with the depot; residents are weighing a court challenge.",
)
# A round-up that mentions both events in passing, and is about neither: it must not make them one.
ROUNDUP = (
    "Morning briefing: heatwave warning, Fenwick Rail trams, Sallow Street depot vote",
    "Forecasters issued a heatwave warning for the whole region from Friday, with temperatures expected to "
    "pass 35C in Dunmore and Ledbury and water companies urging customers to save water. Elsewhere: Fenwick "
    "Rail ordered 30 Corvel trams; Ledbury council backed the Sallow Street depot. Schools will close early "
    "on Friday and Monday, and the health service asked people to check on elderly neighbours during the heat.",
)


def two_stories() -> StoryIndex:
    """Trams (items 1, 2: story 1) and the depot (items 3, 4: story 3), each told twice."""
    index = StoryIndex()
    for item, story, at, doc in (
        (1, 1, T0, TRAMS),
        (2, 1, T0 + timedelta(hours=2), TRAMS_REWRITE),
        (3, 3, T0 + timedelta(hours=1), DEPOT),
        (4, 3, T0 + timedelta(hours=3), DEPOT_REWRITE),
    ):
        index.add(item, story, at, sig(*doc))
    return index


def test_the_shipped_model_loads_and_is_readable() -> None:
    model = default_model()
    assert set(model.features) <= set(FEATURES) and len(model.features) == len(model.weights) >= 3
    assert 0.0 < model.join < model.merge < 1.0
    data = json.loads((REPO / "tracker" / "stories" / "model.json").read_text())
    assert PairModel.from_json(data["model"]) == model
    # Read as a whole, evidence for "same event" weighs for it: every similarity at its top
    # (and nothing new in either headline, the same day) joins; every one at its bottom does not.
    strong = Similarities(1.0, 1.0, (1.0, 1.0), 1.0, 1.0, 3, 3.0, 3, 0.0, 1.0, 0.0, (1.0, 1.0), (1.0, 1.0))
    weak = Similarities(0.0, 0.0, (0.0, 0.0), 0.0, 0.0, 0, 0.0, 0, 150.0, 0.0, 1.0, (0.0, 0.0), (0.0, 0.0))
    assert model.probability(values(strong)) >= model.join > model.probability(values(weak))


def test_a_model_with_unknown_features_is_refused() -> None:
    data = default_model().to_json() | {"features": ["smell", *default_model().features[1:]]}
    with pytest.raises(ValueError, match="unknown features"):
        PairModel.from_json(data)


def test_rewrites_join_and_other_events_do_not() -> None:
    index = StoryIndex()
    index.add(1, 1, T0, sig(*TRAMS))
    found = index.assign(sig(*TRAMS_REWRITE), T0 + timedelta(hours=3))
    assert (found.story_id, found.role, found.item_id) == (1, "update", 1)
    assert found.similarity >= default_model().join and found.reason in FEATURES
    assert index.assign(sig(*DEPOT), T0 + timedelta(hours=3)).role == "new"


def _own_rows(kind: str, same: bool) -> list[Any]:
    rows = [json.loads(line) for line in (DATA / "story_pairs.jsonl").read_text().splitlines() if line.strip()]
    return [
        pytest.param(r, id=r["a_title"][:40])
        for r in rows
        if "a_title" in r and r["kind"] == kind and r["same"] is same
    ]


@pytest.mark.parametrize("row", _own_rows("different-event-same-entities", False))
def test_the_decision_on_one_company_s_different_events(row: dict[str, Any]) -> None:
    """Pairs written to look alike (one company, two events): the model keeps them apart."""
    index = StoryIndex()
    a, b = sorted("ab", key=lambda s: row[f"{s}_date"])
    index.add(
        1, 1, datetime.fromisoformat(row[f"{a}_date"]).replace(tzinfo=UTC), sig(row[f"{a}_title"], row[f"{a}_text"])
    )
    found = index.assign(
        sig(row[f"{b}_title"], row[f"{b}_text"]), datetime.fromisoformat(row[f"{b}_date"]).replace(tzinfo=UTC)
    )
    assert found.story_id is None, row["why"]


def test_an_item_sharing_words_with_two_stories_does_not_merge_them() -> None:
    index = two_stories()
    found = index.assign(sig(*ROUNDUP), T0 + timedelta(hours=5))
    assert found.merges == () and found.merge_links == ()
    # And in a batch, in time order: the two events stay two stories, whatever the round-up joins.
    items = [
        (1, T0, sig(*TRAMS)),
        (2, T0 + timedelta(hours=1), sig(*DEPOT)),
        (3, T0 + timedelta(hours=2), sig(*TRAMS_REWRITE)),
        (4, T0 + timedelta(hours=3), sig(*DEPOT_REWRITE)),
        (5, T0 + timedelta(hours=5), sig(*ROUNDUP)),
    ]
    stories = group(items)
    assert stories[1] == stories[3] and stories[2] == stories[4] and stories[1] != stories[2], stories


def test_a_merge_carries_its_evidence() -> None:
    """When an item does link strongly to two stories, the merge says which items and how well."""
    index = StoryIndex(MERGE_ANY, model=lenient())
    index.add(1, 1, T0, sig(*TRAMS))
    index.add(2, 2, T0 + timedelta(hours=1), sig(*DEPOT))
    found = index.assign(sig(*BOTH), T0 + timedelta(hours=2))
    assert (found.story_id, found.merges) == (1, (2,))
    (link,) = found.merge_links
    assert (link.story_id, link.item_id, link.links) == (2, 2, 1)
    assert link.probability >= index.model.merge and link.reason in FEATURES


def test_signatures_stored_before_names_and_figures_still_load() -> None:
    s = signature(*TRAMS)
    old = {k: v for k, v in s.to_json().items() if k not in {"names", "figures"}}
    back = Signature.from_json(s.minhash, json.loads(json.dumps(old)))
    assert back.names == {} and back.figures == frozenset()
    assert (back.lede, back.text, back.headline) == (s.lede, s.text, s.headline)
    index = StoryIndex()
    index.add(1, 1, T0, back)  # an old item in the window is still compared
    assert index.assign(sig(*TRAMS_REWRITE), T0 + timedelta(hours=1)).story_id == 1


def test_names_and_figures() -> None:
    tokens = (
        "Shares of Fenwick Rail rose, chief Odile Marsh said on Tuesday. Trams cost $410 million in 2028, 6.1% more"
    )
    found = names(tokens)
    assert {"fenwick rail", "fenwick", "odile marsh", "marsh", "tuesday"} <= set(found)
    assert "shares" not in found and "trams" not in found  # a sentence's first word is no name
    assert figures(tokens.split()) == frozenset({"410", "6.1%"})  # no year


@pytest.mark.corpus
@pytest.mark.skipif(not (SHARED / "corpus" / "stories").is_dir(), reason="../shared/corpus is not present")
def test_training_script_runs() -> None:
    """Two folds at one bar: the script reads the corpora, cross-validates and prints a model
    (it writes nothing without --write)."""
    before = (REPO / "tracker" / "stories" / "model.json").read_bytes()
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "train_stories.py"),
            "--folds",
            "2",
            "--join",
            "0.5",
            "--design",
            "single-link",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert "held-out figures" in run.stdout and "model on every pair" in run.stdout
    assert (REPO / "tracker" / "stories" / "model.json").read_bytes() == before


def test_a_merge_is_recorded_with_its_evidence(store: Store) -> None:
    (feed,) = store.sync_feeds([FeedSource("https://a.example/f", "A")])
    grouper = StoryGrouper(store, MERGE_ANY, lenient())  # any link merges: the merge path, apart from the model
    a = stored(store, grouper, "https://a.example/trams", TRAMS, T0, feed.id)
    b = stored(store, grouper, "https://a.example/depot", DEPOT, T0 + timedelta(hours=1), feed.id)
    c = stored(store, grouper, "https://a.example/both", BOTH, T0 + timedelta(hours=2), feed.id)
    detail = story_detail(store.engine, a)
    assert detail is not None and detail["n_items"] == 3
    (merge,) = detail["merges"]
    assert (merge["merged_story_id"], merge["item_id"], merge["reason"] in FEATURES) == (b, c, True)
    assert 0.0 < merge["score"] <= 1.0
    text = render_story(detail)
    assert f"story {b}" in text and f"item {c} linked both" in text
    # No merge, no row.
    assert story_detail(store.engine, a + 1000) is None
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(StoryMerge)).scalar() == 1
