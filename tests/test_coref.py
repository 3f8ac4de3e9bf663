"""References ("the automaker", "she") and sections (roundups, Q&As) in matching."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.rules import coref
from tracker.rules.matching import Matcher
from tracker.rules.ruleset import load_rules
from tracker.rules.textindex import index

CATALOGUE = """
[acme]
type = "org"
names = ["Acme Motors", "Acme"]
groups = ["carmakers"]

[zenith]
type = "org"
names = ["Zenith Auto", "Zenith"]
groups = ["carmakers"]

[outsider]
type = "org"
names = ["Outsider Corp"]
refer_as = ["the company"]

[carmakers]
type = "group"
refer_as = ["the automaker", "the company"]

[acme-people]
type = "person"
names = ["Ada Stone", "Stone"]
related_to = ["acme"]
pronouns = ["she"]
refer_as = ["the chief executive"]

[other-people]
type = "person"
names = ["Bob Reed"]
"""

RULES = {
    "acme-warns": """id = "acme-warns"
title = "Acme warns"
query = 'sentence(@acme+ AND warn*)'
""",
    "zenith-warns": """id = "zenith-warns"
title = "Zenith warns"
query = 'sentence(@zenith AND warn*)'
""",
    "tariff-story": """id = "tariff-story"
title = "Tariffs as the subject"
query = 'title:tariff* AND paragraph(@acme AND tariff*)'
""",
}


@pytest.fixture
def matcher(tmp_path: Path) -> Matcher:
    (tmp_path / "entities.toml").write_text(CATALOGUE)
    for rule_id, body in RULES.items():
        (tmp_path / f"{rule_id}.toml").write_text(body)
    return Matcher(load_rules([tmp_path]))


def rules_of(matcher: Matcher, title: str, text: str) -> set[str]:
    return {m.rule for m in matcher.match(title, text)}


def test_description_stands_for_the_company_named_before(matcher: Matcher) -> None:
    text = "Acme Motors opened a plant.\n\nOn Monday the automaker warned about costs."
    assert rules_of(matcher, "News", text) == {"acme-warns"}
    found = next(m for m in matcher.match("News", text) if m.rule == "acme-warns")
    assert "the automaker" in {t.lower() for t in found.terms}


def test_description_without_a_named_company_stands_for_nothing(matcher: Matcher) -> None:
    assert rules_of(matcher, "News", "The automaker warned about costs.") == set()


def test_description_goes_to_the_most_salient_company(matcher: Matcher) -> None:
    # Zenith is named twice and in the title; Acme once, in passing, later.
    text = (
        "Zenith reported sales. Zenith Auto also cut prices.\n\n"
        "Rivals such as Acme have struggled.\n\n"
        "The automaker warned that margins would shrink."
    )
    assert rules_of(matcher, "Zenith results", text) == {"zenith-warns"}


def test_a_company_that_does_not_take_the_description_blocks_it(matcher: Matcher) -> None:
    # "the automaker" after Outsider Corp (which is not a carmaker) is not Acme.
    text = "Acme makes cars.\n\nOutsider Corp sells software.\n\nOutsider Corp grew.\n\nThe automaker warned."
    assert rules_of(matcher, "News", text) == set()


def test_pronoun_stands_for_the_person_named_just_before(matcher: Matcher) -> None:
    assert rules_of(matcher, "News", "Ada Stone spoke.\n\nShe warned about imports.") == {"acme-warns"}


def test_pronoun_does_not_reach_far_back(matcher: Matcher) -> None:
    text = "Ada Stone spoke.\n\nMarkets were calm.\n\nPrices rose.\n\nShe warned about imports."
    assert rules_of(matcher, "News", text) == set()


def test_pronoun_after_another_person_is_theirs(matcher: Matcher) -> None:
    assert rules_of(matcher, "News", "Ada Stone spoke, then Bob Reed. She warned about imports.") == set()


def test_role_resolves_to_the_person_and_the_company(matcher: Matcher) -> None:
    text = "Ada Stone, who runs the firm, was in Berlin.\n\nThe chief executive warned about tariffs."
    assert rules_of(matcher, "News", text) == {"acme-warns"}


def test_words_inside_a_name_are_not_a_reference(matcher: Matcher) -> None:
    # "the company" here is followed by the name itself; nothing is resolved twice or wrongly.
    assert rules_of(matcher, "News", "Zenith spoke. Then the company Acme warned.") == {"acme-warns"}


# -- sections -------------------------------------------------------------------------------

ROUNDUP = """Good morning. Here is what we are watching today.

Chip makers rally
Semiconductor shares rose for a third day as orders picked up.

Tariffs bite at Acme
Acme Motors said tariffs would cost it more next year, and tariffs on parts even more.

Weather
Storms are expected in the north.
"""


def test_a_section_heading_serves_as_the_title_of_its_section(matcher: Matcher) -> None:
    assert rules_of(matcher, "Morning briefing: chips, cars and storms", ROUNDUP) == {"tariff-story"}


def test_the_heading_of_one_section_is_not_the_title_of_another(matcher: Matcher) -> None:
    # Acme is in the chips section; the tariffs section (its heading names tariffs) is about retailers.
    text = ROUNDUP.replace("Tariffs bite at Acme\nAcme Motors said", "Tariffs bite retailers\nRetailers said")
    text = text.replace(
        "Chip makers rally\nSemiconductor shares rose", "Chip makers rally\nAcme shares rose on tariff relief"
    )
    assert rules_of(matcher, "Morning briefing", text) == set()


def test_headings_are_found_only_where_a_document_has_several() -> None:
    doc = index("T", ROUNDUP)
    assert len(doc.sections) == 4  # the lead and three headed sections
    assert [doc.full[doc.span(lo)[0] : doc.span(lo)[1]] for lo, _, _ in doc.sections[1:]] == [
        "Chip",
        "Tariffs",
        "Weather",
    ]
    plain = index("T", "One paragraph.\n\nA short line\n\nAnother paragraph of text.")
    assert plain.sections == []


def test_questions_open_sections_of_a_q_and_a() -> None:
    text = (
        "Q: What did Acme announce?\n\nA new plant.\n\n"
        "Q: Why now?\n\nDemand is up.\n\nWhat happens next?\n\nHiring starts in May."
    )
    assert len(index("Explainer", text).sections) == 4


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["a", "b", "c"])), max_size=12),
    st.dictionaries(st.integers(0, 30), st.booleans(), max_size=12),
)
def test_resolution_only_names_listed_entities_named_before(
    mentions: list[tuple[int, str]], words: dict[int, bool]
) -> None:
    """Whatever the positions, a word resolves only to an entity that lists it and was named
    before it, and a pronoun only to an entity of the last mention before it, one paragraph back
    at most."""
    timeline = coref.Timeline(((3 * p, 3 * p + 1), e) for p, e in mentions)
    listed = frozenset({"a", "b"})
    occ = [((3 * p + 2, 3 * p + 3), coref.Referent(coref.ORG, listed, nearby)) for p, nearby in words.items()]
    paragraph = lambda w: w // 9  # noqa: E731
    out = coref.resolve({coref.ORG: timeline}, occ, paragraph)
    for entity, spans in out.items():
        assert entity in listed
        for s, _ in spans:
            before = [(3 * p + 1, e) for p, e in mentions if 3 * p + 1 <= s]
            assert entity in {e for _, e in before}
            if words[(s - 2) // 3]:
                last_end = max(end for end, _ in before)
                assert entity in {e for end, e in before if end == last_end}
                assert paragraph(last_end - 1) >= paragraph(s) - 1
