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
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.grammar import Rule as LarkRule
from lark.lexer import TerminalDef

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> not_
         | near_expr
?near_expr: atom (NEAR atom)*
?atom: "(" or_expr ")"
     | FIELD ":" atom -> field
     | SCOPE "(" or_expr ")" -> scope
     | _ATLEAST "(" INT "," or_expr ")" -> atleast
     | term
term: PHRASE -> phrase
    | CASE PHRASE -> case_phrase
    | CASE WORD -> case_word
    | ENTITY -> entity
    | LIST -> listref
    | WORD -> word
    | INT -> word

_OR.3: /OR(?![^\s()",:@$#])/
_AND.3: /AND(?![^\s()",:@$#])/
_NOT.3: /NOT(?![^\s()",:@$#])/
NEAR.3: /NEAR\/[0-9]+(?![^\s()",:@$#])/
FIELD.3: /(title|text)(?=\s*:)/
SCOPE.3: /(sentence|paragraph)(?=\s*\()/
_ATLEAST.3: /atleast(?=\s*\()/
CASE.3: "case:"
PHRASE: /"[^"\n]*"/
ENTITY: /@[a-z0-9][a-z0-9-]*\+?/
LIST: /\$[a-z0-9][a-z0-9_-]*/
INT.2: /[0-9]+(?![^\s()",:@$#])/
WORD: /[^\s()",:@$#]+/
COMMENT: /#[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""

#: Characters in one query (or one entry of a term list).
MAX_QUERY_CHARS = 50_000
#: Operators nested in one another (AND, OR, NOT, each NEAR/n, title:/text:, sentence(), paragraph(),
#: atleast(), and the OR that a term list stands for), after term lists are expanded.
MAX_DEPTH = 32
#: Terms of one rule after term lists are expanded: words and phrases, and for an entity or group
#: every name, exclusion and context term of the entities it stands for (counted by the caller).
MAX_TERMS = 5_000
#: Largest n of NEAR/n (words between the two sides).
MAX_NEAR = 1_000
#: Largest n of atleast(n, ...).
MAX_ATLEAST = 1_000
#: Letters or digits that must stand right before every ``*``.
MIN_WILDCARD_PREFIX = 2

# Readable names for what the parser expected.
_EXPECTED = {
    "_OR": "OR",
    "_AND": "AND",
    "_NOT": "NOT",
    "NEAR": "NEAR/n",
    "FIELD": "title: or text:",
    "SCOPE": "sentence( or paragraph(",
    "_ATLEAST": "atleast(",
    "CASE": "case:",
    "PHRASE": '"a phrase"',
    "ENTITY": "@entity",
    "LIST": "$list",
    "INT": "a number",
    "WORD": "a word",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "COLON": ":",
    "$END": "end of query",
}


class QuerySyntaxError(ValueError):
    """A query that does not parse; ``line`` and ``column`` are 1-based, within the query."""

    def __init__(self, message: str, line: int, column: int, expected: str | None = None) -> None:
        self.line = line
        self.column = column
        self.expected = expected
        super().__init__(message)


class QueryLimitError(QuerySyntaxError):
    """A query beyond one of the documented limits (rules/README.md, "Limits")."""


@dataclass(frozen=True, slots=True)
class Size:
    """How deep the operators of a (sub)query nest and how many terms it has, lists expanded."""

    depth: int
    terms: int


@dataclass(frozen=True, slots=True)
class Node:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Term(Node):
    """A word or phrase; ``words`` as written (``*`` kept), matched per word."""

    text: str
    case_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class EntityRef(Node):
    name: str
    related: bool = False  #: ``@ford+``: also entities related to it


@dataclass(frozen=True, slots=True)
class ListRef(Node):
    """``$name``: one of the rule file's named term lists (resolved when the rule loads)."""

    name: str


@dataclass(frozen=True, slots=True)
class And(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or(Node):
    children: tuple[Node, ...]
    label: str = ""  #: "$name" when this is an expanded term list


@dataclass(frozen=True, slots=True)
class Not(Node):
    child: Node


@dataclass(frozen=True, slots=True)
class Near(Node):
    left: Node
    right: Node
    distance: int


@dataclass(frozen=True, slots=True)
class Field(Node):
    field: str  #: "title" or "text"
    child: Node


@dataclass(frozen=True, slots=True)
class Scope(Node):
    scope: str  #: "sentence" or "paragraph"
    child: Node


@dataclass(frozen=True, slots=True)
class AtLeast(Node):
    count: int
    child: Node


def _pos(item: Any) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.line or 1, item.column or 1
    if isinstance(item, Node):
        return item.line, item.column
    return 1, 1


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


def _bounded_int(digits: str, limit: int, tok: Token, what: str, expected: str) -> int:
    """``digits`` as a number, or QueryLimitError when it is above ``limit`` (checked before converting:
    Python refuses to convert more than 4,300 digits)."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        shown = digits if len(digits) <= 12 else f"a {len(digits)}-digit number"
        raise QueryLimitError(f"{what} {shown} is above the limit of {limit:,}", *_pos(tok), expected=expected)
    return int(digits)


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


_LAST_RUN = re.compile(r"[^\W_]*$")  #: the letters and digits that end a string (a word of textindex)


def _check_wildcards(text: str, line: int, column: int) -> None:
    for word in text.split():
        if "*" in word.rstrip("*") and word.strip("*"):
            raise QuerySyntaxError(
                f"wildcard inside {word!r}", line, column, expected="'*' only at the end of a word, e.g. partner*"
            )
        if word.endswith("*"):
            stem = word.rstrip("*")
            found = _LAST_RUN.search(stem)
            if found is None or len(found.group()) < MIN_WILDCARD_PREFIX:
                raise QueryLimitError(
                    f"wildcard {word!r} matches too many words",
                    line,
                    column,
                    expected=f"at least {MIN_WILDCARD_PREFIX} letters or digits before a '*' at the end of a word,"
                    " e.g. partner*",
                )


#: The parser's tables, built from GRAMMAR once and shipped: building them costs more than
#: loading every rule (tests/test_query.py checks they are current; ``save_tables()`` rewrites them).
TABLES = Path(__file__).with_name("query_tables.json")


def _build_parser() -> Lark:
    # LALR parses with a stack of its own, not by recursion; positions let _check_depth point at an operator.
    return Lark(GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False, propagate_positions=True)


def _tables_key() -> str:
    return hashlib.sha256(f"{lark.__version__}\n{GRAMMAR}".encode()).hexdigest()


def _int_keys(obj: dict[str, Any]) -> dict[Any, Any]:
    # JSON keys are strings; the tables number their states.
    return {int(k) if k.isdigit() else k: v for k, v in obj.items()}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The query parser, from the shipped tables when they were built from this grammar by this
    version of lark, else built afresh (the same parser, a tenth of a second later)."""
    try:
        saved = json.loads(TABLES.read_text(encoding="utf-8"), object_hook=_int_keys)
        if saved.get("key") == _tables_key():
            parser: Lark = Lark._load_from_dict(saved["data"], saved["memo"])  # type: ignore[no-untyped-call]
            return parser  # (what Lark.load does, without pickle)
    except Exception:  # noqa: BLE001 - missing, stale or from another lark: build instead
        pass
    return _build_parser()


def save_tables(path: Path = TABLES) -> None:
    """Write the parser's tables (after a change to GRAMMAR or an upgrade of lark)."""
    data, memo = _build_parser().memo_serialize([TerminalDef, LarkRule])
    path.write_text(json.dumps({"key": _tables_key(), "data": data, "memo": memo}) + "\n", encoding="utf-8")


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


_OPERATORS = frozenset({"or_expr", "and_expr", "not_", "field", "scope", "atleast"})


def _too_deep(line: int, column: int) -> QueryLimitError:
    return QueryLimitError(
        f"operators nested more than {MAX_DEPTH} deep",
        line,
        column,
        expected=f"at most {MAX_DEPTH} nested operators and term lists",
    )


def _check_depth(tree: Tree[Token]) -> None:
    """QueryLimitError at the first operator nested more than MAX_DEPTH deep (iteratively: no recursion).

    Parentheses that group a single operand add nothing; ``a NEAR/1 b NEAR/1 c`` is two NEARs,
    one inside the other.
    """
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 0)]  #: (node, operators above it)
    while stack:
        node, above = stack.pop()
        if not isinstance(node, Tree):
            continue
        if node.data == "near_expr":
            # NEAR number i (1-based, left to right) stands at depth above + k - i + 1.
            k = (len(node.children) - 1) // 2
            if above + k > MAX_DEPTH:
                raise _too_deep(*_pos(node.children[2 * (above + k - MAX_DEPTH) - 1]))
            stack.append((node.children[0], above + k))
            stack.extend((node.children[2 * j], above + k - j + 1) for j in range(1, k + 1))
        elif node.data in _OPERATORS:
            if above >= MAX_DEPTH:
                raise _too_deep(node.meta.line, node.meta.column)
            stack.extend((child, above + 1) for child in node.children)


def measure(
    node: Node,
    lists: Mapping[str, Size] | None = None,
    entity_terms: Callable[[EntityRef], int] | None = None,
    *,
    above: int = 0,
    max_depth: int = MAX_DEPTH,
    max_terms: int = MAX_TERMS,
) -> Size:
    """Depth and terms of ``node`` with every ``$list`` expanded (``lists``: their sizes), counted without
    expanding anything; ``entity_terms`` counts the terms an entity stands for (default 1). ``above``:
    operators already around ``node`` (1 for an entry of a term list: the list's OR), included in the depth.

    QueryLimitError at the first node (in reading order) where the depth passes ``max_depth`` or the
    running count of terms passes ``max_terms``.
    """
    lists = lists or {}
    total, deepest = 0, above
    stack: list[tuple[Node, int]] = [(node, above)]  #: (node, operators around it); iterative: no recursion
    while stack:
        n, around = stack.pop()
        if isinstance(n, ListRef):
            size = lists[n.name]
            level, terms = around + size.depth, size.terms
            if level > max_depth:
                raise QueryLimitError(
                    f"${n.name} nests {size.depth} operators deep inside {around} others:"
                    f" more than {max_depth} nested operators",
                    n.line,
                    n.column,
                    expected=f"at most {max_depth} nested operators and term lists",
                )
        elif isinstance(n, EntityRef):
            level, terms = around, max(1, entity_terms(n)) if entity_terms else 1
        elif isinstance(n, Term):
            level, terms = around, 1
        else:
            level, terms = around + 1, 0
            if level > max_depth:
                raise _too_deep(n.line, n.column)
            stack.extend((child, level) for child in reversed(children(n)))
        total += terms
        if total > max_terms:
            raise QueryLimitError(
                f"more than {max_terms:,} terms with term lists and entities expanded"
                + (f" (${n.name} alone stands for {terms:,})" if isinstance(n, ListRef) else ""),
                n.line,
                n.column,
                expected=f"at most {max_terms:,} terms in a rule",
            )
        deepest = max(deepest, level)
    return Size(depth=deepest, terms=total)


def _syntax_error(exc: UnexpectedInput, text: str) -> QuerySyntaxError:
    line, column = exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1
    expected: set[str] = set()
    if isinstance(exc, (UnexpectedToken, UnexpectedEOF)):
        expected = {str(e) for e in exc.expected}
    elif isinstance(exc, UnexpectedCharacters):
        expected = set(exc.allowed or ())
    names = sorted({_EXPECTED.get(e, e) for e in expected if not e.startswith("__")})
    lines = text.split("\n")
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        body = text.rstrip().split("\n")  # point just past the last character written
        line, column = len(body), len(body[-1]) + 1
        message = "the query ends too early"
    elif isinstance(exc, UnexpectedToken):
        message = f"unexpected {str(exc.token)!r}"
        if exc.token.type == "WORD" and str(exc.token).upper() in ("AND", "OR", "NOT"):
            message += " (operators are upper case: AND, OR, NOT)"
        elif exc.token.type in ("WORD", "PHRASE", "ENTITY"):
            message += " (join terms with AND, OR or NEAR/n)"
    else:
        source = lines[line - 1] if line <= len(lines) else ""
        message = f"unexpected character {source[column - 1]!r}" if column <= len(source) else "unexpected input"
    return QuerySyntaxError(message, line, column, expected=", ".join(names) or None)


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents first."""
    out = [node]
    for child in children(node):
        out.extend(walk(child))
    return out


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (And, Or)):
        return node.children
    if isinstance(node, (Not, Field, Scope, AtLeast)):
        return (node.child,)
    if isinstance(node, Near):
        return (node.left, node.right)
    return ()


def substitute(node: Node, lists: dict[str, Node]) -> Node:
    """The tree with every ``$name`` replaced by ``lists[name]`` (KeyError for an unknown list)."""
    if isinstance(node, ListRef):
        return lists[node.name]
    if isinstance(node, And):
        return And(node.line, node.column, tuple(substitute(c, lists) for c in node.children))
    if isinstance(node, Or):
        return Or(node.line, node.column, tuple(substitute(c, lists) for c in node.children), node.label)
    if isinstance(node, Not):
        return Not(node.line, node.column, substitute(node.child, lists))
    if isinstance(node, Near):
        return Near(node.line, node.column, substitute(node.left, lists), substitute(node.right, lists), node.distance)
    if isinstance(node, Field):
        return Field(node.line, node.column, node.field, substitute(node.child, lists))
    if isinstance(node, Scope):
        return Scope(node.line, node.column, node.scope, substitute(node.child, lists))
    if isinstance(node, AtLeast):
        return AtLeast(node.line, node.column, node.count, substitute(node.child, lists))
    return node
