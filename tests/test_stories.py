"""Story grouping: copies, rewrites, different events, the window, merges, the store and
the ``stories`` view.

Texts are the project's own fictional writing (``tests/data/story_pairs.jsonl``, or
written here); the seed articles in ``../shared/seeds`` are used only when present.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from tests.conftest import DATA, SHARED
from tests.storyeval import DEV, evaluate, evaluate_clusters
from tracker.core.types import Article, FeedSource, Match, TextSource
from tracker.pipeline.grouping import StoryGrouper
from tracker.store.database import Store
from tracker.store.models import Item
from tracker.store.storydb import StoryPlacement, list_stories, signatures
from tracker.stories.features import FEATURES, PairModel, default_model
from tracker.stories.index import Assignment, StoryIndex, StoryParams, _dots, _Sparse, _Vocab, group
from tracker.stories.signature import Signature, cosine, signature

T0 = datetime(2026, 5, 4, 9, tzinfo=UTC)
SEEDS = SHARED / "seeds"


# -- helpers -----------------------------------------------------------------------------


def _own_rows() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (DATA / "story_pairs.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "a_title" in r]


def own_pairs(kind: str, same: bool) -> list[Any]:
    rows = [r for r in _own_rows() if r["kind"] == kind and r["same"] is same]
    assert rows, f"no own-writing pairs of kind {kind!r}"
    return [pytest.param(r, id=r["a_title"][:40]) for r in rows]


def day(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


@cache
def sig(title: str, body: str) -> Signature:
    return signature(title, body)


def side(row: dict[str, Any], s: str) -> tuple[str, str]:
    return row[f"{s}_title"], row[f"{s}_text"]


def own(title_start: str, kind: str = "syndicated") -> tuple[tuple[str, str], tuple[str, str]]:
    """Both articles of an own-writing pair, by the start of its first title and its kind."""
    for row in _own_rows():
        if row["a_title"].startswith(title_start) and row["kind"] == kind:
            return side(row, "a"), side(row, "b")
    raise LookupError(title_start)


def alone(first: Signature, at: datetime, other: Signature, when: datetime) -> Assignment:
    """Where ``other`` goes in an index that holds only ``first`` (item 1, story 1)."""
    index = StoryIndex()
    index.add(1, 1, at, first)
    return index.assign(other, when)


def article(url: str, title: str, body: str, published: datetime | None = None) -> Article:
    return Article(url=url, title=title, text=body, text_source=TextSource.EXTRACTED, published=published)


def match(rule: str) -> Match:
    return Match(rule=rule, score=1.0, terms=("x",), snippets=("x",))


def item_story(store: Store, item_id: int) -> tuple[int | None, str | None]:
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT story_id, story_role FROM items WHERE id = :i"), {"i": item_id}).one()
    return row.story_id, row.story_role


def stored(store: Store, grouper: StoryGrouper, url: str, doc: tuple[str, str], at: datetime, feed: int) -> int:
    """Place and store an article the way the pipeline does."""
    placement = grouper.place(sig(*doc), at)
    item_id, created = store.add_item(article(url, *doc, published=at), [], feed_id=feed, story=placement)
    assert created
    grouper.placed(item_id, placement)
    return item_id


# Three short fictional reports: A and B are different events; C reports both (the trams
# A orders will be kept at the depot B approves), so it makes them one story.
TRAMS = (
    "Fenwick Rail orders 30 Corvel trams for $410 million",
    "Fenwick Rail has ordered 30 low-floor trams from the Corvel works in Dunmore for $410 million, "
    "the operator said on Tuesday. The first of the Corvel Lynx vehicles will arrive in 2028 and replace "
    "a fleet that has run since 1991. Fenwick Rail chief executive Odile Marsh said the order would cut "
    "breakdowns and let the network add a route to Harwick Park.",
)
DEPOT = (
    "Ledbury council backs Sallow Street depot despite residents' objections",
    "Ledbury city council voted 9 to 4 on Wednesday to build a maintenance depot on the Sallow Street "
    "industrial site, overruling residents who said the yard would bring noise and night traffic. "
    "Councillor Priya Anand said the depot would create 140 jobs. Neighbours of the Sallow Street site "
    "have said they may challenge the decision in court.",
)
DEPOT_COPY = (
    "Sallow Street depot approved by Ledbury council",
    DEPOT[1].replace("on Wednesday", "late on Wednesday") + " The Ledbury Herald contributed reporting.",
)
BOTH = (
    "Corvel trams for Fenwick Rail to be serviced at new Sallow Street depot in Ledbury",
    "The 30 Corvel Lynx trams ordered by Fenwick Rail will be maintained at the Sallow Street depot that "
    "Ledbury council approved this week, Odile Marsh told reporters in Dunmore. The $410 million tram order "
    "and the depot, which Councillor Priya Anand said brings 140 jobs, are two halves of one plan, Marsh said.",
)


#: with :func:`lenient`: a merge needs no likeness between the two stories either
MERGE_ANY = StoryParams(merge_affinity=0.0)


def lenient() -> PairModel:
    """The shipped model with bars that any candidate clears (with ``MERGE_ANY``): for the
    mechanics of joins and merges (which story survives, what the store and a second writer
    see), apart from where the shipped bars put the line."""
    model = default_model()
    return PairModel(model.features, model.mean, model.scale, model.weights, model.bias, 1e-9, 2e-9)


def syndicated_copy(body: str) -> tuple[str, str]:
    """The article as one outlet runs it, and a wire copy of it: other boilerplate lines,
    the last paragraph trimmed and one added."""
    paragraphs = [p for p in body.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 3
    added = (
        "A spokeswoman for the company declined to say how much the work would cost, adding that "
        "owners with questions could call the customer line seven days a week."
    )
    copy = [
        "By Wire Staff | Updated 14:05 GMT",
        *paragraphs[:-1],
        added,
        "(Reporting by Ana Ruiz; editing by Tom Hale)",
    ]
    original = ["Sign up for our morning newsletter.", *paragraphs, "Follow us for more business news."]
    return "\n\n".join(original), "\n\n".join(copy)


# -- the algorithm -----------------------------------------------------------------------


def test_syndicated_copy_with_edits_is_a_near_duplicate() -> None:
    (title, body), _ = own("Meridian Motors recalls")
    original, copy = syndicated_copy(body)
    found = alone(sig(title, original), T0, sig("Meridian calls back 212,000 SUVs", copy), T0 + timedelta(hours=5))
    assert (found.story_id, found.role, found.reason, found.item_id) == (1, "copy", "near-duplicate", 1)
    assert 0.5 <= found.similarity < 1.0


@pytest.mark.parametrize("row", own_pairs("syndicated", True))
def test_labelled_syndicated_copies_are_copies(row: dict[str, Any]) -> None:
    found = alone(sig(*side(row, "a")), day(row["a_date"]), sig(*side(row, "b")), day(row["b_date"]))
    assert (found.story_id, found.role, found.reason) == (1, "copy", "near-duplicate"), row["why"]


@pytest.mark.parametrize("row", own_pairs("rewrite", True))
def test_independent_rewrites_are_one_story(row: dict[str, Any]) -> None:
    items = [(1, day(row["a_date"]), sig(*side(row, "a"))), (2, day(row["b_date"]), sig(*side(row, "b")))]
    stories = group(items)
    assert stories[1] == stories[2], row["why"]
    found = alone(items[0][2], items[0][1], items[1][2], items[1][1])
    assert found.role == "update" and found.reason in FEATURES


@pytest.mark.parametrize("row", own_pairs("different-event-same-entities", False))
def test_same_entities_different_event_are_separate_stories(row: dict[str, Any]) -> None:
    items = [(1, day(row["a_date"]), sig(*side(row, "a"))), (2, day(row["b_date"]), sig(*side(row, "b")))]
    stories = group(items)
    assert stories[1] != stories[2], row["why"]


@pytest.mark.parametrize(("days", "joins"), [(6, True), (7, True), (8, False), (-6, True), (-8, False)])
def test_time_window(days: int, joins: bool) -> None:
    first, copy = own("Tallis Bank lifts dividend")
    found = alone(sig(*first), T0, sig(*copy), T0 + timedelta(days=days))
    if joins:
        assert (found.story_id, found.role) == (1, "copy")
    else:
        assert (found.story_id, found.role) == (None, "new")


def test_item_reporting_two_stories_merges_them() -> None:
    a, b, c = sig(*TRAMS), sig(*DEPOT), sig(*BOTH)
    # A and B alone are different stories, in either order.
    assert group([(1, T0, a), (2, T0 + timedelta(hours=1), b)]) == {1: 1, 2: 2}
    assert alone(b, T0, a, T0).role == "new"
    items = [(1, T0, a), (2, T0 + timedelta(hours=1), b), (3, T0 + timedelta(hours=2), c)]
    # The shipped bars merge only on a strong link into each story: C joins at most one.
    assert group(items)[1] != group(items)[2]
    # Where C links strongly to both (any link does, here), the oldest story survives.
    assert group(items, MERGE_ANY, lenient()) == {1: 1, 2: 1, 3: 1}
    index = StoryIndex(MERGE_ANY, model=lenient())
    index.add(1, 1, T0, a)
    index.add(2, 2, T0, b)
    found = index.assign(c, T0 + timedelta(hours=2))
    assert (found.story_id, found.role, found.merges) == (1, "update", (2,))
    index.merge(found.merges, 1)
    index.add(3, 1, T0, c)
    # After the merge, a copy of B joins the merged story.
    assert index.assign(sig(*DEPOT_COPY), T0 + timedelta(hours=3)) == Assignment(1, "copy", 2, ANY, "near-duplicate")


@pytest.fixture(scope="module")
def noise() -> list[Signature]:
    """3000 articles of random common English words."""
    from wordfreq import top_n_list

    vocab = [w for w in top_n_list("en", 5000) if w.isalpha() and len(w) > 3]
    rnd = random.Random(20260504)
    return [signature(" ".join(rnd.choices(vocab, k=8)), " ".join(rnd.choices(vocab, k=60))) for _ in range(3000)]


def test_candidate_lookup_finds_rewrite_among_many_unrelated_items(noise: list[Signature]) -> None:
    first, rewrite = own("Nimbus Airlines orders 40", "rewrite")
    index = StoryIndex()
    target = 1501
    for n, s in enumerate(noise[:1500], start=1):
        index.add(n, n, T0 + timedelta(minutes=n), s)
    index.add(target, target, T0 + timedelta(hours=12), sig(*first))
    for n, s in enumerate(noise[1500:], start=target + 1):
        index.add(n, n, T0 + timedelta(minutes=n), s)
    assert len(index) == 3001
    found = index.assign(sig(*rewrite), T0 + timedelta(days=1))
    assert (found.story_id, found.role, found.item_id) == (target, "update", target)
    assert found.merges == ()
    # The same decision as in an index holding only the original.
    only = alone(sig(*first), T0, sig(*rewrite), T0 + timedelta(days=1))
    assert (found.role, found.similarity, found.reason) == (only.role, only.similarity, only.reason)
    # And an unrelated article is put in no story.
    assert index.assign(sig(*TRAMS), T0 + timedelta(days=1)) == Assignment(None, "new")


def _seeds() -> dict[str, Signature]:
    out = {}
    for path in sorted(SEEDS.glob("00[0-4]_*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip())
        out[path.name[:3]] = signature(lines[start].strip(), "\n".join(lines[start + 1 :]))
    return out


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not present")
def test_seed_stories_do_not_depend_on_order() -> None:
    seeds = _seeds()
    assert sorted(seeds) == ["000", "001", "002", "003", "004"]
    for order in itertools.permutations(sorted(seeds)):
        items = [(int(name), T0 + timedelta(days=k), seeds[name]) for k, name in enumerate(order)]
        story = group(items)
        where = f"order {order}: {story}"
        assert story[2] == story[3] == story[4], where
        assert story[0] != story[2] and story[1] != story[2] and story[0] != story[1], where


def test_pair_set_gate() -> None:
    scores = evaluate()
    everything, _dev, own_writing = scores
    n_own = sum(1 for _ in _own_rows())
    assert own_writing.tp + own_writing.fp + own_writing.fn + own_writing.tn == n_own
    assert own_writing.precision == 1.0, own_writing.errors
    assert own_writing.recall >= 0.9, own_writing.errors
    if DEV.exists():
        # Measured: precision 1.000, recall 0.878 (python -m tests.storyeval; the hand-set rules
        # alone: 0.805); floors catch regressions.
        assert everything.precision >= 0.95, everything.errors
        assert everything.recall >= 0.85, everything.errors


@pytest.mark.skipif(not DEV.exists(), reason="the dev corpus is not present")
def test_every_dev_pair_gate() -> None:
    # Every pair of the 100 dev articles against blind story labels. Measured: precision
    # 1.000, recall 0.769 (the hand-set rules alone: 0.654) — grouping prefers a missed link
    # to a false merge.
    score = evaluate_clusters()
    assert score is not None
    assert score.precision >= 0.95, score.errors
    assert score.recall >= 0.7, score.errors


def test_signature_json_round_trip_gives_the_same_assignments() -> None:
    rows = _own_rows()
    firsts = [(n, day(r["a_date"]), sig(*side(r, "a"))) for n, r in enumerate(rows, start=1)]
    assert any(s.quotes for _, _, s in firsts)
    direct, loaded = StoryIndex(), StoryIndex()
    for n, at, s in firsts:
        back = Signature.from_json(s.minhash, json.loads(json.dumps(s.to_json())))
        assert back == s
        direct.add(n, n, at, s)
        loaded.add(n, n, at, back)
    results = []
    for r in rows:
        query, when = sig(*side(r, "b")), day(r["b_date"])
        back = Signature.from_json(query.minhash, json.loads(json.dumps(query.to_json())))
        results.append(direct.assign(query, when))
        assert loaded.assign(back, when) == results[-1]
    assert {a.role for a in results} >= {"copy", "update"}


def test_prune_forgets_old_items() -> None:
    (old, old_copy), (recent, recent_copy) = own("Ashford council approves"), own("Quillon Software to buy")
    when = T0 + timedelta(days=2)
    index = StoryIndex()
    index.add(1, 1, T0, sig(*old))
    index.add(2, 2, T0 + timedelta(days=3), sig(*recent))
    assert index.assign(sig(*old_copy), when).story_id == 1
    assert index.prune(T0 + timedelta(days=1)) == 1
    assert 1 not in index and 2 in index and len(index) == 1
    assert index.assign(sig(*old_copy), when) == Assignment(None, "new")
    assert index.assign(sig(*recent_copy), when).story_id == 2
    assert index.prune(T0 + timedelta(days=1)) == 0


@pytest.mark.parametrize("body", ["", "Read more."])
def test_different_articles_without_text_are_not_copies(body: str) -> None:
    # Items with no extracted text (TextSource.NONE) or the same short feed summary.
    first = signature("Ashford council approves $480 million rail link", body)
    found = alone(first, T0, signature("Velora wins approval for monthly migraine drug", body), T0)
    assert found.role == "new"


# -- the store -----------------------------------------------------------------------------


def test_add_item_records_story_and_signature(store: Store) -> None:
    (feed,) = store.sync_feeds([FeedSource("https://a.example/feed", "A")])
    grouper = StoryGrouper(store)
    doc, _ = own("Harlow Motors signs", "rewrite")
    at = T0 - timedelta(days=200)
    placement = grouper.place(sig(*doc), at)
    assert placement.assignment.role == "new"
    item_id, created = store.add_item(
        article("https://a.example/harlow", *doc, at), [], feed_id=feed.id, story=placement
    )
    assert created
    grouper.placed(item_id, placement)
    with store.engine.connect() as conn:
        row = conn.execute(select(Item.story_id, Item.story_role, Item.story_at)).one()
    assert tuple(row) == (item_id, "new", at)  # a new story's id is its first item's
    assert store.count("item_signatures") == 1
    assert list(signatures(store.engine, at - timedelta(days=1))) == [(item_id, item_id, at, sig(*doc))]
    # The same URL again: no second item, no second signature, the story unchanged.
    again = grouper.place(sig(*doc), at + timedelta(hours=1))
    assert again.assignment.role == "copy"
    dup = store.add_item(article("https://a.example/harlow", *doc, at), [], feed_id=feed.id, story=again)
    assert dup == (item_id, False)
    assert store.count("items") == 1 and store.count("item_signatures") == 1
    assert item_story(store, item_id) == (item_id, "new")


def test_merge_through_the_store(store: Store) -> None:
    a_feed, b_feed = store.sync_feeds([FeedSource("https://a.example/f", "A"), FeedSource("https://b.example/f", "B")])
    grouper = StoryGrouper(store, MERGE_ANY, lenient())
    a = stored(store, grouper, "https://a.example/trams", TRAMS, T0, a_feed.id)
    b = stored(store, grouper, "https://b.example/depot", DEPOT, T0 + timedelta(hours=1), b_feed.id)
    assert [s["n_items"] for s in list_stories(store.engine)] == [1, 1]
    c = stored(store, grouper, "https://b.example/both", BOTH, T0 + timedelta(hours=2), b_feed.id)
    (story,) = list_stories(store.engine)
    assert (story["story_id"], story["n_items"], story["n_sources"]) == (a, 3, 2)
    assert [item_story(store, i)[0] for i in (a, b, c)] == [a, a, a]
    # The grouper's index follows the merge: a copy of B joins the merged story.
    d = stored(store, grouper, "https://a.example/depot-copy", DEPOT_COPY, T0 + timedelta(hours=3), a_feed.id)
    assert item_story(store, d) == (a, "copy")


def test_catch_up_groups_stored_items_oldest_first(store: Store) -> None:
    (feed,) = store.sync_feeds([FeedSource("https://a.example/feed", "A")])
    now = datetime.now(UTC)
    first, copy = own("Northwind Energy to retire")
    # Stored newest first, before stories existed.
    late, _ = store.add_item(article("https://a.example/late", *copy, now - timedelta(days=1)), [], feed_id=feed.id)
    other, _ = store.add_item(
        article("https://a.example/other", *own("Brightwater University")[0], now - timedelta(days=2)),
        [],
        feed_id=feed.id,
    )
    early, _ = store.add_item(article("https://a.example/early", *first, now - timedelta(days=3)), [], feed_id=feed.id)
    assert [item_story(store, i) for i in (late, other, early)] == [(None, None)] * 3
    grouper = StoryGrouper(store)
    assert grouper.catch_up() == 3
    assert item_story(store, early) == (early, "new")
    assert item_story(store, late) == (early, "copy")
    assert item_story(store, other) == (other, "new")
    assert store.count("item_signatures") == 3
    assert grouper.catch_up() == 0
    assert StoryGrouper(store).catch_up() == 0


def _place(title: str, body: str, at: datetime, story: int | None = None) -> StoryPlacement:
    role = "new" if story is None else "update"
    return StoryPlacement(sig(title, body), Assignment(story, role), at)


def test_stories_view(store: Store) -> None:
    a, b, c = store.sync_feeds(
        [
            FeedSource("https://a.example/f", "A"),
            FeedSource("https://b.example/f", "B"),
            FeedSource("https://c.example/f", "C"),
        ]
    )
    now = datetime.now(UTC).replace(microsecond=0)
    docs = [*own("Ostrander Steel to cut", "rewrite"), *own("Carrow transit board", "rewrite")]

    def add(url: str, doc: tuple[str, str], at: datetime, rules: list[str], story: int | None, feed: int) -> int:
        placement = _place(*doc, at, story)
        item_id, created = store.add_item(article(url, *doc), [match(r) for r in rules], feed_id=feed, story=placement)
        assert created
        return item_id

    first = add("https://www.a.example/x", docs[0], now - timedelta(days=5), ["zeta"], None, a.id)
    wide = add("https://a.example/y", docs[1], now - timedelta(days=4), ["alpha", "zeta"], first, a.id)
    store.link_source(wide, b.id, None, "g-b")
    store.link_source(wide, c.id, None, "g-c")
    add(
        "https://b.example/z",
        (docs[0][0] + " (wire)", docs[0][1] + " More."),
        now - timedelta(days=1),
        ["mid"],
        first,
        b.id,
    )
    other = add("https://c.example/fares", docs[2], now - timedelta(days=3), ["other"], None, c.id)
    stories = {s["story_id"]: s for s in list_stories(store.engine)}
    assert set(stories) == {first, other}
    story = stories[first]
    assert story["headline"] == docs[1][0]  # carried by three feeds; the others by one
    assert story["n_items"] == 3
    assert story["n_sources"] == 2  # www.a.example and a.example are one outlet
    assert story["topics"] == ["alpha", "mid", "zeta"]
    assert story["first_seen"] == now - timedelta(days=5) and story["last_seen"] == now - timedelta(days=1)
    assert stories[other]["topics"] == ["other"] and stories[other]["n_sources"] == 1
    assert [s["story_id"] for s in list_stories(store.engine)] == [first, other]  # latest activity first
    assert [s["story_id"] for s in list_stories(store.engine, rule="alpha")] == [first]
    assert [s["story_id"] for s in list_stories(store.engine, rule="mid")] == [first]
    assert [s["story_id"] for s in list_stories(store.engine, rule="other")] == [other]
    assert list_stories(store.engine, rule="nothing") == []
    # since= looks at a story's latest item, not its first.
    assert [s["story_id"] for s in list_stories(store.engine, since=now - timedelta(days=2))] == [first]
    assert [s["story_id"] for s in list_stories(store.engine, since=now - timedelta(days=3))] == [first, other]
    assert list_stories(store.engine, since=now) == []


def test_merge_keeps_the_story_that_started_first() -> None:
    # Item 5 is the oldest; 2 arrives later (a lower id, as a backfilled item can have) and
    # starts its own story; 9 reports both and merges them into the story that began first.
    a, b, c = (sig(*d) for d in (TRAMS, DEPOT, BOTH))
    items = [(5, T0, a), (2, T0 + timedelta(hours=1), b), (9, T0 + timedelta(hours=2), c)]
    assert group(items, MERGE_ANY, lenient()) == {5: 5, 2: 5, 9: 5}


def test_two_writers_on_one_store_keep_one_story(store: Store) -> None:
    """Pollers in two processes: each index learns the other's items and follows the
    store's merges, so a late copy does not split a story."""
    (feed,) = store.sync_feeds([FeedSource("https://a.example/feed", "A")])
    first, second = StoryGrouper(store, MERGE_ANY, lenient()), StoryGrouper(store, MERGE_ANY, lenient())
    a = stored(store, first, "https://a.example/trams", TRAMS, T0, feed.id)
    first.refresh(T0)
    b = stored(store, second, "https://b.example/depot", DEPOT, T0 + timedelta(minutes=5), feed.id)
    c = stored(store, second, "https://b.example/both", BOTH, T0 + timedelta(minutes=10), feed.id)
    assert item_story(store, b)[0] == item_story(store, c)[0] == a  # merged in the store
    # The first writer learns of B and C at its next cycle and places a copy of B.
    first.refresh(T0 + timedelta(minutes=15))
    d = stored(store, first, "https://a.example/depot-copy", DEPOT_COPY, T0 + timedelta(minutes=20), feed.id)
    assert item_story(store, d) == (a, "copy")
    (story,) = list_stories(store.engine)
    assert story["story_id"] == a and story["n_items"] == 4


def test_refresh_loads_items_another_writer_stored_just_before(store: Store) -> None:
    (feed,) = store.sync_feeds([FeedSource("https://a.example/feed", "A")])
    first, second = StoryGrouper(store), StoryGrouper(store)
    first.refresh(T0)
    x = stored(store, second, "https://b.example/trams", TRAMS, T0, feed.id)  # a lower id, by the other writer
    stored(store, first, "https://a.example/depot", DEPOT, T0 + timedelta(minutes=1), feed.id)
    first.refresh(T0 + timedelta(minutes=2))
    wire_copy = ("Corvel trams ordered by Fenwick Rail", TRAMS[1] + " The Dunmore Courier contributed.")
    placement = first.place(sig(*wire_copy), T0 + timedelta(minutes=3))
    assert placement.assignment.role == "copy" and placement.assignment.story_id == x


# -- the batch dot products behind assignment ---------------------------------------------------

_WORDS = st.lists(st.sampled_from([f"w{i}" for i in range(40)]), max_size=25, unique=True)


@given(st.lists(_WORDS, min_size=1, max_size=8), _WORDS, st.randoms(use_true_random=False))
@pytest.mark.parametrize("few", [0, 100])
def test_batch_dots_equal_the_plain_cosine(
    few: int, indexed: list[list[str]], query: list[str], rnd: random.Random
) -> None:
    """Whatever the overlap (none, some, all, empty vectors), the vectorized dot products of a
    query against many indexed vectors are the plain cosine of each pair."""
    vocab = _Vocab()
    vectors = [{w: round(rnd.random(), 5) for w in words} for words in indexed]
    sparse = [_Sparse(v, vocab) for v in vectors]
    q = {w: round(rnd.random(), 5) for w in query}
    got = _dots(sparse, vocab.query(q), vocab, few=few)  # numpy (0) and the plain loop (100)
    assert got == pytest.approx([cosine(v, q) for v in vectors], abs=1e-5)


def test_vocabulary_compaction_keeps_assignments(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-running index forgets the words of pruned items; what it still holds is found as before."""
    import tracker.stories.index as stories

    monkeypatch.setattr(stories, "VOCAB_SLACK", 0)
    monkeypatch.setattr(stories, "VOCAB_PER_ITEM", 1)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    index = StoryIndex()
    old = signature("Quarry workers in Zembla strike over pay", "Zembla quarry strike pay dispute " * 20)
    index.add(1, 1, t0, old)
    late = t0 + timedelta(days=30)
    kept = signature(
        "Orvieto council approves the Marlowe bridge",
        "The Orvieto council approved the Marlowe bridge on Tuesday after a long debate about tolls.",
    )
    index.add(2, 2, late, kept)
    before = len(index._vocab.ids)
    assert index.prune(late - timedelta(days=1)) == 1
    assert len(index._vocab.ids) < before  # compacted: the strike's words are gone
    rewrite = signature(
        "Marlowe bridge approved by Orvieto council",
        "Orvieto's council voted on Tuesday to approve the Marlowe bridge, ending a debate over tolls.",
    )
    found = index.assign(rewrite, late)
    assert (found.story_id, found.role) == (2, "update")


def test_an_item_joining_two_stories_merges_both_whichever_holds_its_best_match(store: Store) -> None:
    """The index keeps the oldest of the stories an item matches and merges the others into
    it; the store must do the same even when the best match is in the younger story (the
    path where the older story used to be left out, and the index and store then disagreed)."""
    (feed,) = store.sync_feeds([FeedSource("https://a.example/f", "A")])
    older, _ = store.add_item(
        article("https://a.example/1", "Older story", "o " * 50, T0),
        [],
        feed_id=feed.id,
        story=_place("Older story", "o " * 50, T0),
    )
    younger, _ = store.add_item(
        article("https://a.example/2", "Younger story", "y " * 50, T0 + timedelta(hours=1)),
        [],
        feed_id=feed.id,
        story=_place("Younger story", "y " * 50, T0 + timedelta(hours=1)),
    )
    joining = StoryPlacement(
        sig("Both", "b " * 50),
        Assignment(older, "update", younger, 0.9, "lede", merges=(younger,)),  # best match: the younger story's item
        T0 + timedelta(hours=2),
    )
    item, _ = store.add_item(
        article("https://a.example/3", "Both", "b " * 50, T0 + timedelta(hours=2)), [], feed_id=feed.id, story=joining
    )
    assert {item_story(store, i)[0] for i in (older, younger, item)} == {older}
    grouper = StoryGrouper(store)
    grouper.placed(item, joining, older)
    assert [s["n_items"] for s in list_stories(store.engine)] == [3]
