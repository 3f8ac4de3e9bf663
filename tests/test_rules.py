"""tracker.rules.ruleset: rule files, the entity catalogue, validation errors and content hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.core.errors import RuleError
from tracker.rules.query import And, EntityRef, Or, Term
from tracker.rules.ruleset import Entity, RuleSet, check_rules, load_rules

ENTITIES = """\
[ford]
type = "org"
names = ["Ford", "Ford Motor"]
exclude = ["Harrison Ford"]
groups = ["detroit"]

[ford-executives]
type = "person"
names = ["Jim Farley", "Farley"]
ambiguous = ["Farley"]
context = ["Ford", "CEO"]
related_to = ["ford"]

[gm]
type = "org"
names = ["GM", "General Motors"]
ambiguous = ["GM"]
context = ["car*", "case:EV"]
groups = ["detroit", "big-three"]

[byd]
type = "org"
names = ["BYD"]

[detroit]
type = "group"
names = ["Detroit automakers"]
"""

SIMPLE = "id = \"topic\"\nquery = '@ford AND deal'\n"
PLAIN = "id = \"topic\"\nquery = 'deal'\n"


def write(folder: Path, files: dict[str, str], entities: str | None = ENTITIES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if entities is not None:
        (folder / "entities.toml").write_text(entities, encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def errors_of(tmp_path: Path, files: dict[str, str], entities: str | None = ENTITIES) -> list[RuleError]:
    return check_rules([write(tmp_path / "rules", files, entities)])[1]


def one_error(tmp_path: Path, rule: str, entities: str | None = ENTITIES) -> RuleError:
    errors = errors_of(tmp_path, {"topic.toml": rule}, entities)
    assert len(errors) == 1, errors
    return errors[0]


def entity_error(tmp_path: Path, entities: str) -> RuleError:
    return one_error(tmp_path, PLAIN, entities)


def load(tmp_path: Path, rule: str = SIMPLE, entities: str = ENTITIES) -> RuleSet:
    return load_rules([write(tmp_path / "rules", {"topic.toml": rule}, entities)])


# --- rule files -------------------------------------------------------------------------------


FULL_RULE = """\
# a topic
id = "ford-deals"
title = "Ford deals"
description = "Ford signs something."
owner = "autos-desk"
priority = 2
threshold = 2
query = '''
@ford AND $deal
'''

[terms]
deal = ["joint venture*", "partner*", "@byd", "case:JV"]
"""


def test_rule_keys(tmp_path: Path) -> None:
    rs = load(tmp_path, FULL_RULE)
    (rule,) = rs.rules
    assert rule.id == "ford-deals"
    assert rule.title == "Ford deals"
    assert rule.description == "Ford signs something."
    assert rule.owner == "autos-desk"
    assert rule.priority == 2
    assert rule.threshold == 2.0 and isinstance(rule.threshold, float)
    assert rule.query == "@ford AND $deal\n"
    assert rule.source == str(tmp_path / "rules" / "topic.toml")
    assert (rule.query_line, rule.query_column) == (9, 1)
    assert len(rule.content_hash) == 16
    assert rs.get("ford-deals") is rule and rs.get("nope") is None


def test_term_list_is_substituted_as_a_labelled_or(tmp_path: Path) -> None:
    node = load(tmp_path, FULL_RULE).queries["ford-deals"]
    assert isinstance(node, And)
    ford, deal = node.children
    assert ford == EntityRef(1, 1, name="ford")
    assert isinstance(deal, Or) and deal.label == "$deal"
    assert [c for c in deal.children if isinstance(c, Term)] == [
        Term(1, 1, "joint venture*"),
        Term(1, 1, "partner*"),
        Term(1, 1, "JV", case_sensitive=True),
    ]
    assert [c.name for c in deal.children if isinstance(c, EntityRef)] == ["byd"]


def test_rule_defaults(tmp_path: Path) -> None:
    (rule,) = load(tmp_path).rules
    assert (rule.title, rule.description, rule.owner) == ("topic", "", "")
    assert (rule.threshold, rule.priority) == (1.0, 0)


def test_single_line_query_position(tmp_path: Path) -> None:
    (rule,) = load(tmp_path, "id = \"topic\"\n\nquery   =  '@ford AND deal'\n").rules
    assert (rule.query_line, rule.query_column) == (3, 13)


@pytest.mark.parametrize(
    ("rule", "line", "words"),
    [
        ('id = "topic"\nquery = \'deal\'\ncolour = "red"\n', 3, "unknown key 'colour'"),
        ('id = "topic"\ntitel = "x"\nquery = \'deal\'\n', 2, "unknown key 'titel'"),
        ('id = "topic"\nquery = \'deal\'\nthreshold = "high"\n', 3, "threshold"),
        ("id = \"topic\"\nquery = 'deal'\nthreshold = -1\n", 3, "threshold"),
        ("id = \"topic\"\nquery = 'deal'\npriority = 1.5\n", 3, "priority"),
        ("id = \"topic\"\nquery = 'deal'\npriority = true\n", 3, "priority"),
        ('title = "x"\nid = "Topic_1"\nquery = \'deal\'\n', 2, "bad id"),
    ],
)
def test_bad_rule_keys_name_the_line(tmp_path: Path, rule: str, line: int, words: str) -> None:
    err = one_error(tmp_path, rule)
    assert words in str(err)
    assert err.line == line
    assert err.path == str(tmp_path / "rules" / "topic.toml")
    assert f"topic.toml:{line}:" in str(err)


def test_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    err = one_error(tmp_path, 'id = "topic"\nquery = \'deal\'\nwindow = "sentence"\n')
    assert err.expected is not None
    for key in ("id", "title", "description", "query", "threshold", "priority", "owner", "terms"):
        assert key in err.expected


def test_missing_query(tmp_path: Path) -> None:
    err = one_error(tmp_path, 'id = "topic"\ntitle = "No query"\n')
    assert "missing query" in str(err)


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    err = one_error(tmp_path, 'id = "topic"\ntitle = = "x"\nquery = \'deal\'\n')
    assert "not valid TOML" in str(err)
    assert err.line == 2
    assert err.source_line == 'title = = "x"'


def test_query_syntax_error_is_located_in_the_file(tmp_path: Path) -> None:
    rule = "id = \"topic\"\nquery = '''\n@ford AND\n    (deal OR\n'''\n"
    err = one_error(tmp_path, rule)
    assert "ends too early" in str(err)
    assert err.line == 4
    err = one_error(tmp_path, "id = \"topic\"\nquery = '@ford and deal'\n")
    assert (err.line, err.column) == (2, 16)
    assert "operators are upper case" in str(err)


# --- unknown entities and lists --------------------------------------------------------------


MULTILINE_UNKNOWN = """\
id = "topic"
title = "x"
query = '''
deal AND
    (@frod OR partner*)
'''
"""


def test_unknown_entity_in_a_multiline_query(tmp_path: Path) -> None:
    err = one_error(tmp_path, MULTILINE_UNKNOWN)
    assert (err.line, err.column) == (5, 6)
    assert err.source_line == "    (@frod OR partner*)"
    assert err.source_line[err.column - 1 :].startswith("@frod")
    assert str(err).startswith(f"{tmp_path / 'rules' / 'topic.toml'}:5:6: unknown entity @frod")
    assert "did you mean @ford?" in str(err)
    assert err.expected == "an entity or group defined in entities.toml"


def test_unknown_entity_in_a_single_line_query(tmp_path: Path) -> None:
    err = one_error(tmp_path, "id = \"topic\"\nquery = 'deal AND @toyota+'\n")
    assert (err.line, err.column) == (2, 19)
    assert err.source_line is not None and err.source_line[err.column - 1 :].startswith("@toyota+")
    assert "unknown entity @toyota" in str(err)
    assert "did you mean" not in str(err)


def test_unknown_entity_on_the_first_line_of_a_multiline_literal(tmp_path: Path) -> None:
    err = one_error(tmp_path, "id = \"topic\"\nquery = '''deal AND @detriot\n  OR partner*'''\n")
    assert (err.line, err.column) == (2, 21)
    assert "did you mean @detroit?" in str(err)


def test_first_unknown_entity_is_reported(tmp_path: Path) -> None:
    err = one_error(tmp_path, "id = \"topic\"\nquery = '''\n@zzz AND\n@ford AND @aaa\n'''\n")
    assert (err.line, err.column) == (3, 1)
    assert "@zzz" in str(err)


def test_details_show_the_source_line_and_a_caret(tmp_path: Path) -> None:
    err = one_error(tmp_path, MULTILINE_UNKNOWN)
    first, source, caret = err.details().splitlines()
    assert first == str(err)
    assert source == "    " + "    (@frod OR partner*)"
    assert caret.strip() == "^"
    assert source[caret.index("^")] == "@"


def test_details_without_a_column_have_no_caret(tmp_path: Path) -> None:
    err = one_error(tmp_path, "id = \"topic\"\nquery = 'deal'\ncolour = 1\n")
    assert err.details() == str(err)
    err = RuleError("bad", path="f.toml", line=1, source_line="x = 1")
    assert err.details().splitlines() == ["f.toml:1: bad", "    x = 1"]


def test_group_names_and_undeclared_groups_are_known_refs(tmp_path: Path) -> None:
    rs = load(tmp_path, "id = \"topic\"\nquery = '@detroit OR @big-three OR @ford+'\n")
    assert rs.known_refs() == {"ford", "ford-executives", "gm", "byd", "detroit", "big-three"}


def test_unknown_term_list_with_hint(tmp_path: Path) -> None:
    rule = "id = \"topic\"\nquery = '''\n@ford AND\n  $dael\n'''\n[terms]\ndeal = [\"deal\"]\n"
    err = one_error(tmp_path, rule)
    assert (err.line, err.column) == (4, 3)
    assert "unknown term list $dael (did you mean $deal?)" in str(err)


def test_unknown_term_list_without_terms_table(tmp_path: Path) -> None:
    err = one_error(tmp_path, "id = \"topic\"\nquery = '@ford AND $deal'\n")
    assert (err.line, err.column) == (2, 20)
    assert "$deal" in str(err) and "did you mean" not in str(err)


@pytest.mark.parametrize(
    ("terms", "words"),
    [
        ('deal = ["part*ner"]', "wildcard"),
        ('deal = ["ok", ""]', "non-empty list of strings"),
        ("deal = []", "non-empty list of strings"),
        ('deal = "partner*"', "non-empty list of strings"),
        ("deal = [1, 2]", "non-empty list of strings"),
        ('Deal = ["x"]', "bad term list name"),
        ('deal = ["@Ford"]', "bad term"),
        ('deal = ["case:"]', "bad term"),
    ],
)
def test_bad_term_list_entries(tmp_path: Path, terms: str, words: str) -> None:
    rule = f'id = "topic"\nquery = \'deal\'\n\n[terms]\nother = ["x"]\n{terms}\n'
    err = one_error(tmp_path, rule)
    assert words in str(err)
    assert err.line == 6


def test_terms_must_be_a_table(tmp_path: Path) -> None:
    err = one_error(tmp_path, 'id = "topic"\nquery = \'deal\'\nterms = ["x"]\n')
    assert "terms must be a table" in str(err)
    assert err.line == 3


def test_unknown_entity_in_a_term_list_points_at_the_list(tmp_path: Path) -> None:
    rule = 'id = "topic"\nquery = \'deal AND $partner\'\n\n[terms]\npartner = ["@byd", "@toyota"]\n'
    err = one_error(tmp_path, rule)
    assert "unknown entity @toyota" in str(err)
    assert err.line == 5


def test_duplicate_rule_id_across_files(tmp_path: Path) -> None:
    files = {"a.toml": SIMPLE, "b.toml": 'title = "Second"\nid = "topic"\nquery = \'deal\'\n'}
    rs, errors = check_rules([write(tmp_path / "rules", files)])
    (err,) = errors
    assert err.path == str(tmp_path / "rules" / "b.toml")
    assert err.line == 2
    assert "'topic'" in str(err) and str(tmp_path / "rules" / "a.toml") in str(err)
    assert [r.source for r in rs.rules] == [str(tmp_path / "rules" / "a.toml")]


def test_check_rules_collects_every_error_and_load_rules_raises_the_first(tmp_path: Path) -> None:
    files = {
        "a.toml": "id = \"a\"\nquery = '@nobody'\n",
        "b.toml": "id = \"b\"\nquery = 'deal AND'\n",
        "c.toml": SIMPLE,
        "d.toml": "id = \n",
    }
    folder = write(tmp_path / "rules", files)
    rs, errors = check_rules([folder])
    assert [r.id for r in rs.rules] == ["topic"]
    assert sorted(Path(e.path or "").name for e in errors) == ["a.toml", "b.toml", "d.toml"]
    with pytest.raises(RuleError) as info:
        load_rules([folder])
    assert str(info.value) == str(errors[0])


def test_rule_files_may_be_named_one_by_one(tmp_path: Path) -> None:
    folder = write(tmp_path / "rules", {"a.toml": SIMPLE, "b.toml": "id = \"b\"\nquery = 'x'\n"})
    rs = load_rules([folder / "entities.toml", folder / "b.toml"])
    assert [r.id for r in rs.rules] == ["b"]
    assert set(rs.entities) == {"ford", "ford-executives", "gm", "byd", "detroit"}


def test_missing_path(tmp_path: Path) -> None:
    rs, errors = check_rules([tmp_path / "nope"])
    assert rs.rules == ()
    assert len(errors) == 1 and "nope" in str(errors[0])


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    folder = write(tmp_path / "rules", {})
    (folder / "bad.toml").write_bytes(b"id = \"bad\"\nquery = '\xff'\n")
    (err,) = check_rules([folder])[1]
    assert "UTF-8" in str(err)


# --- entity catalogue ---------------------------------------------------------------------------


def test_entity_fields_and_defaults(tmp_path: Path) -> None:
    rs = load(tmp_path)
    gm = rs.entities["gm"]
    assert gm == Entity(
        id="gm",
        type="org",
        names=("GM", "General Motors"),
        ambiguous=("GM",),
        context=("car*", "case:EV"),
        groups=("detroit", "big-three"),
    )
    assert gm.case_sensitive is True and gm.context_scope == "document"
    assert rs.entities["detroit"].type == "group"
    assert rs.entities["ford-executives"].related_to == ("ford",)


def test_entity_names_are_trimmed_and_type_defaults_to_org(tmp_path: Path) -> None:
    rs = load(tmp_path, PLAIN, entities='[acme]\nnames = ["  Acme Corp "]\ncase_sensitive = false\n')
    assert rs.entities["acme"] == Entity(id="acme", type="org", names=("Acme Corp",), case_sensitive=False)


@pytest.mark.parametrize(
    ("entities", "line", "words"),
    [
        ('[x]\nnames = ["X"]\ntype = "company"\n', 3, "bad type 'company'"),
        ('[x]\nnames = ["X"]\nambiguous = ["Y"]\ncontext = ["car"]\n', 3, "ambiguous name 'Y'"),
        ('[x]\nnames = ["X"]\n\nambiguous = ["X"]\n', 4, "no context terms"),
        ('[x]\nnames = ["X"]\nambiguous = ["X"]\ncontext = ["car"]\ncontext_scope = "sentence"\n', 5, "context_scope"),
        ('[x]\nnames = "X"\n', 2, "names in [x] must be a list"),
        ('[x]\nnames = ["X", ""]\n', 2, "names in [x] must be a list"),
        ('[x]\nnames = ["X"]\nexclude = "X Y"\n', 3, "exclude in [x] must be a list"),
        ("[x]\nnames = []\n", 1, "[x] has no names"),
        ('[x]\ntype = "person"\n', 1, "[x] has no names"),
        ('[a]\nnames = ["A"]\n\n[x]\nnames = ["X"]\nflavour = "sour"\n', 6, "unknown key 'flavour' in [x]"),
        ('[X-Corp]\nnames = ["X"]\n', 1, "bad entity id"),
        ('[x]\nnames = ["X"]\ngroups = ["Big Three"]\n', 3, "bad id 'Big Three' in groups"),
        ('[x]\nnames = ["X"]\ncase_sensitive = "no"\n', 3, "case_sensitive"),
        ('[x]\nnames = ["X"]\nambiguous = ["X"]\ncontext = ["ca*r"]\n', 4, "bad context term"),
    ],
)
def test_entity_catalogue_validation(tmp_path: Path, entities: str, line: int, words: str) -> None:
    err = entity_error(tmp_path, entities)
    assert words in str(err)
    assert err.line == line
    assert err.path == str(tmp_path / "rules" / "entities.toml")


def test_group_entity_may_have_no_names(tmp_path: Path) -> None:
    rs = load(tmp_path, PLAIN, entities='[big]\ntype = "group"\n\n[x]\nnames = ["X"]\ngroups = ["big"]\n')
    assert rs.entities["big"].names == ()
    assert [e.id for e in rs.resolve("big")] == ["big", "x"]


def test_related_to_unknown_entity(tmp_path: Path) -> None:
    err = entity_error(tmp_path, '[x]\nnames = ["X"]\nrelated_to = ["nobody"]\n')
    assert "related_to unknown entity 'nobody'" in str(err)
    assert err.path == str(tmp_path / "rules" / "entities.toml")


def test_related_to_a_group_that_is_not_an_entity(tmp_path: Path) -> None:
    err = entity_error(tmp_path, '[x]\nnames = ["X"]\ngroups = ["g"]\n\n[y]\nnames = ["Y"]\nrelated_to = ["g"]\n')
    assert "related_to unknown entity 'g'" in str(err)


def test_related_to_unknown_entity_names_the_line(tmp_path: Path) -> None:
    err = entity_error(tmp_path, '[a]\nnames = ["A"]\n\n[x]\nnames = ["X"]\nrelated_to = ["nobody"]\n')
    assert err.line == 6


def test_entity_defined_twice_in_two_catalogues(tmp_path: Path) -> None:
    first = write(tmp_path / "one", {"topic.toml": SIMPLE})
    second = write(tmp_path / "two", {}, entities='\n[ford]\nnames = ["Ford Motor Co"]\n')
    _, errors = check_rules([first, second])
    (err,) = errors
    assert "'ford' is defined twice" in str(err)
    assert err.path == str(second / "entities.toml") and err.line == 2


def test_entity_errors_do_not_stop_the_rules(tmp_path: Path) -> None:
    rs, errors = check_rules(
        [write(tmp_path / "rules", {"topic.toml": SIMPLE}, ENTITIES + '\n[bad]\nnames = ["B"]\ntype = "thing"\n')]
    )
    assert [r.id for r in rs.rules] == ["topic"]
    assert len(errors) == 1 and "bad type" in str(errors[0])


# --- resolve ----------------------------------------------------------------------------------


def test_resolve_entity_group_and_related(tmp_path: Path) -> None:
    rs = load(tmp_path)
    assert [e.id for e in rs.resolve("ford")] == ["ford"]
    assert {e.id for e in rs.resolve("ford", related=True)} == {"ford", "ford-executives"}
    assert {e.id for e in rs.resolve("detroit")} == {"detroit", "ford", "gm"}  # the group's own names too
    assert {e.id for e in rs.resolve("detroit", related=True)} == {"detroit", "ford", "gm", "ford-executives"}
    assert {e.id for e in rs.resolve("big-three")} == {"gm"}  # a group without a table of its own
    assert {e.id for e in rs.resolve("gm", related=True)} == {"gm"}
    assert rs.resolve("nobody") == ()
    assert rs.resolve("ford-executives", related=True) == (rs.entities["ford-executives"],)


def test_only_keeps_the_named_rules(tmp_path: Path) -> None:
    folder = write(tmp_path / "rules", {"a.toml": SIMPLE, "b.toml": "id = \"b\"\nquery = 'x'\n"})
    rs = load_rules([folder])
    sub = rs.only(["b"])
    assert [r.id for r in sub.rules] == ["b"]
    assert set(sub.queries) == {"b"}
    assert sub.entities is rs.entities


# --- content hash -------------------------------------------------------------------------------


def hash_of(tmp_path: Path, name: str, rule: str, entities: str = ENTITIES) -> str:
    rs = load_rules([write(tmp_path / name, {"topic.toml": rule}, entities)])
    return rs.rules[0].content_hash


def test_content_hash_is_stable(tmp_path: Path) -> None:
    assert hash_of(tmp_path, "a", SIMPLE) == hash_of(tmp_path, "b", SIMPLE)


def test_content_hash_changes_with_the_rule_file(tmp_path: Path) -> None:
    base = hash_of(tmp_path, "a", SIMPLE)
    assert hash_of(tmp_path, "b", SIMPLE.replace("deal", "deals")) != base
    assert hash_of(tmp_path, "c", "# a comment\n" + SIMPLE) != base
    assert hash_of(tmp_path, "d", SIMPLE + 'owner = "desk"\n') != base


def test_content_hash_follows_the_entities_the_rule_uses(tmp_path: Path) -> None:
    base = hash_of(tmp_path, "a", SIMPLE)  # uses @ford
    ford_changed = ENTITIES.replace('names = ["Ford", "Ford Motor"]', 'names = ["Ford", "Ford Motor", "FoMoCo"]')
    gm_changed = ENTITIES.replace('context = ["car*", "case:EV"]', 'context = ["car*", "case:EV", "truck*"]')
    byd_added = ENTITIES + '\n[geely]\nnames = ["Geely"]\n'
    assert hash_of(tmp_path, "b", SIMPLE, ford_changed) != base
    assert hash_of(tmp_path, "c", SIMPLE, gm_changed) == base
    assert hash_of(tmp_path, "d", SIMPLE, byd_added) == base


def test_content_hash_follows_related_entities_only_for_plus(tmp_path: Path) -> None:
    execs_changed = ENTITIES.replace('context = ["Ford", "CEO"]', 'context = ["Ford", "CEO", "boss"]')
    plain = "id = \"topic\"\nquery = '@ford AND deal'\n"
    plus = "id = \"topic\"\nquery = '@ford+ AND deal'\n"
    assert hash_of(tmp_path, "a", plain) == hash_of(tmp_path, "b", plain, execs_changed)
    assert hash_of(tmp_path, "c", plus) != hash_of(tmp_path, "d", plus, execs_changed)


def test_content_hash_follows_group_members_and_term_list_entities(tmp_path: Path) -> None:
    group = "id = \"topic\"\nquery = '@detroit AND deal'\n"
    gm_changed = ENTITIES.replace('names = ["GM", "General Motors"]', 'names = ["GM", "General Motors", "Chevy"]')
    assert hash_of(tmp_path, "a", group) != hash_of(tmp_path, "b", group, gm_changed)
    listed = 'id = "topic"\nquery = \'deal AND $who\'\n[terms]\nwho = ["@gm"]\n'
    assert hash_of(tmp_path, "c", listed) != hash_of(tmp_path, "d", listed, gm_changed)
    byd_changed = ENTITIES.replace('names = ["BYD"]', 'names = ["BYD", "Build Your Dreams"]')
    assert hash_of(tmp_path, "e", group) == hash_of(tmp_path, "f", group, byd_changed)


def test_content_hash_follows_a_new_member_of_a_used_group(tmp_path: Path) -> None:
    group = "id = \"topic\"\nquery = '@detroit AND deal'\n"
    joined = ENTITIES.replace(
        '[byd]\ntype = "org"\nnames = ["BYD"]', '[byd]\ntype = "org"\nnames = ["BYD"]\ngroups = ["detroit"]'
    )
    assert joined != ENTITIES
    assert hash_of(tmp_path, "a", group) != hash_of(tmp_path, "b", group, joined)
