"""tracker.rules (loading, validation) and tracker.matching (pure matching) on tiny rule files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.errors import RuleError
from tracker.matching import Matcher, term_pattern
from tracker.rules import RuleSet, check_rules, load_rules
from tracker.types import Match

ENTITIES = """
[ford]
type = "org"
names = ["Ford", "Ford Motor"]
exclude = ["Harrison Ford"]
groups = ["detroit"]

[gm]
type = "org"
names = ["GM", "General Motors"]
groups = ["detroit"]

[byd]
type = "org"
names = ["BYD"]
groups = ["china-makers"]

[geely]
type = "org"
names = ["Geely"]
groups = ["china-makers"]
"""


def write_rules(folder: Path, rules: dict[str, str], entities: str | None = ENTITIES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if entities is not None:
        (folder / "entities.toml").write_text(entities, encoding="utf-8")
    for name, text in rules.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def ruleset(tmp_path: Path, rule: str, **more: str) -> RuleSet:
    return load_rules([write_rules(tmp_path / "rules", {"topic.toml": rule, **more})])


def matches(rs: RuleSet, text: str, title: str = "") -> dict[str, Match]:
    return {m.rule: m for m in Matcher(rs).match(title, text)}


def one_match(tmp_path: Path, rule: str, text: str, title: str = "") -> Match | None:
    return matches(ruleset(tmp_path, rule), text, title).get("topic")


def rule_errors(tmp_path: Path, rules: dict[str, str], entities: str | None = ENTITIES) -> list[RuleError]:
    _, errors = check_rules([write_rules(tmp_path / "rules", rules, entities)])
    return errors


def single_error(tmp_path: Path, rule: str, entities: str | None = ENTITIES) -> RuleError:
    errors = rule_errors(tmp_path, {"topic.toml": rule}, entities)
    assert len(errors) == 1, errors
    return errors[0]


JV = """
id = "topic"
title = "Ford and Chinese carmakers: joint ventures"
all = [["@ford"], ["@china-makers", "Chinese partner*"], ["joint venture*", "partner*"]]
none = ["recall*"]
"""


# --- term patterns ---------------------------------------------------------------------------


def found(term: str, text: str) -> list[str]:
    return term_pattern(term).findall(text)


def test_wildcard_matches_any_ending() -> None:
    assert found("partner*", "partner, partners, Partnership and partner-led deals") == [
        "partner", "partners", "Partnership", "partner-led",
    ]  # fmt: skip


def test_wildcard_needs_the_word_start() -> None:
    assert found("partner*", "a counterpartner and an apartment") == []


def test_term_without_wildcard_is_a_whole_word() -> None:
    assert found("tariff", "tariff tariffs tariffing") == ["tariff"]


def test_upper_case_term_is_case_sensitive() -> None:
    assert found("GM", "GM said; gm crops; Gm") == ["GM"]


def test_lower_case_term_is_case_insensitive() -> None:
    assert found("gm", "GM said; gm crops") == ["GM", "gm"]


@pytest.mark.parametrize("term", ["joint-venture", "joint venture"])
def test_hyphens_and_spaces_are_interchangeable(term: str) -> None:
    assert found(term, "a joint venture, a joint-venture, a joint  venture, a jointventure") == [
        "joint venture", "joint-venture", "joint  venture",
    ]  # fmt: skip


def test_multiword_wildcard() -> None:
    assert found("joint venture*", "joint ventures and joint-venture talks") == ["joint ventures", "joint-venture"]


def test_punctuation_in_terms_is_literal() -> None:
    assert found("U.S.", "the U.S. market, not the UxSx market") == ["U.S."]


# --- entities ---------------------------------------------------------------------------------


ENTITY_RULE = """
id = "topic"
all = [["@ford"], ["factory"]]
"""


@pytest.mark.parametrize(
    "text",
    [
        "Ford's factory reopens.",
        "Ford\u2019s factory reopens.",
        "The Ford Motor factory reopens.",
        "Ford-Motor factory",
    ],
)
def test_entity_names_and_possessives(tmp_path: Path, text: str) -> None:
    assert one_match(tmp_path, ENTITY_RULE, text) is not None


def test_entity_names_are_case_sensitive(tmp_path: Path) -> None:
    assert one_match(tmp_path, ENTITY_RULE, "The ford across the river is near the factory.") is None


def test_entity_exclusion(tmp_path: Path) -> None:
    assert one_match(tmp_path, ENTITY_RULE, "Harrison Ford toured the factory.") is None
    assert one_match(tmp_path, ENTITY_RULE, "Harrison Ford's factory tour.") is None


def test_exclusion_only_blocks_its_own_occurrence(tmp_path: Path) -> None:
    m = one_match(tmp_path, ENTITY_RULE, "Harrison Ford toured the factory that Ford built.")
    assert m is not None
    assert m.terms == ("factory", "Ford")  # first-seen order


def test_group_reference_expands_to_members(tmp_path: Path) -> None:
    rule = 'id = "topic"\nall = [["@detroit"], ["tariff*"]]\n'
    rs = ruleset(tmp_path, rule)
    assert {e.id for e in rs.members("detroit")} == {"ford", "gm"}
    for text, name in [
        ("GM warns about tariffs.", "GM"),
        ("General Motors on tariffs.", "General Motors"),
        ("Ford on tariffs.", "Ford"),
    ]:
        m = matches(rs, text).get("topic")
        assert m is not None and name in m.terms
    assert matches(rs, "BYD warns about tariffs.") == {}


# --- windows ------------------------------------------------------------------------------------


def test_all_groups_in_one_paragraph(tmp_path: Path) -> None:
    text = "Background paragraph.\n\nFord's talks with BYD on a joint-venture continue in Detroit."
    m = one_match(tmp_path, JV, text)
    assert m is not None
    assert m.score == 1.0
    assert m.terms == ("Ford", "BYD", "joint-venture")
    assert m.snippets == ("Ford's talks with BYD on a joint-venture continue in Detroit.",)


def test_groups_spread_across_paragraphs_do_not_match(tmp_path: Path) -> None:
    text = "Ford reported earnings on Tuesday.\n\nBYD opened a plant.\n\nA joint venture in steel was announced."
    assert one_match(tmp_path, JV, text) is None


def test_single_newline_separates_paragraphs(tmp_path: Path) -> None:
    assert one_match(tmp_path, JV, "Ford reported earnings.\nBYD formed a joint venture with Geely.") is None


def test_none_term_blocks_its_window(tmp_path: Path) -> None:
    assert one_match(tmp_path, JV, "Ford and BYD's joint venture announced a recall of 2,000 cars.") is None


def test_none_term_blocks_only_its_window(tmp_path: Path) -> None:
    text = "Ford and BYD's joint venture recalled cars.\n\nFord and Geely discuss a new joint venture."
    m = one_match(tmp_path, JV, text)
    assert m is not None
    assert m.score == 1.0
    assert m.snippets == ("Ford and Geely discuss a new joint venture.",)
    assert "BYD" not in m.terms


SENTENCE = """
id = "topic"
window = "sentence"
all = [["@ford"], ["@china-makers"]]
"""


def test_sentence_window_needs_one_sentence(tmp_path: Path) -> None:
    title = "Carmakers"
    assert one_match(tmp_path, SENTENCE, "Ford met officials. BYD was not there.", title) is None
    assert one_match(tmp_path, SENTENCE, "Ford met officials in the U.S. capital with BYD.", title) is not None
    m = one_match(tmp_path, SENTENCE, "Markets fell. Ford met BYD officials. Nothing else happened.", title)
    assert m is not None and m.snippets == ("Ford met BYD officials.",)


def test_paragraph_window_accepts_the_same_two_sentences(tmp_path: Path) -> None:
    rule = SENTENCE.replace('window = "sentence"', 'window = "paragraph"')
    assert one_match(tmp_path, rule, "Ford met officials. BYD was not there.") is not None


def test_sentence_window_without_title_gets_no_title_bonus(tmp_path: Path) -> None:
    m = one_match(tmp_path, SENTENCE, "Ford and BYD agree.", title="")
    assert m is not None and m.score == 1.0


def test_sentence_window_hit_in_second_title_sentence_is_a_title_hit(tmp_path: Path) -> None:
    m = one_match(tmp_path, SENTENCE, "Nothing relevant.", title="Markets wobble. Ford and BYD agree")
    assert m is not None and m.score == 1.5


def test_document_window(tmp_path: Path) -> None:
    rule = JV.replace('title = "Ford', 'window = "document"\ntitle = "Ford')
    text = "Ford reported earnings on Tuesday.\n\nBYD opened a plant.\n\nA joint venture in steel was announced."
    m = one_match(tmp_path, rule, text, title="Ford news")
    assert m is not None
    assert m.score == 1.0  # one window, and no title bonus for the whole document


# --- score ----------------------------------------------------------------------------------------

PARA = "Ford and BYD are in talks about a joint venture."


def test_title_hit_adds_half_a_point(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, JV)
    body_only = matches(rs, PARA, title="Carmakers talk")["topic"]
    title_only = matches(rs, "Unrelated text.", title="Ford and BYD weigh a joint venture")["topic"]
    both = matches(rs, PARA, title="Ford and BYD weigh a joint venture")["topic"]
    assert (body_only.score, title_only.score, both.score) == (1.0, 1.5, 2.5)
    assert both.snippets == ("Ford and BYD weigh a joint venture", PARA)


def test_min_windows(tmp_path: Path) -> None:
    rule = JV.replace('none = ["recall*"]', "min_windows = 2")
    assert one_match(tmp_path, rule, PARA) is None
    m = one_match(tmp_path, rule, PARA + "\n\nFord and Geely also discussed a partnership.")
    assert m is not None
    assert m.score == 2.0
    assert len(m.snippets) == 2
    assert m.terms == ("Ford", "BYD", "joint venture", "Geely", "partnership")


def test_threshold(tmp_path: Path) -> None:
    rule = JV.replace('none = ["recall*"]', 'threshold = 1.5\nany = ["Michigan", "plant*"]')
    assert one_match(tmp_path, rule, PARA) is None  # 1.0
    assert one_match(tmp_path, rule, PARA + " A Michigan site is named.") is None  # 1.25
    m = one_match(tmp_path, rule, PARA + " A Michigan plant is named.")  # 1.5
    assert m is not None and m.score == 1.5
    assert one_match(tmp_path, rule, PARA, title="Ford and BYD weigh a joint venture") is not None  # 2.5


def test_boost_terms_count_once_per_distinct_word(tmp_path: Path) -> None:
    rule = JV.replace('none = ["recall*"]', 'any = ["plant*"]')
    m = one_match(tmp_path, rule, PARA + " The plant, the plant, the plant.")
    assert m is not None and m.score == 1.25
    m = one_match(tmp_path, rule, PARA + " One plant, two plants.")
    assert m is not None and m.score == 1.5


def test_match_carries_the_rule_hash(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, JV)
    m = matches(rs, PARA)["topic"]
    assert m.rule_hash == rs.rules[0].content_hash != ""


def test_long_snippet_is_shortened(tmp_path: Path) -> None:
    text = PARA + " " + "The talks went on for many hours in a small room. " * 20
    m = one_match(tmp_path, JV, text)
    assert m is not None
    (snippet,) = m.snippets
    assert len(snippet) <= 320 and snippet.endswith("…")
    assert snippet.startswith(PARA)


def test_no_match_on_empty_article(tmp_path: Path) -> None:
    assert one_match(tmp_path, JV, "", title="") is None


def test_terms_are_in_first_seen_order(tmp_path: Path) -> None:
    m = one_match(tmp_path, JV, "A joint venture between BYD and Ford.")
    assert m is not None
    assert m.terms == ("joint venture", "BYD", "Ford")


# --- RuleError ---------------------------------------------------------------------------------------


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    err = single_error(tmp_path, 'id = "topic"\ntitle = "JV"\nall = [["@ford"]\nwindow = "paragraph"\n')
    assert err.path is not None and err.path.endswith("topic.toml")
    assert err.line is not None
    assert f"topic.toml:{err.line}:" in str(err)
    assert "not valid TOML" in str(err)


def test_invalid_toml_line_number(tmp_path: Path) -> None:
    err = single_error(tmp_path, 'id = "topic"\ntitle = "JV"\nwindow = = "sentence"\nall = [["@ford"]]\n')
    assert err.line == 3
    assert "topic.toml:3:" in str(err)


def test_unknown_key(tmp_path: Path) -> None:
    err = single_error(tmp_path, 'id = "topic"\ntitel = "JV"\nall = [["@ford"]]\n')
    assert "titel" in str(err)
    assert err.line == 2
    assert err.expected is not None and "title" in err.expected


def test_unknown_entity_reference_names_file_and_line(tmp_path: Path) -> None:
    err = single_error(tmp_path, 'id = "topic"\ntitle = "T"\nall = [\n  ["@ford"],\n  ["@toyota", "deal"],\n]\n')
    assert "@toyota" in str(err)
    assert err.line == 5
    assert err.path is not None and f"{err.path}:5:" in str(err)
    assert str(tmp_path) in str(err)


@pytest.mark.parametrize("term", ["part*ner", "*partner", "*", "Chinese * makers"])
def test_wildcard_in_the_middle_of_a_word(tmp_path: Path, term: str) -> None:
    err = single_error(tmp_path, f'id = "topic"\nall = [["@ford"], ["{term}"]]\n')
    assert "wildcard" in str(err)
    assert err.line == 2


def test_wildcard_at_word_ends_is_fine(tmp_path: Path) -> None:
    assert rule_errors(tmp_path, {"topic.toml": 'id = "topic"\nall = [["@ford"], ["joint* venture*"]]\n'}) == []


def test_duplicate_rule_id_across_two_files(tmp_path: Path) -> None:
    errors = rule_errors(
        tmp_path, {"a.toml": 'id = "same"\nall = [["@ford"]]\n', "b.toml": 'id = "same"\nall = [["@gm"]]\n'}
    )
    assert len(errors) == 1
    message = str(errors[0])
    assert "'same'" in message and "a.toml" in message and "b.toml" in message


@pytest.mark.parametrize("value", ['"page"', "3", '"Paragraph"'])
def test_bad_window_value(tmp_path: Path, value: str) -> None:
    err = single_error(tmp_path, f'id = "topic"\nall = [["@ford"]]\nwindow = {value}\n')
    assert "window" in str(err)
    assert err.line == 3
    assert err.expected is not None and "sentence" in err.expected


@pytest.mark.parametrize(
    ("files", "line"),
    [
        ({"topic.toml": 'id = "topic"\nmin_windows = 2\nwindow = "page"\nall = [["@ford"]]\n'}, 3),
        (
            {
                "a.toml": 'id = "same"\nall = [["@ford"]]\n',
                "b.toml": 'title = "Hybrid deals"\nid = "same"\nall = [["@ford"]]\n',
            },
            2,
        ),
    ],
)
def test_error_line_is_the_offending_key(tmp_path: Path, files: dict[str, str], line: int) -> None:
    (err,) = rule_errors(tmp_path, files)
    assert err.line == line


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ('id = "topic"\nall = [["@ford"]]\nmin_windows = 0\n', "min_windows"),
        ('id = "topic"\nall = [["@ford"]]\nthreshold = "high"\n', "threshold"),
        ('id = "Topic_1"\nall = [["@ford"]]\n', "id"),
        ('id = "topic"\ntitle = "No groups"\n', "all"),
        ('id = "topic"\nall = [[]]\n', "non-empty"),
    ],
)
def test_other_rule_errors(tmp_path: Path, rule: str, words: str) -> None:
    err = single_error(tmp_path, rule)
    assert words in str(err)
    assert "topic.toml" in str(err)


def test_entity_file_errors(tmp_path: Path) -> None:
    entities = '[ford]\nnames = ["Ford"]\ncolour = "blue"\n'
    errors = rule_errors(tmp_path, {"topic.toml": 'id = "topic"\nall = [["deal"]]\n'}, entities)
    assert len(errors) == 1
    assert "colour" in str(errors[0]) and "entities.toml" in str(errors[0])


def test_check_rules_collects_several_errors_at_once(tmp_path: Path) -> None:
    rules = {
        "a.toml": 'id = "a"\nall = [["@ford"]]\nmin_windows = 0\n',
        "b.toml": 'id = "b"\nall = [["@nobody"]]\n',
        "c.toml": 'id = "c"\nall = [["@ford"], ["deal"]]\n',  # the good one
        "d.toml": "id = \n",
        "e.toml": 'id = "e"\nall = [["x"]]\nwindow = "page"\n',
    }
    rs, errors = check_rules([write_rules(tmp_path / "rules", rules)])
    assert [r.id for r in rs.rules] == ["c"]
    assert sorted(Path(e.path or "").name for e in errors) == ["a.toml", "b.toml", "d.toml", "e.toml"]
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path / "rules"])
    assert str(info.value) == str(errors[0])  # load_rules raises the first of them


def test_missing_rules_path(tmp_path: Path) -> None:
    rs, errors = check_rules([tmp_path / "nope"])
    assert rs.rules == ()
    assert len(errors) == 1 and "nope" in str(errors[0])
