"""The limits of the query language (rules/README.md, "Limits"), the errors a query that does not
parse or passes a limit raises, and measuring a tree against the limits without expanding it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lark import Token, Tree

from tracker.rules.querytree import EntityRef, ListRef, Node, Term, _pos, children

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


def _bounded_int(digits: str, limit: int, tok: Token, what: str, expected: str) -> int:
    """``digits`` as a number, or QueryLimitError when it is above ``limit`` (checked before converting:
    Python refuses to convert more than 4,300 digits)."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        shown = digits if len(digits) <= 12 else f"a {len(digits)}-digit number"
        raise QueryLimitError(f"{what} {shown} is above the limit of {limit:,}", *_pos(tok), expected=expected)
    return int(digits)


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
