"""tracker.rules.query: the rule query language (grammar, syntax tree, syntax errors)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tracker.rules.query import (
    And,
    AtLeast,
    EntityRef,
    Field,
    ListRef,
    Near,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Scope,
    Term,
    children,
    parse_query,
    substitute,
    walk,
)


def shape(node: Node) -> str:
    """The tree as fully parenthesised prefix text, without positions."""
    if isinstance(node, Term):
        return ("case:" if node.case_sensitive else "") + (f'"{node.text}"' if " " in node.text else node.text)
    if isinstance(node, EntityRef):
        return "@" + node.name + ("+" if node.related else "")
    if isinstance(node, ListRef):
        return "$" + node.name
    if isinstance(node, And):
        return "AND(" + ", ".join(shape(c) for c in node.children) + ")"
    if isinstance(node, Or):
        return "OR(" + ", ".join(shape(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"NOT({shape(node.child)})"
    if isinstance(node, Near):
        return f"NEAR{node.distance}({shape(node.left)}, {shape(node.right)})"
    if isinstance(node, Field):
        return f"{node.field}:({shape(node.child)})"
    if isinstance(node, Scope):
        return f"{node.scope}({shape(node.child)})"
    if isinstance(node, AtLeast):
        return f"atleast{node.count}({shape(node.child)})"
    raise TypeError(node)


def p(text: str) -> str:
    return shape(parse_query(text))


def syntax_error(text: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    return info.value


# --- precedence and grouping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("alpha OR beta AND gamma", "OR(alpha, AND(beta, gamma))"),
        ("alpha AND beta OR gamma", "OR(AND(alpha, beta), gamma)"),
        ("alpha AND beta OR gamma AND delta", "OR(AND(alpha, beta), AND(gamma, delta))"),
        ("NOT alpha AND beta", "AND(NOT(alpha), beta)"),
        ("NOT alpha OR beta", "OR(NOT(alpha), beta)"),
        ("alpha AND NOT beta", "AND(alpha, NOT(beta))"),
        ("NOT NOT alpha", "NOT(NOT(alpha))"),
        ("alpha NEAR/2 beta AND gamma", "AND(NEAR2(alpha, beta), gamma)"),
        ("alpha OR beta NEAR/1 gamma", "OR(alpha, NEAR1(beta, gamma))"),
        ("NOT alpha NEAR/3 beta", "NOT(NEAR3(alpha, beta))"),
        ("gamma AND NOT alpha NEAR/3 beta OR delta", "OR(AND(gamma, NOT(NEAR3(alpha, beta))), delta)"),
        ("alpha NEAR/2 beta NEAR/1 gamma", "NEAR1(NEAR2(alpha, beta), gamma)"),
    ],
)
def test_precedence_near_not_and_or(query: str, tree: str) -> None:
    assert p(query) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("(alpha OR beta) AND gamma", "AND(OR(alpha, beta), gamma)"),
        ("alpha AND (beta OR gamma)", "AND(alpha, OR(beta, gamma))"),
        ("NOT (alpha OR beta)", "NOT(OR(alpha, beta))"),
        ("(alpha OR beta) NEAR/5 gamma", "NEAR5(OR(alpha, beta), gamma)"),
        ("((alpha))", "alpha"),
        ("(alpha AND (beta OR (gamma AND delta)))", "AND(alpha, OR(beta, AND(gamma, delta)))"),
    ],
)
def test_parentheses_group(query: str, tree: str) -> None:
    assert p(query) == tree


def test_same_operator_chains_into_one_node() -> None:
    node = parse_query("alpha AND beta AND gamma")
    assert isinstance(node, And) and len(node.children) == 3
    node = parse_query("alpha OR beta OR gamma OR delta")
    assert isinstance(node, Or) and len(node.children) == 4 and node.label == ""


def test_whitespace_and_newlines_are_ignored() -> None:
    assert p("\n  alpha\n\n  AND\t\tbeta\n") == "AND(alpha, beta)"


@pytest.mark.parametrize(
    "query", ["alpha   # the first\n  AND beta", "# a note\nalpha AND beta", "alpha AND beta #note"]
)
def test_comments_are_ignored(query: str) -> None:
    assert p(query) == "AND(alpha, beta)"


# --- terms ------------------------------------------------------------------------------------


def test_word_is_a_case_insensitive_term() -> None:
    assert parse_query("Summit") == Term(1, 1, text="Summit", case_sensitive=False)


def test_phrase_keeps_its_words_and_trims_the_ends() -> None:
    node = parse_query('"  joint venture "')
    assert isinstance(node, Term)
    assert node.text == "joint venture"
    assert not node.case_sensitive


def test_phrase_protects_keywords_and_punctuation() -> None:
    assert p('"title" AND "paragraph"') == "AND(title, paragraph)"
    assert p('"AND" OR "F-150"') == "OR(AND, F-150)"
    assert p('"U.S.-China: talks"') == '"U.S.-China: talks"'


@pytest.mark.parametrize("query", ["partner*", '"joint venture*"', '"call* on"', '"joint* venture*"', "case:Partner*"])
def test_wildcard_at_the_end_of_a_word(query: str) -> None:
    node = parse_query(query)
    assert isinstance(node, Term)
    assert node.text == query.removeprefix("case:").strip('"')


@pytest.mark.parametrize(
    ("query", "column"),
    [
        ("part*ner", 1),
        ("*partner", 1),
        ("*", 1),
        ("alpha AND part*ner", 11),
        ('alpha OR "Chinese * makers"', 10),
        ('"joint ven*ture"', 1),
        ("case:pa*rt", 6),
    ],
)
def test_wildcard_inside_a_word_is_an_error(query: str, column: int) -> None:
    err = syntax_error(query)
    assert "wildcard" in str(err)
    assert (err.line, err.column) == (1, column)
    assert err.expected is not None and "end of a word" in err.expected


@pytest.mark.parametrize("query", ['case:"pa*rt"', 'case:"Chinese * Makers"'])
def test_wildcard_inside_a_case_phrase_is_an_error(query: str) -> None:
    with pytest.raises(QuerySyntaxError, match="wildcard"):
        parse_query(query)


def test_case_word_and_case_phrase() -> None:
    assert parse_query("case:GM") == Term(1, 1, text="GM", case_sensitive=True)
    node = parse_query('alpha OR case:"Detroit Three"')
    assert isinstance(node, Or)
    assert node.children[1] == Term(1, 10, text="Detroit Three", case_sensitive=True)


def test_case_is_only_a_prefix_with_a_colon() -> None:
    assert p("case AND caseload") == "AND(case, caseload)"


@pytest.mark.parametrize(
    ("query", "name", "related"),
    [
        ("@ford", "ford", False),
        ("@ford+", "ford", True),
        ("@us-automakers", "us-automakers", False),
        ("@f1+", "f1", True),
    ],
)
def test_entity_references(query: str, name: str, related: bool) -> None:
    assert parse_query(query) == EntityRef(1, 1, name=name, related=related)


def test_entity_reference_must_be_lower_case() -> None:
    err = syntax_error("alpha AND @Ford")
    assert (err.line, err.column) == (1, 11)
    assert "'@'" in str(err)


@pytest.mark.parametrize("name", ["deal", "not-a-deal", "deal_2"])
def test_list_reference(name: str) -> None:
    assert parse_query(f"${name}") == ListRef(1, 1, name=name)


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("title:alpha", "title:(alpha)"),
        ("text:alpha", "text:(alpha)"),
        ("title:(@ford AND beta)", "title:(AND(@ford, beta))"),
        ('text : "joint venture"', 'text:("joint venture")'),
        ("title:alpha AND beta", "AND(title:(alpha), beta)"),
        ("title:alpha NEAR/2 beta", "NEAR2(title:(alpha), beta)"),
    ],
)
def test_field_scoping(query: str, tree: str) -> None:
    assert p(query) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("sentence(@gm AND warn*)", "sentence(AND(@gm, warn*))"),
        ("paragraph(alpha AND NOT beta)", "paragraph(AND(alpha, NOT(beta)))"),
        ("paragraph(alpha) OR sentence(beta)", "OR(paragraph(alpha), sentence(beta))"),
        ("title:paragraph(alpha)", "title:(paragraph(alpha))"),
    ],
)
def test_sentence_and_paragraph_scopes(query: str, tree: str) -> None:
    assert p(query) == tree


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("atleast(3, @xi)", "atleast3(@xi)"),
        ("atleast(2, paragraph(@ford AND @byd))", "atleast2(paragraph(AND(@ford, @byd)))"),
        ("atleast( 2 , alpha OR beta )", "atleast2(OR(alpha, beta))"),
        ("atleast(2, 2026)", "atleast2(2026)"),
    ],
)
def test_atleast(query: str, tree: str) -> None:
    assert p(query) == tree


@pytest.mark.parametrize(("query", "column"), [("atleast(0, alpha)", 9), ("beta OR atleast(00, alpha)", 17)])
def test_atleast_needs_a_positive_count(query: str, column: int) -> None:
    err = syntax_error(query)
    assert "atleast" in str(err)
    assert (err.line, err.column) == (1, column)
    assert err.expected is not None and "number" in err.expected


@pytest.mark.parametrize("query", ["atleast(alpha, beta)", "atleast(2 alpha)", "atleast(2)", "atleast 2, alpha"])
def test_atleast_malformed(query: str) -> None:
    syntax_error(query)


@pytest.mark.parametrize(
    ("query", "distance"), [("alpha NEAR/0 beta", 0), ("alpha NEAR/5 beta", 5), ("a NEAR/12 b", 12)]
)
def test_near_distance(query: str, distance: int) -> None:
    node = parse_query(query)
    assert isinstance(node, Near) and node.distance == distance


@pytest.mark.parametrize(
    "query",
    [
        "(alpha OR beta) NEAR/3 gamma",
        "@ford+ NEAR/3 $deal",
        'case:GM NEAR/2 "joint venture"',
        "title:alpha NEAR/2 beta",
        "(alpha NEAR/1 beta) NEAR/4 gamma",
    ],
)
def test_near_accepts_terms_and_groups_of_terms(query: str) -> None:
    assert isinstance(parse_query(query), Near)


@pytest.mark.parametrize(
    "query",
    [
        "alpha NEAR/3 NOT beta",
        "(NOT alpha) NEAR/3 beta",
        "alpha NEAR/3 (beta OR NOT gamma)",
        "alpha NEAR/3 (beta AND gamma)",
        "alpha NEAR/3 paragraph(beta)",
        "atleast(2, alpha) NEAR/3 beta",
    ],
)
def test_near_needs_positions_on_both_sides(query: str) -> None:
    syntax_error(query)


def test_near_with_not_names_the_operator() -> None:
    err = syntax_error("(NOT alpha) NEAR/3 beta")
    assert "NEAR/3" in str(err)
    assert err.expected == "a term or (term OR term)"
    err = syntax_error("alpha NEAR/3\n  (beta AND NOT gamma)")
    assert (err.line, err.column) == (2, 4)


def test_near_needs_a_distance() -> None:
    err = syntax_error("alpha NEAR beta")
    assert "'NEAR'" in str(err)


@pytest.mark.parametrize("query", ["2026", "150", "2026-27", "F-150", "U.S.", "Ford's", "e-tron"])
def test_numbers_and_punctuated_words_are_words(query: str) -> None:
    assert parse_query(query) == Term(1, 1, text=query)


def test_number_inside_an_expression() -> None:
    assert p("2026 AND tariff* NEAR/3 25") == "AND(2026, NEAR3(tariff*, 25))"


@pytest.mark.parametrize(
    "word", ["textile", "titles", "sentences", "paragraphs", "atleastone", "ORACLE", "ANDROID", "NOTICE", "3M", "5G"]
)
def test_words_that_start_with_a_keyword_or_number(word: str) -> None:
    assert parse_query(word) == Term(1, 1, text=word)


def test_positions_are_line_and_column_within_the_query() -> None:
    node = parse_query("alpha AND\n  (beta OR @ford)")
    assert isinstance(node, And)
    alpha, group = node.children
    assert (alpha.line, alpha.column) == (1, 1)
    assert isinstance(group, Or)
    beta, ford = group.children
    assert (beta.line, beta.column) == (2, 4)
    assert (ford.line, ford.column) == (2, 12)


# --- syntax errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t\n"])
def test_empty_query(query: str) -> None:
    err = syntax_error(query)
    assert "empty" in str(err)
    assert (err.line, err.column) == (1, 1)


def test_query_of_only_a_comment_is_an_error() -> None:
    syntax_error("# nothing here")


@pytest.mark.parametrize(("query", "column"), [('""', 1), ('"   "', 1), ('alpha AND ""', 11)])
def test_empty_phrase(query: str, column: int) -> None:
    err = syntax_error(query)
    assert "empty phrase" in str(err)
    assert (err.line, err.column) == (1, column)
    assert err.expected == '"some words"'


def test_empty_case_phrase() -> None:
    with pytest.raises(QuerySyntaxError, match="empty phrase"):
        parse_query('case:""')


def test_query_that_ends_too_early() -> None:
    err = syntax_error("alpha AND")
    assert "ends too early" in str(err)
    assert (err.line, err.column) == (1, 10)
    assert err.expected is not None and "a word" in err.expected and '"a phrase"' in err.expected


def test_query_that_ends_too_early_on_a_later_line() -> None:
    err = syntax_error("alpha AND\n  (beta OR")
    assert (err.line, err.column) == (2, 11)


def test_unclosed_parenthesis_expects_a_closing_one() -> None:
    err = syntax_error("(alpha OR beta")
    assert err.expected is not None and ")" in err.expected.split(", ")


def test_unexpected_token_on_a_later_line() -> None:
    err = syntax_error("alpha\n  AND beta )")
    assert "unexpected ')'" in str(err)
    assert (err.line, err.column) == (2, 12)
    assert err.expected == "end of query"


def test_unexpected_character_on_a_later_line() -> None:
    err = syntax_error("alpha AND\n   beta AND @Ford")
    assert "unexpected character '@'" in str(err)
    assert (err.line, err.column) == (2, 13)


def test_two_terms_without_an_operator() -> None:
    err = syntax_error("alpha beta")
    assert "unexpected 'beta'" in str(err)
    assert "join terms with AND, OR or NEAR/n" in str(err)
    assert (err.line, err.column) == (1, 7)
    assert err.expected is not None and "AND" in err.expected.split(", ")


@pytest.mark.parametrize(
    ("query", "op"), [("alpha and beta", "and"), ("alpha or beta", "or"), ("alpha\n  And beta", "And")]
)
def test_lower_case_operator_hint(query: str, op: str) -> None:
    err = syntax_error(query)
    assert f"unexpected {op!r}" in str(err)
    assert "operators are upper case" in str(err)


def test_expected_is_readable() -> None:
    for query in ["alpha AND", "alpha beta", "(alpha", "atleast(2 alpha)", "title alpha", "alpha AND )"]:
        err = syntax_error(query)
        assert err.expected, query
        names = err.expected.split(", ")
        assert not any(n.startswith("_") or n in {"WORD", "PHRASE", "LPAR", "RPAR", "$END", "NEAR"} for n in names), (
            query,
            err.expected,
        )


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("title AND alpha", "AND(title, alpha)"),
        ("sentence OR paragraph", "OR(sentence, paragraph)"),
        ("atleast AND text", "AND(atleast, text)"),
        ("title :alpha", "title:(alpha)"),
        ("paragraph (alpha AND beta)", "paragraph(AND(alpha, beta))"),
        ("atleast (2, alpha)", "atleast2(alpha)"),
    ],
)
def test_keywords_are_words_without_their_syntax(query: str, tree: str) -> None:
    assert p(query) == tree


def test_syntax_error_is_a_value_error() -> None:
    assert issubclass(QuerySyntaxError, ValueError)


# --- tree helpers ---------------------------------------------------------------------------


def test_walk_lists_every_node_parents_first() -> None:
    node = parse_query("paragraph(alpha AND NOT beta) OR atleast(2, title:gamma NEAR/1 delta)")
    kinds = [type(n).__name__ for n in walk(node)]
    assert kinds == ["Or", "Scope", "And", "Term", "Not", "Term", "AtLeast", "Near", "Field", "Term", "Term"]
    assert children(parse_query("alpha")) == ()


def test_substitute_replaces_list_references() -> None:
    lists: dict[str, Node] = {"deal": Or(1, 1, (Term(1, 1, "deal"), Term(1, 1, "venture*")), label="$deal")}
    node = substitute(parse_query("@ford AND ($deal OR NOT $deal)"), lists)
    assert shape(node) == "AND(@ford, OR(OR(deal, venture*), NOT(OR(deal, venture*))))"
    with pytest.raises(KeyError):
        substitute(parse_query("$other"), lists)


# --- property: only QuerySyntaxError ever escapes ------------------------------------------------


def _parse_or_syntax_error(text: str) -> None:
    try:
        parse_query(text)
    except QuerySyntaxError as exc:
        assert exc.line >= 1 and exc.column >= 1
        assert exc.line <= max(1, text.count("\n") + 1)


# The examples: characters str.splitlines() breaks on but lark does not once raised IndexError.
@settings(max_examples=300, deadline=None)
@given(st.text())
@example("alpha\x0b")
@example("alpha\u2028beta")
@example("0\r\xa0")
@example("0\x0c\xa0")
def test_parse_query_never_raises_anything_but_syntax_errors(text: str) -> None:
    _parse_or_syntax_error(text)


_QUERYISH = st.lists(
    st.sampled_from(
        [
            *'abcXYZ019 *()":,@$+-_/\n\t',
            " AND ",
            " OR ",
            "NOT ",
            " NEAR/2 ",
            "case:",
            "title:",
            "paragraph(",
            "atleast(",
            "# note\n",
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_QUERYISH)
def test_parse_query_raises_only_syntax_errors_on_query_like_text(text: str) -> None:
    _parse_or_syntax_error(text)


def test_shipped_parser_tables_are_current() -> None:
    """The parser loads from tables built in advance (tracker/query_tables.json); after a change
    to the grammar or an upgrade of lark they must be rebuilt, or every start builds them again."""
    import json

    from tracker.rules import querygrammar

    saved = json.loads(querygrammar.TABLES.read_text(encoding="utf-8"))
    assert saved["key"] == querygrammar._tables_key(), (
        "stale parser tables: python -c 'from tracker.rules.query import save_tables; save_tables()'"
    )


@pytest.mark.parametrize(
    "text",
    [
        'ford AND (geely OR byd) NOT "recall"',
        '"joint venture" NEAR/5 @ford\n  AND case:"GM"',
        "atleast(2, a, b, c)",
        "partner* OR $list",
        "a AND",
        "(a OR b",
        "a NEAR/x b",
        "AND b",
    ],
)
def test_parser_from_tables_is_the_built_parser(text: str) -> None:
    """Same trees (with the positions errors point at) and the same errors, from either parser."""
    from tracker.rules import querygrammar

    shipped, built = querygrammar._parser(), querygrammar._build_parser()

    def outcome(parser: object) -> object:
        try:
            tree = parser.parse(text)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the error itself is what is compared
            where = (getattr(exc, "line", None), getattr(exc, "column", None))
            return type(exc).__name__, where, sorted(getattr(exc, "expected", None) or [])
        return tree, [(t.meta.line, t.meta.column) for t in tree.iter_subtrees() if not t.meta.empty]

    assert outcome(shipped) == outcome(built)
