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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

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
        _check_wildcards(str(tok), tok)
        return Term(*_pos(tok), text=str(tok))

    @v_args(inline=True)
    def phrase(self, tok: Token) -> Node:
        text = str(tok)[1:-1].strip()
        if not text:
            raise QuerySyntaxError("empty phrase", *_pos(tok), expected='"some words"')
        _check_wildcards(text, tok)
        return Term(*_pos(tok), text=text)

    @v_args(inline=True)
    def case_word(self, case: Token, tok: Token) -> Node:
        _check_wildcards(str(tok), tok)
        return Term(*_pos(case), text=str(tok), case_sensitive=True)

    @v_args(inline=True)
    def case_phrase(self, case: Token, tok: Token) -> Node:
        text = str(tok)[1:-1].strip()
        if not text:
            raise QuerySyntaxError("empty phrase", *_pos(tok), expected='"Some Words"')
        _check_wildcards(text, tok)
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
            node = Near(*_pos(op), left=node, right=right, distance=int(str(op).split("/")[1]))
        return node

    @v_args(inline=True)
    def field(self, name: Token, child: Node) -> Node:
        return Field(*_pos(name), field=str(name), child=child)

    @v_args(inline=True)
    def scope(self, name: Token, child: Node) -> Node:
        return Scope(*_pos(name), scope=str(name), child=child)

    @v_args(inline=True)
    def atleast(self, count: Token, child: Node) -> Node:
        if int(count) < 1:
            raise QuerySyntaxError("atleast needs a count of 1 or more", *_pos(count), expected="a number ≥ 1")
        return AtLeast(*_pos(count), count=int(count), child=child)


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


def _check_wildcards(text: str, tok: Token) -> None:
    for word in text.split():
        if "*" in word.rstrip("*") or word.strip("*") == "":
            raise QuerySyntaxError(
                f"wildcard inside {word!r}", *_pos(tok), expected="'*' only at the end of a word, e.g. partner*"
            )


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)


def parse_query(text: str) -> Node:
    """Parse a query; raise QuerySyntaxError with the line, column and what was expected."""
    if not text.strip():
        raise QuerySyntaxError("empty query", 1, 1, expected="a term")
    try:
        tree = _parser().parse(text)
        return _Build().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, QuerySyntaxError):
            raise exc.orig_exc from None
        raise
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None


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
