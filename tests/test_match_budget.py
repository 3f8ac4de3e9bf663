"""Matching stays (near) linear in the text on hostile input, and NEAR keeps its exact results.

The NEAR sweep is checked against a brute-force reference that compares every pair (what the
matcher did before); the shipped rules are timed on 400 KB of repeated text, with a generous
bound that only a quadratic step would break. The bound is on the CPU time of this process, so
that a busy machine does not fail it; a quadratic step takes minutes on these texts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracker.rules.evaluators as evaluators
import tracker.rules.matching as matching
import tracker.rules.mentions as mentions
from tracker.rules.matching import MAX_EVIDENCE_PER_TERM, MAX_MATCH_CHARS, Matcher
from tracker.rules.ruleset import RuleSet, load_rules
from tracker.rules.textindex import index

from .conftest import REPO

WALL = 5.0  #: CPU seconds per match: a guard against quadratic regressions, not a performance target
SIZE = 400_000  #: bytes of hostile text

Hit = tuple[int, int, str]


# --- NEAR against a brute-force reference --------------------------------------------------------


def brute_near(left: list[Hit], right: list[Hit], d: int) -> tuple[list[Hit], list[tuple[float, Hit, Hit]]]:
    """Every pair compared: the hits with a partner within ``d`` words, and every such pair's closeness."""
    out: set[Hit] = set()
    pairs = []
    for a in left:
        for b in right:
            gap = max(b[0] - a[1], a[0] - b[1], 0)
            if gap <= d and a != b:
                out.update((a, b))
                pairs.append((1 - gap / (d + 1), a, b))
    return sorted(out), pairs


def brute_gaps(hits: list[Hit], others: list[Hit]) -> list[int]:
    """For each hit, the fewest words between it and another hit of ``others`` (-1: none)."""
    return [min((max(b[0] - a[1], a[0] - b[1], 0) for b in others if b != a), default=-1) for a in hits]


SPANS = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 3), st.sampled_from("ab")), max_size=14)


def hits_of(spans: list[tuple[int, int, str]]) -> list[Hit]:
    return sorted({(s, s + n, label) for s, n, label in spans})


@settings(max_examples=400, deadline=None)
@given(left=SPANS, right=SPANS)
def test_nearest_gaps_match_brute_force(left: list[tuple[int, int, str]], right: list[tuple[int, int, str]]) -> None:
    a, b = hits_of(left), hits_of(right) + hits_of(left)[:2]  # shared hits are never their own partner
    got = [-1 if g == evaluators._NO_GAP else g for g in evaluators._nearest_gaps(a, b)]
    assert got == brute_gaps(a, b)


@settings(max_examples=400, deadline=None)
@given(
    left=SPANS,
    right=SPANS,
    shared=st.booleans(),
    d=st.integers(0, 6),
    window=st.tuples(st.integers(0, 45), st.integers(0, 45)),
    keep=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_near_matches_brute_force(
    left: list[tuple[int, int, str]],
    right: list[tuple[int, int, str]],
    shared: bool,
    d: int,
    window: tuple[int, int],
    keep: list[bool],
) -> None:
    """Hits, truth and the best closeness among any kept subset equal those of comparing every pair."""
    doc = index("", " ".join(["w"] * 50))
    hits = {"L": [(s, e, "L") for s, e, _ in hits_of(left)], "R": [(s, e, "R") for s, e, _ in hits_of(right)]}
    lo, hi = min(window), max(window) + 1
    ctx = evaluators._Ctx(doc, hits)
    # With ``shared`` the right side is (L OR R): hits on both sides, which must not pair with themselves.
    right_eval: evaluators._Eval = (
        evaluators._Or([evaluators._Lit("L"), evaluators._Lit("R")]) if shared else evaluators._Lit("R")
    )
    node = evaluators._Near(evaluators._Lit("L"), right_eval, d)
    ok, found = node.eval(ctx, lo, hi)

    l_in = evaluators._Lit("L").eval(ctx, lo, hi)[1]
    r_in = right_eval.eval(ctx, lo, hi)[1]
    expect, pairs = brute_near(l_in, r_in, d)
    assert ok is bool(expect)
    assert found == (expect if ok else [])

    everything = sorted(set(l_in) | set(r_in))
    kept = {h for h, k in zip(everything, keep, strict=False) if k}
    for subset in (kept, set(everything)):
        best = max((c for c, a, b in pairs if a in subset and b in subset), default=0.0)
        assert evaluators._best_closeness(ctx.near, subset) == best


@settings(max_examples=200, deadline=None)
@given(
    paragraphs=st.lists(st.integers(1, 4), min_size=1, max_size=6),
    bounds=st.tuples(st.integers(0, 30), st.integers(0, 30)),
)
def test_windows_in_range_are_the_windows_that_overlap_it(paragraphs: list[int], bounds: tuple[int, int]) -> None:
    doc = index("one two", "\n\n".join(" ".join(["w. W"] * n) for n in paragraphs))
    lo, hi = min(bounds), max(bounds)
    for spans, starts in ((doc.sentences, doc.sent_starts), (doc.paragraphs, doc.para_starts)):
        overlapping = [n for n, (a, b) in enumerate(spans) if max(lo, a) < min(hi, b)]
        got = evaluators._windows_in(starts, spans, lo, hi)
        assert set(overlapping) <= set(got)
        assert list(got) == sorted(got)


def test_excluded_spans_cover() -> None:
    spans = mentions._Spans([(10, 12), (0, 3), (5, 9), (6, 7)])
    for s in range(14):
        for e in range(s + 1, 15):
            assert spans.covers(s, e) == any(a <= s and e <= b for a, b in [(10, 12), (0, 3), (5, 9), (6, 7)])
    assert not mentions._Spans([]).covers(0, 1)


# --- hostile texts against the shipped rules ------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules([REPO / "rules"])


@pytest.fixture
def uncapped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The whole text is matched: the algorithms themselves must be linear, not only the cap."""
    monkeypatch.setattr(matching, "MAX_MATCH_CHARS", 10**9)
    yield


def repeat(unit: str, size: int = SIZE, lead: str = "") -> str:
    return lead + unit * (size // len(unit.encode()))


def timed_match(matcher: Matcher, title: str, text: str) -> tuple[set[str], float]:
    t0 = time.process_time()
    found = matcher.match(title, text)
    return {m.rule for m in found}, time.process_time() - t0


#: (rule that must match, title, repeated unit, leading text)
HOSTILE = {
    "visit": ("trump-xi-meeting", "Trump will visit China", "Trump will visit China. ", ""),
    "visit-paragraphs": ("trump-xi-meeting", "", "Trump will visit China.\n\n", ""),
    "meeting-paragraphs": ("trump-xi-meeting", "", "Trump met Xi in Beijing.\n\n", ""),
    "near-alternating": ("trump-xi-meeting", "Trump will visit China", "visit China ", "Trump will visit China. "),
    "excluded-name": ("trump-xi-meeting", "Trump will visit China", "Trump will visit China, no Trump card. ", ""),
    "not-context": (
        "trump-xi-meeting",
        "Trump will visit China",
        "The president will visit China with Trump.\n\nNixon went to China in 1972.\n\n",
        "",
    ),
    "ford-jv": ("ford-china-jv", "Ford weighs joint venture with BYD", "Ford is in joint venture talks with BYD. ", ""),
    "ford-jv-paragraphs": ("ford-china-jv", "", "Ford is in joint venture talks with BYD.\n\n", ""),
    "gm": ("gm-opposition", "", "GM warned that Chinese automakers must not be allowed into the U.S. car market. ", ""),
    "gm-paragraphs": (
        "gm-opposition",
        "",
        "GM warned that Chinese automakers must not be allowed into the U.S. car market. Barra agreed.\n\n",
        "",
    ),
    "industry": (
        "industry-opposition",
        "Unions oppose Chinese cars",
        "The UAW union warned against Chinese cars in the United States. ",
        "",
    ),
    "industry-paragraphs": ("industry-opposition", "", "The UAW union warned against Chinese cars in the US.\n\n", ""),
    "entry": (
        "chinese-automakers-us-entry",
        "Chinese automakers eye the US",
        "BYD plans to build a car plant in the United States. ",
        "",
    ),
    "entry-paragraphs": (
        "chinese-automakers-us-entry",
        "",
        "BYD plans to build a car plant in the United States.\n\n",
        "",
    ),
}


@pytest.mark.usefixtures("uncapped")
@pytest.mark.parametrize("case", list(HOSTILE))
def test_shipped_rules_on_400kb_of_repetition(shipped: RuleSet, case: str) -> None:
    """Every shipped rule against the text (the whole of it): bounded time, and the rule it is about matches."""
    rule_id, title, unit, lead = HOSTILE[case]
    text = repeat(unit, lead=lead)
    assert len(text) > 350_000
    rules, seconds = timed_match(Matcher(shipped), title, text)
    assert seconds < WALL, f"the shipped rules took {seconds:.1f} s"
    assert rule_id in rules


def test_feed_summary_as_shipped(shipped: RuleSet) -> None:
    """The report that started it: a 380 KB feed summary repeating one line, with the length cap in place."""
    text = repeat("Trump will visit China. ", 380_000)
    rules, seconds = timed_match(Matcher(shipped), "Trump will visit China", text)
    assert seconds < WALL / 2
    assert rules == {"trump-xi-meeting"}


@pytest.mark.usefixtures("uncapped")
def test_explain_miss_on_20k_paragraphs(shipped: RuleSet) -> None:
    """The explanation of a miss walks every paragraph and its sentences once, not every pair of them."""
    matcher = Matcher(shipped.only(["gm-opposition"]))
    unit = "GM warned that Chinese automakers are coming. Barra agreed.\n\n"
    text = repeat(unit, 20_000 * len(unit))
    assert text.count("\n\n") == 20_000
    t0 = time.process_time()
    why = matcher.explain_miss("gm-opposition", "", text)
    assert time.process_time() - t0 < WALL
    assert why and all(w.startswith("in every paragraph") for w in why)


def custom(folder: Path, query: str) -> Matcher:
    folder.mkdir()
    (folder / "entities.toml").write_text("", encoding="utf-8")
    (folder / "topic.toml").write_text(f"id = \"topic\"\nquery = '''\n{query}\n'''\n", encoding="utf-8")
    return Matcher(load_rules([folder]))


@pytest.mark.usefixtures("uncapped")
@pytest.mark.parametrize(
    "query",
    [
        "alpha NEAR/3 beta",
        "(alpha NEAR/2 beta) NEAR/4 (beta NEAR/1 alpha)",
        "paragraph(alpha NEAR/3 beta) AND sentence(beta AND alpha)",
        "atleast(2, alpha NEAR/0 beta) AND atleast(1, sentence(alpha NEAR/0 beta))",
        '"alpha beta" AND NOT gamma',
    ],
)
def test_two_terms_alternating_50k_times(tmp_path: Path, query: str) -> None:
    matcher = custom(tmp_path / "rules", query)
    text = "alpha beta " * 50_000
    # One sentence; 50k sentences; 50k paragraphs.
    for body in (text, text.replace("alpha beta ", "Alpha beta. "), text.replace("beta ", "beta.\n\n")):
        rules, seconds = timed_match(matcher, "", body)
        assert seconds < WALL, f"{query} took {seconds:.1f} s"
        assert rules == {"topic"}


@pytest.mark.usefixtures("uncapped")
def test_one_term_repeated_100k_times(tmp_path: Path) -> None:
    matcher = custom(tmp_path / "rules", "alpha NEAR/5 alpha* AND paragraph(alpha) AND atleast(3, sentence(alpha))")
    rules, seconds = timed_match(matcher, "alpha", "Alpha. " * 100_000)
    assert seconds < WALL
    assert rules == {"topic"}


# --- the caps -------------------------------------------------------------------------------------


def test_text_after_the_cap_is_not_matched(tmp_path: Path) -> None:
    matcher = custom(tmp_path / "rules", "needle AND visit*")
    filler = "hay " * (MAX_MATCH_CHARS // 4)
    assert matcher.match("", "visiting the needle. " + filler) != []
    assert matcher.match("", filler + "visiting the needle.") == []
    # A word cut by the cap is dropped whole: "visitation" does not leave a "visit" behind.
    head = "needle " + "x" * (MAX_MATCH_CHARS - len("needle ") - 6)
    assert (head + " visitation")[:MAX_MATCH_CHARS].endswith(" visit")
    assert matcher.match("", head + " visitation") == []
    assert matcher.match("", head + " visit ation") != []


def test_evidence_is_capped_per_term_but_the_score_counts_every_hit(tmp_path: Path) -> None:
    matcher = custom(tmp_path / "rules", "alpha AND beta")
    text = "\n\n".join(["alpha beta."] * (3 * MAX_EVIDENCE_PER_TERM))
    (m,) = matcher.match("", text)
    assert len(m.evidence) == 2 * MAX_EVIDENCE_PER_TERM
    assert [e.term for e in m.evidence].count("alpha") == MAX_EVIDENCE_PER_TERM
    assert m.evidence[0].start == 0 and m.evidence[-1].text == "beta"
    assert m.score == pytest.approx(3 * MAX_EVIDENCE_PER_TERM + 0.3)
    assert m.terms == ("alpha", "beta")
