"""tracker.rules.matching: Matcher semantics on tiny rule sets written to tmp_path."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracker.rules.matching as matching
from tracker.core.types import Match
from tracker.rules.matching import Matcher, highlight, render
from tracker.rules.query import parse_query
from tracker.rules.ruleset import RuleSet, load_rules

ENTITIES = """\
[ford]
type = "org"
names = ["Ford", "Ford Motor"]
exclude = ["Harrison Ford"]
groups = ["detroit"]

[ford-executives]
type = "person"
names = ["Jim Farley"]
related_to = ["ford"]

[gm]
type = "org"
names = ["GM", "General Motors"]
ambiguous = ["GM"]
context = ["car*", "case:EV"]
groups = ["detroit"]

[gmp]
type = "org"
names = ["GMP"]
ambiguous = ["GMP"]
context = ["pharma*"]
context_scope = "paragraph"

[detroit]
type = "group"
names = ["Detroit automakers"]

[byd]
type = "org"
names = ["BYD"]
case_sensitive = false

[china]
type = "place"
names = ["China"]
"""


def write_rules(folder: Path, rules: dict[str, str], entities: str = ENTITIES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "entities.toml").write_text(entities, encoding="utf-8")
    for name, text in rules.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def rule_file(query: str, rule_id: str = "topic", extra: str = "") -> str:
    return f"id = \"{rule_id}\"\nquery = '''\n{query}\n'''\n{extra}"


class One:
    """A Matcher holding the single rule ``topic``."""

    def __init__(self, folder: Path, query: str, extra: str = "", entities: str = ENTITIES) -> None:
        self.ruleset = load_rules([write_rules(folder, {"topic.toml": rule_file(query, extra=extra)}, entities)])
        self.matcher = Matcher(self.ruleset)

    def __call__(self, text: str, title: str = "") -> Match | None:
        found = self.matcher.match(title, text)
        assert [m.rule for m in found] in ([], ["topic"])
        return found[0] if found else None

    def hits(self, text: str, title: str = "") -> list[str]:
        """The evidence texts of the match (empty when no match)."""
        m = self(text, title)
        return [e.text for e in m.evidence] if m else []


Make = Callable[..., One]


@pytest.fixture
def rule(tmp_path: Path) -> Make:
    """``rule(query, extra="", entities=ENTITIES)`` → a One in a fresh folder."""
    counter = itertools.count()

    def make(query: str, extra: str = "", entities: str = ENTITIES) -> One:
        return One(tmp_path / f"rules{next(counter)}", query, extra, entities)

    return make


# --- words, phrases, wildcards ------------------------------------------------------------------


def test_words_match_whole_words(rule: Make) -> None:
    r = rule("tariff")
    assert r.hits("A tariff, tariffs, antitariff and tariff-free goods.") == ["tariff", "tariff"]
    assert r("Tariffs everywhere.") is None


def test_words_are_case_insensitive_by_default(rule: Make) -> None:
    r = rule("Summit")
    assert r.hits("summit SUMMIT Summit sUmMiT") == ["summit", "SUMMIT", "Summit", "sUmMiT"]


def test_phrases_need_the_words_in_order(rule: Make) -> None:
    r = rule('"joint venture"')
    assert r.hits("A Joint Venture and a venture joint.") == ["Joint Venture"]
    assert r("A joint effort to venture out.") is None


def test_case_word(rule: Make) -> None:
    r = rule("case:GM")
    assert r.hits("GM, gm, Gm and GMC.") == ["GM"]
    assert r("gm crops") is None


def test_case_phrase(rule: Make) -> None:
    r = rule('case:"Detroit Three"')
    assert r.hits("the detroit three, the Detroit Three, the DETROIT THREE") == ["Detroit Three"]


def test_case_wildcard(rule: Make) -> None:
    r = rule("case:Partner*")
    assert r.hits("partnership, Partnership, Partners, PARTNER") == ["Partnership", "Partners"]


def test_wildcard_matches_any_ending(rule: Make) -> None:
    r = rule("partner*")
    text = "partner, partners, Partnership and partner-led deals; a counterpart in an apartment"
    assert r.hits(text) == ["partner", "partners", "Partnership", "partner"]


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ('"call* on"', "Trump called on Xi, then calls on him; he recalled one call upon.", ["called on", "calls on"]),
        (
            '"joint venture*"',
            "joint ventures and joint-venture talks, not joint ventilation",
            ["joint ventures", "joint-venture"],
        ),
        ('"joint* venture*"', "jointly ventured", ["jointly ventured"]),
        ('"trade war*"', "a trade war; trade warfare; tradeware", ["trade war", "trade warfare"]),
    ],
)
def test_wildcard_at_the_end_of_any_word_of_a_phrase(rule: Make, query: str, text: str, expected: list[str]) -> None:
    assert rule(query).hits(text) == expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ('"joint venture"', "a joint-venture deal", "joint-venture"),
        ("joint-venture", "a joint venture deal", "joint venture"),
        ("joint-venture", "a joint--venture deal", "joint--venture"),
        ("china", "US-China talks", "China"),
        ("ford", "Ford's plant", "Ford"),
        ("ford", "Ford\u2019s plant", "Ford"),
        ('"U.S. tariffs"', "new U.S. tariffs rise", "U.S. tariffs"),
        ("F-150", "the F 150 pickup", "F 150"),
    ],
)
def test_punctuation_separates_words(rule: Make, query: str, text: str, expected: str) -> None:
    assert rule(query).hits(text) == [expected]


def test_numbers_are_words(rule: Make) -> None:
    r = rule("2026")
    assert r.hits("In 2026, not 20260 or 12026; 2026-27 counts.") == ["2026", "2026"]


# --- entities ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ford's plant", ["Ford"]),
        ("the Ford-BYD deal", ["Ford"]),
        ("Ford Motor said", ["Ford Motor"]),  # the longer name, once
        ("fording a river at the ford", []),  # names are case-sensitive and whole words
        ("FORD SHARES FALL", []),
    ],
)
def test_entity_names(rule: Make, text: str, expected: list[str]) -> None:
    assert rule("@ford").hits(text) == expected


def test_entity_exclude_blocks_only_its_own_occurrence(rule: Make) -> None:
    r = rule("@ford")
    assert r("Harrison Ford starred.") is None
    assert r("Harrison Ford's new film.") is None
    m = r("Harrison Ford drove a car that Ford built.")
    assert m is not None
    (ev,) = m.evidence
    assert ev.start == "Harrison Ford drove a car that Ford built.".index("Ford built")


def test_case_insensitive_entity(rule: Make) -> None:
    assert rule("@byd").hits("byd, BYD and Byd") == ["byd", "BYD", "Byd"]


def test_ambiguous_name_needs_context_in_the_document(rule: Make) -> None:
    r = rule("@gm")
    assert r("GM said profits rose.") is None
    assert r.hits("GM said profits rose.\n\nIts cars sold well.") == ["GM"]  # context anywhere
    assert r.hits("GM said profits rose.", title="EV sales") == ["GM"]  # context in the title
    assert r("GM said profits rose.", title="ev sales") is None  # case:EV
    assert r.hits("General Motors said profits rose.") == ["General Motors"]  # not ambiguous


def test_ambiguous_name_with_paragraph_scope(rule: Make) -> None:
    r = rule("@gmp")
    assert r("GMP rules were updated.\n\nPharmaceutical firms welcomed them.") is None
    assert r.hits("GMP rules for pharmaceutical plants.") == ["GMP"]
    m = r("GMP rules for pharma.\n\nOther GMP news.")
    assert m is not None and [e.start for e in m.evidence] == [0]


def test_group_matches_members_and_its_own_names(rule: Make) -> None:
    r = rule("@detroit")
    assert r.hits("Ford and General Motors, the Detroit automakers.") == [
        "Ford",
        "General Motors",
        "Detroit automakers",
    ]
    assert r("BYD and Jim Farley.") is None


def test_related_entities_count_only_with_plus(rule: Make) -> None:
    assert rule("@ford")("Jim Farley spoke.") is None
    assert rule("@ford+").hits("Jim Farley spoke for Ford.") == ["Jim Farley", "Ford"]
    assert rule("@detroit+").hits("Jim Farley spoke.") == ["Jim Farley"]
    assert rule("@detroit")("Jim Farley spoke.") is None


# --- boolean operators ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpha beta", True),
        ("alpha gamma", True),
        ("alpha", False),
        ("beta gamma", False),
        ("alpha beta delta", False),
        ("alpha gamma delta", False),
    ],
)
def test_and_or_not(rule: Make, text: str, expected: bool) -> None:
    r = rule("alpha AND (beta OR gamma) AND NOT delta")
    assert (r(text) is not None) is expected


def test_or_takes_evidence_from_every_true_branch(rule: Make) -> None:
    assert rule("alpha OR beta OR gamma").hits("gamma then alpha") == ["gamma", "alpha"]


def test_not_contributes_no_evidence(rule: Make) -> None:
    m = rule("alpha AND NOT beta", extra="threshold = 0\n")("alpha gamma")
    assert m is not None and [e.text for e in m.evidence] == ["alpha"]
    only_not = rule("NOT beta", extra="threshold = 0\n")
    m = only_not("nothing to see")
    assert m is not None and m.evidence == () and m.score == 0
    assert only_not("beta") is None


# --- NEAR ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "near"),
    [
        ("alpha beta", True),
        ("alpha one beta", True),
        ("alpha one two three beta", True),  # three words between
        ("alpha one two three four beta", False),
        ("beta alpha", True),
        ("beta one two three alpha", True),
        ("beta one two three four alpha", False),
        ("alpha. Beta", True),  # punctuation is not a word
    ],
)
def test_near_counts_the_words_between_in_either_order(rule: Make, text: str, near: bool) -> None:
    assert (rule("alpha NEAR/3 beta")(text) is not None) is near


def test_near_zero_means_adjacent(rule: Make) -> None:
    r = rule("alpha NEAR/0 beta")
    assert r("alpha beta") is not None and r("beta alpha") is not None
    assert r("alpha x beta") is None


def test_near_measures_from_the_ends_of_phrases(rule: Make) -> None:
    r = rule('"joint venture" NEAR/1 @ford')
    assert r("a joint venture with Ford") is not None
    assert r("Ford plans joint venture talks") is not None
    assert r("Ford now plans a joint venture") is None


def test_near_evidence_is_only_the_close_pairs(rule: Make) -> None:
    r = rule("alpha NEAR/1 beta")
    text = "alpha one two three four five six beta gamma alpha"
    assert r.hits(text) == ["beta", "alpha"]


def test_near_with_groups_of_terms(rule: Make) -> None:
    r = rule("(alpha OR gamma) NEAR/2 (beta OR @ford)")
    assert r("gamma x Ford") is not None
    assert r("gamma x y z Ford alpha x y z delta") is not None
    assert r("alpha x y z beta") is None


# --- fields and scopes ------------------------------------------------------------------------


def test_title_and_text_fields(rule: Make) -> None:
    in_title, in_text = rule("title:alpha"), rule("text:alpha")
    assert in_title("x", title="Alpha news") is not None
    assert in_title("alpha in the text", title="news") is None
    assert in_text("x", title="Alpha news") is None
    assert in_text("alpha in the text", title="") is not None
    assert in_text("alpha in the text", title="Alpha").evidence[0].field == "text"  # type: ignore[union-attr]


def test_field_applies_to_a_whole_group(rule: Make) -> None:
    r = rule("title:(alpha AND beta) AND gamma")
    assert r("gamma", title="alpha beta") is not None
    assert r("beta gamma", title="alpha") is None


def test_paragraph_scope(rule: Make) -> None:
    r = rule("paragraph(alpha AND beta)")
    assert r("Alpha starts here.\n\nBeta ends here.") is None
    assert r("Alpha starts here.\nBeta ends here.") is None  # one newline also starts a paragraph
    assert r("Alpha starts here. Beta ends here.") is not None
    assert r("Beta ends here.", title="Alpha") is None  # the title is a paragraph of its own
    assert r("x", title="Alpha and beta") is not None


def test_sentence_scope(rule: Make) -> None:
    r = rule("sentence(alpha AND beta)")
    assert r("Alpha starts here. Beta ends here.") is None
    assert r("Alpha starts here! Beta ends here.") is None
    assert r("Alpha starts here, and beta ends here.") is not None
    assert r("Alpha met the U.S. beta testers.") is not None  # no capital after "U.S."


def test_scope_evidence_only_from_satisfying_windows(rule: Make) -> None:
    r = rule("paragraph(alpha AND beta)")
    m = r("Alpha only here.\n\nAlpha and beta together.\n\nBeta only here.")
    assert m is not None
    assert [(e.text, e.start) for e in m.evidence] == [("Alpha", 18), ("beta", 28)]
    assert m.score == 1.02


def test_not_inside_a_scope_is_per_window(rule: Make) -> None:
    r = rule("paragraph(alpha AND NOT recall*)")
    assert r("Alpha recalls cars.") is None
    m = r("Alpha recalls cars.\n\nAlpha expands.")
    assert m is not None and [e.start for e in m.evidence] == [21]


def test_atleast_counts_occurrences(rule: Make) -> None:
    r = rule("atleast(3, alpha)")
    assert r("alpha alpha") is None
    assert r("alpha.\n\nAlpha.", title="ALPHA") is not None
    assert rule("atleast(2, @ford)")("Ford Motor said.") is None  # one occurrence of the longer name
    assert rule("atleast(2, alpha OR beta)")("alpha beta") is not None


def test_atleast_counts_windows_of_a_scope(rule: Make) -> None:
    r = rule("atleast(2, paragraph(alpha AND beta))")
    assert r("Alpha beta alpha beta.\n\nAlpha alone.") is None  # two pairs, one paragraph
    m = r("Alpha beta.\n\nNothing.\n\nBeta and alpha.")
    assert m is not None and m.score == 2.04
    s = rule("atleast(2, sentence(alpha))")
    assert s("Alpha and alpha in one sentence.") is None
    assert s("Alpha here. Alpha there.") is not None


# --- scores and thresholds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "text", "score"),
    [
        ("", "alpha", 1.01),
        ("", "alpha alpha alpha", 1.03),
        ("", "Alpha.\n\nAlpha.", 2.02),
        ("", "Alpha.\n\nNone.\n\nAlpha.\n\nAlpha.", 3.03),
        ("Alpha", "none", 1.51),  # the title counts as a paragraph, and 0.5 more
        ("Alpha", "alpha", 2.52),
        ("", " ".join(["alpha"] * 40), 1.3),  # at most 0.3 for the hits
    ],
)
def test_score(rule: Make, title: str, text: str, score: float) -> None:
    m = rule("alpha")(text, title=title)
    assert m is not None and m.score == score


@pytest.mark.parametrize(
    ("text", "score"), [("alpha beta", 1.12), ("alpha x beta", 1.095), ("alpha x y z beta", 1.045)]
)
def test_score_adds_near_closeness(rule: Make, text: str, score: float) -> None:
    m = rule("alpha NEAR/3 beta")(text)
    assert m is not None and m.score == score


def test_threshold(rule: Make) -> None:
    r = rule("alpha", extra="threshold = 1.5\n")
    assert r("alpha alpha") is None  # 1.02
    assert r("Alpha.\n\nAlpha.") is not None  # 2.02
    assert r("x", title="alpha") is not None  # 1.51
    assert rule("alpha", extra="threshold = 1.02\n")("alpha alpha") is not None


def test_match_carries_the_rule_hash(rule: Make) -> None:
    r = rule("alpha")
    m = r("alpha")
    assert m is not None and m.rule_hash == r.ruleset.rules[0].content_hash != ""


def test_near_bonus_only_from_the_branch_that_holds(rule: Make) -> None:
    m = rule("(alpha NEAR/3 beta AND NOT zeta) OR delta")("alpha beta zeta. Then delta.")
    assert m is not None
    assert [e.text for e in m.evidence] == ["delta"]
    assert m.score == 1.01


# --- terms, evidence, snippets ----------------------------------------------------------------


def test_terms_in_first_seen_order_without_case_duplicates(rule: Make) -> None:
    m = rule("@ford OR partner* OR @byd")("BYD partners with Ford. Ford and byd: Partners again.", title="")
    assert m is not None
    assert m.terms == ("BYD", "partners", "Ford")


def test_terms_include_the_title_first(rule: Make) -> None:
    m = rule("alpha OR beta")("beta and alpha", title="Alpha")
    assert m is not None and m.terms == ("Alpha", "beta")


def test_evidence_offsets_are_within_their_field(rule: Make) -> None:
    title = "Ford and BYD weigh a joint venture"
    text = "Talks went on.\n\nFord's chief met BYD.\nA joint-venture with byd is near."
    m = rule('@ford OR @byd OR "joint venture"')(text, title=title)
    assert m is not None
    fields = {"title": title, "text": text}
    assert len(m.evidence) == 7
    for ev in m.evidence:
        assert fields[ev.field][ev.start : ev.end] == ev.text
    assert [(e.field, e.term, e.text) for e in m.evidence] == [
        ("title", "@ford", "Ford"),
        ("title", "@byd", "BYD"),
        ("title", "joint venture", "joint venture"),
        ("text", "@ford", "Ford"),
        ("text", "@byd", "BYD"),
        ("text", "joint venture", "joint-venture"),
        ("text", "@byd", "byd"),
    ]


def test_title_evidence_offsets_with_irregular_whitespace(rule: Make) -> None:
    title = "  Markets:  Ford\tand BYD "
    m = rule("@ford OR @byd")("x", title=title)
    assert m is not None
    assert [title[e.start : e.end] for e in m.evidence] == ["Ford", "BYD"]


def test_phrase_does_not_span_title_and_text(rule: Make) -> None:
    assert rule('"trade war"')("War looms over markets.", title="Tariffs and trade") is None
    assert rule("@ford")("Motor shares fell.", title="Shares of Ford") is not None  # "Ford", not "Ford Motor"
    m = rule("@ford")("Motor shares fell.", title="Shares of Ford")
    assert m is not None and [e.text for e in m.evidence] == ["Ford"]


def test_phrase_does_not_span_paragraphs(rule: Make) -> None:
    assert rule('"trade war"')("Talks on trade.\n\nWar looms.") is None


def test_snippets_are_whole_sentences_with_the_most_evidence(rule: Make) -> None:
    text = (
        "Markets were calm. Alpha rose early.\n\n"
        "Analysts said alpha and beta moved together. Nobody else cared.\n\n"
        "Late news: Beta, alpha and beta again!"
    )
    m = rule("alpha OR beta")(text, title="Alpha report")
    assert m is not None
    assert m.snippets == ("Analysts said alpha and beta moved together.", "Late news: Beta, alpha and beta again!")


def test_snippets_at_most_two_in_text_order(rule: Make) -> None:
    m = rule("alpha")("Alpha one. Alpha two. Alpha three. Alpha four.")
    assert m is not None and m.snippets == ("Alpha one.", "Alpha two.")


def test_snippet_is_the_title_when_only_the_title_holds_evidence(rule: Make) -> None:
    m = rule("alpha")("Nothing here.", title="Alpha  in the title")
    assert m is not None and m.snippets == ("Alpha in the title",)


def test_long_snippet_is_shortened(rule: Make) -> None:
    text = "Alpha opens a sentence that goes on " + "and on " * 100 + "forever."
    m = rule("alpha")(text)
    assert m is not None
    (snippet,) = m.snippets
    assert len(snippet) <= 400 and snippet.endswith("…") and snippet.startswith("Alpha opens")


def test_snippet_keeps_an_opening_quote(rule: Make) -> None:
    m = rule("alpha")('"Alpha," he said. Nothing else.')
    assert m is not None and m.snippets == ('"Alpha," he said.',)


def test_no_match_on_an_empty_article(rule: Make) -> None:
    r = rule("alpha OR @ford")
    assert r("", title="") is None
    assert r.matcher.match(None, None) == []  # type: ignore[arg-type]


def test_highlight() -> None:
    assert highlight("Ford and BYD", [(9, 12), (0, 4)]) == "[Ford] and [BYD]"
    assert highlight("abcdef", [(0, 3), (2, 4)]) == "[abc]def"


# --- explain_miss -------------------------------------------------------------------------------


def test_explain_miss_names_the_missing_parts(rule: Make) -> None:
    r = rule("alpha AND (beta OR gamma) AND NOT delta")
    # an OR names its closest branch (the first of equally close ones)
    assert r.matcher.explain_miss("topic", "", "alpha delta") == ["beta", "NOT delta (it occurs)"]
    assert r.matcher.explain_miss("topic", "", "gamma") == ["alpha"]
    assert r.matcher.explain_miss("topic", "", "alpha gamma") == []


def test_explain_miss_for_scopes_fields_lists_and_counts(rule: Make) -> None:
    r = rule("paragraph(alpha AND beta)")
    assert r.matcher.explain_miss("topic", "", "Alpha.\n\nBeta.") == ["in every paragraph: beta"]
    r = rule("title:alpha")
    assert r.matcher.explain_miss("topic", "news", "alpha") == ["title: alpha"]
    r = rule("alpha AND $deal", extra='[terms]\ndeal = ["deal", "venture*"]\n')
    assert r.matcher.explain_miss("topic", "", "alpha") == ["$deal"]
    r = rule("atleast(3, alpha)")
    assert r.matcher.explain_miss("topic", "", "alpha alpha") == ["atleast(3, alpha) (found 2)"]
    r = rule("alpha NEAR/2 @ford")
    assert r.matcher.explain_miss("topic", "", "alpha one two three Ford") == ["alpha NEAR/2 @ford"]


def test_explain_miss_picks_the_closest_or_branch(rule: Make) -> None:
    r = rule("(alpha AND beta AND gamma) OR (delta AND epsilon)")
    assert r.matcher.explain_miss("topic", "", "alpha beta delta") == ["gamma"]


def test_render_round_trips(rule: Make) -> None:
    for query in [
        "alpha AND (beta OR NOT gamma)",
        'title:"joint venture*" NEAR/3 @ford+',
        "atleast(2, paragraph(case:GM))",
    ]:
        node = parse_query(query)
        assert parse_query(render(node)) == parse_query(render(parse_query(render(node))))
        assert render(parse_query(render(node))) == render(node)


# --- which rules are evaluated --------------------------------------------------------------------


@pytest.fixture
def scored(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = matching._score

    def spy(rule, *args):  # type: ignore[no-untyped-def]
        calls.append(rule.id)
        return real(rule, *args)

    monkeypatch.setattr(matching, "_score", spy)
    return calls


def test_only_anchored_rules_are_evaluated(tmp_path: Path, scored: list[str]) -> None:
    rules = {
        "a.toml": rule_file("zebra AND lion", "zoo"),
        "b.toml": rule_file("paragraph(tiger AND lion)", "cats"),
        "c.toml": rule_file("NOT zebra", "no-zebra", extra="threshold = 0\n"),
        "d.toml": rule_file("@ford AND lion", "ford"),
    }
    m = Matcher(load_rules([write_rules(tmp_path, rules)]))
    assert [x.rule for x in m.match("", "A lion slept.")] == ["no-zebra"]
    assert scored == ["no-zebra"]  # no zebra, no tiger, no Ford: only the rule without an anchor
    scored.clear()
    assert [x.rule for x in m.match("", "A tiger.\n\nA lion.")] == ["no-zebra"]
    assert scored == ["cats", "no-zebra"]
    scored.clear()
    assert [x.rule for x in m.match("", "A zebra met a lion.")] == ["zoo"]
    assert scored == ["zoo", "no-zebra"]
    scored.clear()
    m.match("", "Harrison Ford met a lion.")  # the name occurs, the entity does not
    assert scored == ["no-zebra"]


# --- label collisions in the shared automaton -----------------------------------------------------


def test_phrase_that_looks_like_an_entity_does_not_leak(tmp_path: Path) -> None:
    rules = {"a.toml": rule_file("@ford", "entity"), "b.toml": rule_file('"@ford"', "handle")}
    m = Matcher(load_rules([write_rules(tmp_path, rules)]))
    assert [x.rule for x in m.match("", "We waded across the ford.")] == ["handle"]


def test_phrase_that_looks_like_a_case_term_does_not_leak(tmp_path: Path) -> None:
    rules = {"a.toml": rule_file("case:GM", "exact"), "b.toml": rule_file('"case:GM"', "phrase")}
    m = Matcher(load_rules([write_rules(tmp_path, rules)]))
    assert [x.rule for x in m.match("", "GM said so.")] == ["exact"]
    assert [x.rule for x in m.match("", "Case gm closed.")] == ["phrase"]


# --- many rules: one automaton gives what each rule gives alone ------------------------------------


WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "lambda"]
TERMS = [
    *WORDS,
    "alph*",
    "gam*",
    "om*",
    '"alpha beta"',
    '"gam* delta"',
    '"beta beta"',
    "case:Alpha",
    "case:GM",
    'case:"Beta Gamma"',
    "case:Sig*",
    "@ford",
    "@ford+",
    "@gm",
    "@byd",
    "@detroit",
    "@detroit+",
    "@china",
    "$extra",
]


def _positional(r: random.Random, depth: int) -> str:
    if depth > 0 and r.random() < 0.25:
        return f"({_positional(r, depth - 1)} OR {_positional(r, depth - 1)})"
    if depth > 0 and r.random() < 0.1:
        return f"title:{r.choice(TERMS)}"
    return r.choice(TERMS)


def _query(r: random.Random, depth: int) -> str:
    kind = r.randrange(10) if depth > 0 else 0
    sub = lambda: _query(r, depth - 1)  # noqa: E731
    if kind == 0:
        return _positional(r, depth)
    if kind == 1:
        return f"({sub()} AND {sub()})"
    if kind == 2:
        return f"({sub()} OR {sub()})"
    if kind == 3:
        return f"({sub()} AND NOT {sub()})"
    if kind == 4:
        return f"({_positional(r, depth)} NEAR/{r.randrange(4)} {_positional(r, depth)})"
    if kind == 5:
        return f"paragraph({sub()})"
    if kind == 6:
        return f"sentence({sub()})"
    if kind == 7:
        return f"{r.choice(['title', 'text'])}:({sub()})"
    if kind == 8:
        return f"atleast({r.randrange(1, 4)}, {_positional(r, depth)})"
    return f"atleast({r.randrange(1, 3)}, {r.choice(['paragraph', 'sentence'])}({sub()}))"


def _many_rules(folder: Path, count: int = 300) -> RuleSet:
    r = random.Random(20260)
    files = {}
    for i in range(count):
        extra = (
            f'threshold = {r.choice([0, 0.5, 1, 1.5, 2])}\n[terms]\nextra = ["{r.choice(WORDS)}", "@byd", "case:Om*"]\n'
        )
        files[f"r{i:03}.toml"] = rule_file(_query(r, 3), f"r{i:03}", extra=extra)
    return load_rules([write_rules(folder, files)])


class Many(NamedTuple):
    shared: Matcher  #: all 300 rules in one automaton
    alone: dict[str, Matcher]  #: rule id → a Matcher of that rule only
    brute: Matcher  #: all rules, evaluated without anchoring


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Many:
    rs = _many_rules(tmp_path_factory.mktemp("many"))
    assert len(rs.rules) == 300
    with pytest.MonkeyPatch.context() as mp:
        # The reference: no anchors and no required terms, so every rule and every window is evaluated.
        mp.setattr(matching, "_anchor", lambda node: None)
        mp.setattr(matching, "_required", lambda node: [])
        brute = Matcher(rs)
    return Many(Matcher(rs), {r.id: Matcher(rs.only([r.id])) for r in rs.rules}, brute)


TOKENS = [
    *WORDS,
    *(w.upper() for w in WORDS),
    *(w.capitalize() for w in WORDS),
    "alphabet",
    "omicron",
    "Sigmund",
    "Ford",
    "Ford's",
    "Harrison Ford",
    "Ford Motor",
    "ford",
    "GM",
    "gm",
    "General Motors",
    "cars",
    "EV",
    "BYD",
    "byd",
    "China",
    "US-China",
    "Jim Farley",
    "Detroit automakers",
    "alpha-beta",
    "gamma-delta",
    "Omnibus",
]
SENTENCE = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(lambda ws: " ".join(ws) + ".")
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=3).map(" ".join)
TEXT = st.lists(PARAGRAPH, max_size=4).map("\n\n".join)
TITLE = st.lists(st.sampled_from(TOKENS), max_size=6).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=TITLE, text=TEXT)
def test_many_rules_match_like_each_rule_alone(many: Many, title: str, text: str) -> None:
    together = {m.rule: m for m in many.shared.match(title, text)}
    separately = {rid: found[0] for rid, matcher in many.alone.items() if (found := matcher.match(title, text))}
    assert together == separately
    # and anchoring (skipping rules and windows without an anchor term) changes nothing
    assert together == {m.rule: m for m in many.brute.match(title, text)}


ODD_TEXT = st.lists(
    st.one_of(
        st.sampled_from([*TOKENS, "\n\n", ". ", "\u2028", "\x85", "İ", "ß", "\u0301", "'s", "-"]), st.text(max_size=4)
    ),
    max_size=30,
).map(" ".join)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=ODD_TEXT, text=ODD_TEXT)
def test_arbitrary_text_gives_well_formed_matches(many: Many, title: str, text: str) -> None:
    fields = {"title": title, "text": text}
    for m in many.shared.match(title, text):
        assert 0 < len(m.snippets) <= 2
        assert len(set(m.terms)) == len(m.terms)
        for ev in m.evidence:
            assert fields[ev.field][ev.start : ev.end] == ev.text


def test_many_rules_match_something(many: Many) -> None:
    """The generated rules are not vacuous: a rich document matches a good share of them."""
    shared = many.shared
    text = "\n\n".join(
        " ".join(TOKENS[i : i + 9]) + ". " + " ".join(reversed(TOKENS[i : i + 7])) + "."
        for i in range(0, len(TOKENS), 5)
    )
    found = shared.match("Alpha and Ford: GM cars", text)
    assert len(found) >= 60


# --- not_context and windows counted through a field -------------------------------------------

NOT_CONTEXT = ENTITIES.replace(
    "[gmp]",
    '[ontario-ford]\ntype = "org"\nnames = ["Ford"]\nambiguous = ["Ford"]\ncontext = ["car*"]\n'
    'not_context = ["Ontario", "premier"]\n\n[gmp]',
)


def test_not_context_rules_a_name_out_in_its_paragraph(rule: Make) -> None:
    one = rule("@ontario-ford", entities=NOT_CONTEXT)
    assert one.hits("Ford builds cars in Ohio.") == ["Ford"]
    assert one.hits("The premier, Ford, spoke about cars.") == []
    # Only the paragraph with the telltale word is ruled out; context may come from elsewhere.
    assert one.hits("Ford said Ontario would push back.\n\nFord builds cars.") == ["Ford"]


def test_atleast_counts_windows_inside_a_field(rule: Make) -> None:
    one = rule("atleast(2, text:paragraph(alpha AND beta))")
    assert one("alpha beta.\n\nalpha beta.") is not None
    assert one("alpha beta.\n\nalpha only.", title="alpha beta") is None
