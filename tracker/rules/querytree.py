"""The syntax tree of a query: its nodes (with the line and column each stands at) and the
helpers that walk and rewrite a tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lark import Token


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
