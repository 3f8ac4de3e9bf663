"""The rule query language: text → a small syntax tree (parsed with Lark).

    query      := or ; operators in upper case, tightest first: NEAR/n, NOT, AND, OR
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | near
    near       := atom ("NEAR/" n atom)*          at most n words between the two sides
    atom       := "(" or ")"
                | ("title" | "text") ":" atom      field scoping
                | ("sentence" | "paragraph") "(" or ")"   all of it inside one sentence/paragraph
                | "atleast" "(" n "," or ")"       n hits of a term, or n windows of a scope
                | term
    term       := word | "exact phrase" | @entity | @entity+ | case:word | case:"Phrase" | $list

Words and phrases match whole words, case-insensitively (``case:`` makes them
case-sensitive); ``*`` at the end of a word matches any ending; hyphens, apostrophes and
other punctuation separate words, so ``joint venture`` also matches "joint-venture".
``@ford`` is an entity of the catalogue (or a group: every member), ``@ford+`` adds the
entities related to it (its executives); ``$deal`` is a term list of the rule file
(``[terms] deal = [...]``), any one of its terms. Every syntax error carries a line and column.

Limits (rules/README.md, "Limits"): a query is at most ``MAX_QUERY_CHARS`` characters, its
operators nest at most ``MAX_DEPTH`` deep, ``NEAR/n`` and ``atleast(n, ...)`` take n up to
``MAX_NEAR`` and ``MAX_ATLEAST``, and every ``*`` follows at least ``MIN_WILDCARD_PREFIX``
letters or digits. ``measure`` checks depth and size (``MAX_TERMS``) after term lists are
expanded, without expanding them. A query beyond a limit raises QueryLimitError (a
QuerySyntaxError) at the offending spot; nothing here recurses deeper than ``MAX_DEPTH``.

The syntax tree is in querytree.py, the grammar and its parser tables in querygrammar.py, the
limits, errors and ``measure`` in querylimits.py; this module parses and re-exports their public names.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from tracker.rules.querygrammar import _parser, _syntax_error, save_tables
from tracker.rules.querylimits import (
    MAX_ATLEAST,
    MAX_DEPTH,
    MAX_NEAR,
    MAX_QUERY_CHARS,
    MAX_TERMS,
    MIN_WILDCARD_PREFIX,
    QueryLimitError,
    QuerySyntaxError,
    Size,
    _bounded_int,
    _check_depth,
    _check_wildcards,
    _too_deep,
    measure,
)
from tracker.rules.querytree import (
    And,
    AtLeast,
    EntityRef,
    Field,
    ListRef,
    Near,
    Node,
    Not,
    Or,
    Scope,
    Term,
    _pos,
    children,
    substitute,
    walk,
)

__all__ = [
    "MAX_ATLEAST",
    "MAX_DEPTH",
    "MAX_NEAR",
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "MIN_WILDCARD_PREFIX",
    "And",
    "AtLeast",
    "EntityRef",
    "Field",
    "ListRef",
    "Near",
    "Node",
    "Not",
    "Or",
    "QueryLimitError",
    "QuerySyntaxError",
    "Scope",
    "Size",
    "Term",
    "children",
    "measure",
    "parse_phrase",
    "parse_query",
    "save_tables",
    "substitute",
    "walk",
]


class _Build(Transformer[Token, Node]):
    @v_args(inline=True)
    def word(self, tok: Token) -> Node:
        _check_wildcards(str(tok), *_pos(tok))
        return Term(*_pos(tok), text=str(tok))

    @v_args(inline=True)
    def phrase(self, tok: Token) -> Node:
        text = str(tok)[1:-1].strip()
        if not text:
            raise QuerySyntaxError("empty phrase", *_pos(tok), expected='"some words"')
        _check_wildcards(text, *_pos(tok))
        return Term(*_pos(tok), text=text)

    @v_args(inline=True)
    def case_word(self, case: Token, tok: Token) -> Node:
        _check_wildcards(str(tok), *_pos(tok))
        return Term(*_pos(case), text=str(tok), case_sensitive=True)

    @v_args(inline=True)
    def case_phrase(self, case: Token, tok: Token) -> Node:
        text = str(tok)[1:-1].strip()
        if not text:
            raise QuerySyntaxError("empty phrase", *_pos(tok), expected='"Some Words"')
        _check_wildcards(text, *_pos(tok))
        return Term(*_pos(case), text=text, case_sensitive=True)

    @v_args(inline=True)
    def entity(self, tok: Token) -> Node:
        name = str(tok)[1:]
        related = name.endswith("+")
        return EntityRef(*_pos(tok), name=name.rstrip("+"), related=related)

    @v_args(inline=True)
    def listref(self, tok: Token) -> Node:
        return ListRef(*_pos(tok), name=str(tok)[1:])

    def or_expr(self, children: list[Node]) -> Node:
        return Or(*_pos(children[0]), children=tuple(children))

    def and_expr(self, children: list[Node]) -> Node:
        return And(*_pos(children[0]), children=tuple(children))

    @v_args(inline=True)
    def not_(self, child: Node) -> Node:
        return Not(child.line, max(1, child.column - 4), child=child)

    def near_expr(self, items: list[Any]) -> Node:
        node: Node = items[0]
        for i in range(1, len(items), 2):
            op, right = items[i], items[i + 1]
            for side in (node, right):
                if not _has_positions(side):
                    raise QuerySyntaxError(
                        f"{op} needs words, phrases, entities or groups of them on both sides",
                        *_pos(side),
                        expected="a term or (term OR term)",
                    )
            distance = _bounded_int(str(op).split("/")[1], MAX_NEAR, op, "NEAR distance", f"NEAR/n with n ≤ {MAX_NEAR}")
            node = Near(*_pos(op), left=node, right=right, distance=distance)
        return node

    @v_args(inline=True)
    def field(self, name: Token, child: Node) -> Node:
        return Field(*_pos(name), field=str(name), child=child)

    @v_args(inline=True)
    def scope(self, name: Token, child: Node) -> Node:
        return Scope(*_pos(name), scope=str(name), child=child)

    @v_args(inline=True)
    def atleast(self, count: Token, child: Node) -> Node:
        n = _bounded_int(str(count), MAX_ATLEAST, count, "atleast count", f"atleast(n, ...) with n ≤ {MAX_ATLEAST}")
        if n < 1:
            raise QuerySyntaxError("atleast needs a count of 1 or more", *_pos(count), expected="a number ≥ 1")
        return AtLeast(*_pos(count), count=n, child=child)


def _has_positions(node: Node) -> bool:
    """Terms, entities, and OR/NEAR/field combinations of them have positions; NOT has none."""
    if isinstance(node, (Term, EntityRef, ListRef)):
        return True
    if isinstance(node, Or):
        return all(_has_positions(c) for c in node.children)
    if isinstance(node, Near):
        return True
    if isinstance(node, Field):
        return _has_positions(node.child)
    return False


def parse_phrase(text: str, case_sensitive: bool = False) -> Node:
    """``text`` as the phrase ``"text"`` (``case:"text"``) of a query: what ``parse_query`` makes of it,
    without the parser when nothing in it needs one (term lists and context terms hold thousands)."""
    if '"' in text or "\n" in text or not text.strip() or len(text) > MAX_QUERY_CHARS - 7:
        return parse_query(('case:"' if case_sensitive else '"') + text + '"')
    stripped = text.strip()
    column = 6 if case_sensitive else 1  # a Term stands where case: or the phrase starts; the phrase's column
    _check_wildcards(stripped, 1, column)
    return Term(1, 1, text=stripped, case_sensitive=case_sensitive)


def parse_query(text: str) -> Node:
    """Parse a query; raise QuerySyntaxError with the line, column and what was expected
    (QueryLimitError when it is beyond a limit)."""
    if not text.strip():
        raise QuerySyntaxError("empty query", 1, 1, expected="a term")
    if len(text) > MAX_QUERY_CHARS:
        line = text.count("\n", 0, MAX_QUERY_CHARS) + 1
        column = MAX_QUERY_CHARS - (text.rfind("\n", 0, MAX_QUERY_CHARS) + 1) + 1
        raise QueryLimitError(
            f"the query is {len(text):,} characters long, more than the limit of {MAX_QUERY_CHARS:,}",
            line,
            column,
            expected="a shorter query: move long alternatives into [terms] lists",
        )
    try:
        tree = _parser().parse(text)
        _check_depth(tree)  # before the (recursive) transformation
        return _Build().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, QuerySyntaxError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):
            raise _too_deep(1, 1) from None
        raise
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except RecursionError:  # a last resort: _check_depth should have stopped it
        raise _too_deep(1, 1) from None
