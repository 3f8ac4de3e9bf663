"""One rule file read and checked: its keys, its query and candidate query (parsed, their term
lists and entities checked, measured against the limits), its ``[terms]`` lists, and its content hash."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.core.errors import RuleError
from tracker.core.types import Rule
from tracker.rules.catalogue import IDENT
from tracker.rules.locate import (
    _did_you_mean,
    _first_column,
    _line_in_table,
    _line_of,
    _located,
    _query_position,
    _reject_unknown_keys,
    _table_key_lines,
)
from tracker.rules.query import (
    MAX_DEPTH,
    MAX_TERMS,
    EntityRef,
    ListRef,
    Node,
    Or,
    QueryLimitError,
    QuerySyntaxError,
    Size,
    measure,
    parse_phrase,
    parse_query,
    substitute,
    walk,
)
from tracker.rules.rulefiles import limit_error, source_line

if TYPE_CHECKING:
    from tracker.rules.ruleset import RuleSet

_RULE_KEYS = {"id", "title", "description", "query", "candidate", "threshold", "priority", "owner", "terms"}


def _rule(
    data: Mapping[str, Any], path: Path, text: str, catalogue: RuleSet, weigh: Callable[[EntityRef], int]
) -> tuple[Rule, Node, Node | None, int]:
    """The rule, its query with term lists substituted, and its terms (as MAX_TERMS counts them)."""
    where = str(path)
    _reject_unknown_keys(data, _RULE_KEYS, where, "", lambda key: _line_of(text, key))
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not IDENT.match(rule_id):
        raise RuleError("missing or bad id", path=where, line=_line_of(text, "id"), expected='id = "lower-case-id"')
    query = data.get("query")
    if not isinstance(query, str):
        raise RuleError(
            "missing query",
            path=where,
            line=_line_of(text, "query"),
            expected="query = '''@entity AND (word OR \"a phrase\")'''",
        )
    known = catalogue.known_refs()
    lists, sizes = _term_lists(data, where, text, known, weigh)
    qline, qcol = _query_position(text, query)
    node, size = _checked_query(query, qline, qcol, where, text, known, lists, sizes, weigh)
    candidate_text = data.get("candidate")
    candidate: Node | None = None
    if candidate_text is not None:
        if not isinstance(candidate_text, str):
            raise RuleError("candidate must be a query string", path=where, line=_line_of(text, "candidate"))
        cline, ccol = _query_position(text, candidate_text)
        candidate, csize = _checked_query(candidate_text, cline, ccol, where, text, known, lists, sizes, weigh)
        size = Size(depth=max(size.depth, csize.depth), terms=size.terms + csize.terms)
    threshold = data.get("threshold", 1.0)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold < 0:
        raise RuleError("threshold must be a number ≥ 0", path=where, line=_line_of(text, "threshold"))
    priority = data.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise RuleError("priority must be a whole number", path=where, line=_line_of(text, "priority"))
    used_refs = {
        (n.name, n.related)
        for tree in (node, candidate)
        if tree is not None
        for n in walk(tree)
        if isinstance(n, EntityRef)
    }
    used = sorted({e.id for name, related in used_refs for e in catalogue.resolve(name, related)})
    entity_json = json.dumps([asdict(catalogue.entities[e]) for e in used], sort_keys=True)
    digest = hashlib.sha256((text + "\0" + entity_json).encode()).hexdigest()[:16]
    rule = Rule(
        id=rule_id,
        title=str(data.get("title") or rule_id),
        description=str(data.get("description") or ""),
        query=query,
        threshold=float(threshold),
        priority=priority,
        owner=str(data.get("owner") or ""),
        source=where,
        query_line=qline,
        query_column=qcol,
        content_hash=digest,
    )
    return rule, node, candidate, size.terms


def _checked_query(
    query: str,
    qline: int,
    qcol: int,
    where: str,
    text: str,
    known: set[str],
    lists: dict[str, Node],
    sizes: dict[str, Size],
    weigh: Callable[[EntityRef], int],
) -> tuple[Node, Size]:
    """A query of a rule file parsed, its lists and entities checked, measured against the limits and
    its term lists substituted."""
    qline, qcol = _query_position(text, query)
    try:
        node = parse_query(query)
    except QuerySyntaxError as exc:
        raise _located(exc, str(exc), where, text, qline, qcol, exc.line, exc.column, exc.expected) from None
    for ref in (n for n in walk(node) if isinstance(n, ListRef)):
        if ref.name not in lists:
            hint = _did_you_mean(ref.name, set(lists))
            raise _located(
                None,
                f"unknown term list ${ref.name}" + (f" (did you mean ${hint}?)" if hint else ""),
                where,
                text,
                qline,
                qcol,
                ref.line,
                ref.column,
                "a list defined under [terms]",
            )
    # The lists' own entities were checked with the lists; the query's are checked here, before the
    # lists are substituted (walking the substituted tree costs as much as its expansion).
    refs = sorted(
        {(n.name, n.line, n.column) for n in walk(node) if isinstance(n, EntityRef)}, key=lambda r: (r[1], r[2])
    )
    for name, line, column in refs:
        if name not in known:
            hint = _did_you_mean(name, known)
            raise _located(
                None,
                f"unknown entity @{name}" + (f" (did you mean @{hint}?)" if hint else ""),
                where,
                text,
                qline,
                qcol,
                line,
                column,
                "an entity or group defined in entities.toml",
            )
    try:
        size = measure(node, sizes, weigh)
    except QueryLimitError as exc:
        raise _located(exc, str(exc), where, text, qline, qcol, exc.line, exc.column, exc.expected) from None
    return substitute(node, lists), size


def _term_lists(
    data: Mapping[str, Any], where: str, text: str, known: set[str], weigh: Callable[[EntityRef], int]
) -> tuple[dict[str, Node], dict[str, Size]]:
    """``[terms] name = ["word", "a phrase", "partner*", "@entity", "(a sub-query)"]`` → name → OR node,
    and name → its Size (depth and terms once expanded, which MAX_DEPTH and MAX_TERMS bound).

    Entries are terms or, in parentheses, queries of their own, which may use other lists. A list
    used twice is one shared node, never copied, so the nodes stay as many as the entries.
    """
    table = data.get("terms", {})
    if not isinstance(table, dict):
        raise RuleError(
            "terms must be a table of lists",
            path=where,
            line=_line_of(text, "terms"),
            expected='[terms] name = ["...", "..."]',
        )
    key_lines = _table_key_lines(text, "terms")
    raw: dict[str, tuple[list[str], int | None]] = {}
    count = 0
    for name, entries in table.items():
        line = key_lines.get(name) or _line_in_table(text, "terms", name)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise RuleError(
                f"bad term list name {name!r}",
                path=where,
                line=line,
                expected="lower-case letters, digits, '-' and '_'",
            )
        if not isinstance(entries, list) or not entries or not all(isinstance(e, str) and e.strip() for e in entries):
            raise RuleError(
                f"term list {name!r} must be a non-empty list of strings",
                path=where,
                line=line,
                expected='["word", "a phrase", "@entity"]',
            )
        count += len(entries)
        if count > MAX_TERMS:
            raise limit_error(
                f"the term lists hold more than {MAX_TERMS:,} entries (list {name!r} passes the limit)",
                where,
                line,
                _first_column(text, line),
                f"at most {MAX_TERMS:,} entries in all lists of a rule",
            )
        raw[name] = ([e.strip() for e in entries], line)
    defined = set(raw)
    lists: dict[str, Node] = {}
    sizes: dict[str, Size] = {}
    resolving: list[str] = []

    def limit(message: str, line: int | None, expected: str) -> RuleError:
        return limit_error(message, where, line, _first_column(text, line), expected)

    def resolve(name: str) -> Node:
        if name in lists:
            return lists[name]
        entries, line = raw[name]
        if name in resolving:
            raise RuleError(f"term list {name!r} refers to itself", path=where, line=line)
        if len(resolving) >= MAX_DEPTH:  # every list is an OR: a longer chain nests too deep anyway
            chain = " → ".join(["$" + n for n in resolving[:3]] + ["…", "$" + name])
            raise limit(
                f"term lists refer to one another more than {MAX_DEPTH} deep ({chain})",
                line,
                f"at most {MAX_DEPTH} nested operators and term lists",
            )
        resolving.append(name)
        children = []
        depth = terms = 0
        for entry in entries:
            try:
                node = parse_query(entry) if entry.startswith(("@", "case:", "(")) else parse_phrase(entry)
            except QueryLimitError as exc:
                raise limit(f"term list {name!r}: {exc}", line, exc.expected or "") from None
            except QuerySyntaxError as exc:
                raise RuleError(
                    f"bad term {entry!r} in list {name!r}: {exc}", path=where, line=line, expected=exc.expected
                ) from None
            for ent in (n for n in walk(node) if isinstance(n, EntityRef)):
                if ent.name not in known:
                    hint = _did_you_mean(ent.name, known)
                    raise RuleError(
                        f"unknown entity @{ent.name} in list {name!r}" + (f" (did you mean @{hint}?)" if hint else ""),
                        path=where,
                        line=line,
                        source_line=source_line(text, line),
                        expected="an entity or group defined in entities.toml",
                    )
            used = {n.name for n in walk(node) if isinstance(n, ListRef)}
            for ref in sorted(used - defined):
                raise RuleError(
                    f"unknown term list ${ref} in list {name!r}",
                    path=where,
                    line=line,
                    expected="a list defined under [terms]",
                )
            resolved = {ref: resolve(ref) for ref in used}
            try:  # inside the list's OR
                size = measure(node, sizes, weigh, above=1)
            except QueryLimitError as exc:
                raise limit(f"term list {name!r}: {exc}", line, exc.expected or "") from None
            depth, terms = max(depth, size.depth), terms + size.terms
            if terms > MAX_TERMS:
                raise limit(
                    f"term list {name!r} stands for more than {MAX_TERMS:,} terms once expanded",
                    line,
                    f"at most {MAX_TERMS:,} terms in a rule",
                )
            children.append(substitute(node, resolved))
        resolving.pop()
        lists[name] = Or(line or 1, 1, tuple(children), label="$" + name)
        sizes[name] = Size(depth=depth, terms=terms)
        return lists[name]

    for name in raw:
        resolve(name)
    return lists, sizes
