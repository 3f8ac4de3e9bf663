"""Rule files and the entity catalogue → RuleSet.

``rules/<topic-id>.toml`` holds one rule: id, title, description, the query (tracker/query.py),
an optional threshold, priority and owner. ``rules/entities.toml`` defines the entities
(``@ford``) and, through ``groups``, the groups (``@chinese-automakers``) that queries refer
to. The format is documented in rules/README.md. Every problem is a RuleError naming the
file, line and column and what was expected; ``check_rules`` collects all of them.

``check_rules`` is the one gate every command goes through (``rules check`` directly, ``match``,
``poll``, ``run`` and the rest through ``load_rules``), and it keeps the documented limits
(rules/README.md, "Limits"): file size, number of rules and of catalogue strings, the query limits
of tracker/query.py, and terms per rule and in all rules, counted before anything is expanded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .classifier import MODEL_FILE, Model
from .classifier import load as load_model
from .errors import RuleError
from .query import (
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
from .rulefiles import (
    Budget,
    limit_error,
    read_toml,
    rule_files,
    source_line,
)
from .types import Rule

IDENT = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ENTITY_TYPES = {"org", "person", "place", "group"}
#: Errors that ``check_rules`` collects before it stops (each may cost a look through its file).
MAX_ERRORS = 50
#: Rule files in all.
MAX_RULES = 1_000
#: Terms of all rules together, counted as for MAX_TERMS (tracker/query.py).
MAX_TERMS_TOTAL = 20_000
#: Strings in the entity catalogue: names, exclude, ambiguous, context, not_context, groups, related_to.
MAX_CATALOGUE_STRINGS = 20_000
_RULE_KEYS = {"id", "title", "description", "query", "candidate", "threshold", "priority", "owner", "terms"}
_ENTITY_KEYS = {
    "type",
    "names",
    "case_sensitive",
    "exclude",
    "ambiguous",
    "context",
    "not_context",
    "context_scope",
    "groups",
    "related_to",
    "refer_as",
    "pronouns",
    "description",
}


@dataclass(frozen=True, slots=True)
class Entity:
    """A named thing a rule can refer to as ``@id``.

    ``names`` match as whole words (case-sensitively unless ``case_sensitive`` is false);
    a name inside one of the ``exclude`` phrases is not this entity; a name listed in
    ``ambiguous`` counts only when one of the ``context`` terms occurs in the same
    ``context_scope`` ("document" or "paragraph") and none of the ``not_context`` terms occurs
    in its paragraph.
    """

    id: str
    type: str
    names: tuple[str, ...]
    case_sensitive: bool = True
    exclude: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    not_context: tuple[str, ...] = ()
    context_scope: str = "document"
    groups: tuple[str, ...] = ()
    related_to: tuple[str, ...] = ()
    refer_as: tuple[str, ...] = ()  #: descriptions that stand for it once it is named ("the automaker")
    pronouns: tuple[str, ...] = ()  #: words that stand for it right after it is named ("she")
    description: str = ""


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    entities: Mapping[str, Entity] = field(default_factory=dict)
    queries: Mapping[str, Node] = field(default_factory=dict)  #: rule id → parsed query
    candidates: Mapping[str, Node] = field(default_factory=dict)  #: rule id → its looser candidate query
    model: Model | None = None  #: the topic models that confirm candidates (``model.json``)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def known_refs(self) -> set[str]:
        return set(self.entities) | {g for e in self.entities.values() for g in e.groups}

    def resolve(self, name: str, related: bool = False) -> tuple[Entity, ...]:
        """Entities that ``@name`` (``@name+`` with ``related``) stands for."""
        found: dict[str, Entity] = {}
        if name in self.entities:
            found[name] = self.entities[name]
        for ent in self.entities.values():
            if name in ent.groups:
                found[ent.id] = ent
        if related:
            heads = set(found)
            for ent in self.entities.values():
                if heads & set(ent.related_to):
                    found[ent.id] = ent
        return tuple(found.values())

    def only(self, rule_ids: Iterable[str]) -> RuleSet:
        wanted = set(rule_ids)
        rules = tuple(r for r in self.rules if r.id in wanted)
        return RuleSet(
            rules=rules,
            entities=self.entities,
            queries={r.id: self.queries[r.id] for r in rules},
            candidates={r.id: self.candidates[r.id] for r in rules if r.id in self.candidates},
            model=self.model,
        )


def load_rules(paths: Iterable[Path], *, model: bool = True) -> RuleSet:
    """Load and validate every rule and entity file; raise the first RuleError found.
    ``model=False``: leave the topic model out (to train a new one)."""
    ruleset, errors = check_rules(paths, model=model)
    if errors:
        raise errors[0]
    return ruleset


def check_rules(paths: Iterable[Path], *, model: bool = True) -> tuple[RuleSet, list[RuleError]]:
    """Load what can be loaded and collect every error (for ``tracker rules check``): at most
    MAX_ERRORS of them, then a last one saying that checking stopped."""
    errors: list[RuleError] = []
    try:
        rule_paths, entity_paths = rule_files(paths)
    except RuleError as exc:
        return RuleSet(rules=()), [exc]
    budget = Budget()
    entities: dict[str, Entity] = {}
    sources: dict[str, tuple[Path, str]] = {}
    strings = 0
    for path in entity_paths:
        if len(errors) >= MAX_ERRORS:
            break
        try:
            text, data = read_toml(path, budget)
        except RuleError as exc:
            errors.append(exc)
            continue
        for ent_id, table in data.items():
            if len(errors) >= MAX_ERRORS:
                break
            strings += _count_strings(table)
            if strings > MAX_CATALOGUE_STRINGS:
                line = _line_of(text, f"[{ent_id}]")
                errors.append(
                    limit_error(
                        f"the entity catalogue holds more than {MAX_CATALOGUE_STRINGS:,} names and terms",
                        str(path),
                        line,
                        _first_column(text, line),
                        f"at most {MAX_CATALOGUE_STRINGS:,} strings in all entities",
                    )
                )
                break
            try:
                ent = _entity(ent_id, table, path, text)
            except RuleError as exc:
                errors.append(exc)
                continue
            if ent.id in entities:
                errors.append(
                    RuleError(f"entity {ent.id!r} is defined twice", path=str(path), line=_line_of(text, f"[{ent.id}]"))
                )
            entities[ent.id] = ent
            sources[ent.id] = (path, text)
    errors.extend(_check_relations(entities, sources, MAX_ERRORS - len(errors)))
    catalogue = RuleSet(rules=(), entities=entities)
    rules: list[Rule] = []
    queries: dict[str, Node] = {}
    candidates: dict[str, Node] = {}
    seen: dict[str, Path] = {}
    weigh = _EntityTerms(catalogue)
    total = 0
    if len(rule_paths) > MAX_RULES:
        errors.append(
            limit_error(
                f"more than {MAX_RULES:,} rule files ({len(rule_paths):,})",
                str(rule_paths[MAX_RULES]),
                1,
                1,
                f"at most {MAX_RULES:,} rules",
            )
        )
        rule_paths = rule_paths[:MAX_RULES]
    for path in rule_paths:
        if len(errors) >= MAX_ERRORS:
            break
        try:
            text, data = read_toml(path, budget)
            rule, query, candidate, terms = _rule(data, path, text, catalogue, weigh)
            if rule.id in seen:
                raise RuleError(
                    f"rule id {rule.id!r} is also used by {seen[rule.id]}", path=str(path), line=_line_of(text, "id")
                )
            if total + terms > MAX_TERMS_TOTAL:
                raise limit_error(
                    f"this rule's {terms:,} terms bring all rules to more than {MAX_TERMS_TOTAL:,} terms",
                    str(path),
                    rule.query_line,
                    rule.query_column,
                    f"at most {MAX_TERMS_TOTAL:,} terms in all rules",
                )
            total += terms
            seen[rule.id] = path
            rules.append(rule)
            queries[rule.id] = query
            if candidate is not None:
                candidates[rule.id] = candidate
        except RuleError as exc:
            errors.append(exc)
    if len(errors) >= MAX_ERRORS:
        errors = errors[:MAX_ERRORS]
        errors.append(RuleError(f"stopped after {MAX_ERRORS} errors: correct these and check again"))
    topics = None
    try:
        topics = _model(paths) if model else None
    except RuleError as exc:
        errors.append(exc)
    if topics is not None:
        # A rule confirmed by the model changes when the model does (``tracker rematch`` re-tags).
        rules = [_with_model(r, topics) if r.id in candidates else r for r in rules]
    return RuleSet(rules=tuple(rules), entities=entities, queries=queries, candidates=candidates, model=topics), errors


class _EntityTerms:
    """What an ``@ref`` costs, as terms: the names, exclusions and context terms of the entities it
    stands for (each ref resolved once: resolving walks the whole catalogue)."""

    def __init__(self, catalogue: RuleSet) -> None:
        self.catalogue = catalogue
        self._cache: dict[tuple[str, bool], int] = {}

    def __call__(self, ref: EntityRef) -> int:
        key = (ref.name, ref.related)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = sum(
                len(e.names) + len(e.exclude) + len(e.context) + len(e.not_context)
                for e in self.catalogue.resolve(ref.name, ref.related)
            )
        return found


def _count_strings(table: Any) -> int:
    """Strings in the list values of an entity table (what MAX_CATALOGUE_STRINGS counts)."""
    if not isinstance(table, dict):
        return 0
    return sum(len(v) for v in table.values() if isinstance(v, list))


def _first_column(text: str, line: int | None) -> int:
    """Column of the first non-blank character of ``line`` (1 when there is none)."""
    source = source_line(text, line) or ""
    return len(source) - len(source.lstrip()) + 1


def _line_of(text: str, needle: str) -> int | None:
    """Line of ``key = ...`` when ``needle`` is a bare key, else of the first line containing it."""
    if re.fullmatch(r"[A-Za-z_][\w-]*", needle):
        m = re.search(rf"^\s*{re.escape(needle)}\s*=", text, re.M)
        if m:
            return text.count("\n", 0, m.start()) + 1
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return None


def _reject_unknown_keys(
    table: Mapping[str, Any], known: set[str], where: str, suffix: str, line_of: Callable[[str], int | None]
) -> None:
    unknown = set(table) - known
    if unknown:
        key = sorted(unknown)[0]
        raise RuleError(
            f"unknown key {key!r}{suffix}", path=where, line=line_of(key), expected="one of " + ", ".join(sorted(known))
        )


# -- entities ------------------------------------------------------------------------------


def _entity(ent_id: str, table: Any, path: Path, text: str) -> Entity:
    where = str(path)

    def head() -> int | None:  # looked up only for an error: a catalogue may hold thousands of entities
        return _line_of(text, f"[{ent_id}]")

    if not IDENT.match(ent_id):
        raise RuleError(
            f"bad entity id {ent_id!r}", path=where, line=head(), expected="lower-case letters, digits and '-'"
        )
    if not isinstance(table, dict):
        raise RuleError(f"{ent_id} is not a table", path=where, line=head(), expected=f"[{ent_id}]")
    _reject_unknown_keys(table, _ENTITY_KEYS, where, f" in [{ent_id}]", lambda key: _line_in_table(text, ent_id, key))
    etype = table.get("type", "org")
    if etype not in ENTITY_TYPES:
        raise RuleError(
            f"bad type {etype!r} in [{ent_id}]",
            path=where,
            line=_line_in_table(text, ent_id, "type"),
            expected=" or ".join(sorted(ENTITY_TYPES)),
        )
    strings = {
        k: _strings(table, k, path, text, ent_id)
        for k in (
            "names",
            "exclude",
            "ambiguous",
            "context",
            "not_context",
            "groups",
            "related_to",
            "refer_as",
            "pronouns",
        )
    }
    if not strings["names"] and etype != "group":
        raise RuleError(f"[{ent_id}] has no names", path=where, line=head(), expected='names = ["..."]')
    stray = set(strings["ambiguous"]) - set(strings["names"])
    if stray:
        raise RuleError(
            f"ambiguous name {sorted(stray)[0]!r} is not one of the names of [{ent_id}]",
            path=where,
            line=_line_in_table(text, ent_id, "ambiguous"),
            expected="a name listed in names",
        )
    if strings["ambiguous"] and not strings["context"]:
        raise RuleError(
            f"[{ent_id}] lists ambiguous names but no context terms",
            path=where,
            line=_line_in_table(text, ent_id, "ambiguous"),
            expected='context = ["..."]',
        )
    for key in ("groups", "related_to"):
        for ref in strings[key]:
            if not IDENT.match(ref):
                raise RuleError(
                    f"bad id {ref!r} in {key} of [{ent_id}]",
                    path=where,
                    line=_line_in_table(text, ent_id, key),
                    expected="lower-case letters, digits and '-'",
                )
    for key in ("context", "not_context"):
        for term in strings[key]:
            try:
                _parse_context_term(term)
            except QueryLimitError as exc:
                line = _line_in_table(text, ent_id, key)
                raise limit_error(
                    f"context term {term!r} in [{ent_id}]: {exc}",
                    where,
                    line,
                    _first_column(text, line),
                    exc.expected or "",
                ) from None
            except QuerySyntaxError as exc:
                raise RuleError(
                    f"bad context term {term!r} in [{ent_id}]: {exc}",
                    path=where,
                    line=_line_in_table(text, ent_id, "context"),
                    expected=exc.expected,
                ) from None
    scope = table.get("context_scope", "document")
    if scope not in ("document", "paragraph"):
        raise RuleError(
            f"bad context_scope {scope!r} in [{ent_id}]",
            path=where,
            line=_line_in_table(text, ent_id, "context_scope"),
            expected="document or paragraph",
        )
    case = table.get("case_sensitive", True)
    if not isinstance(case, bool):
        raise RuleError(
            f"case_sensitive in [{ent_id}] must be true or false",
            path=where,
            line=_line_in_table(text, ent_id, "case_sensitive"),
        )
    return Entity(
        id=ent_id,
        type=etype,
        names=strings["names"],
        case_sensitive=case,
        exclude=strings["exclude"],
        ambiguous=strings["ambiguous"],
        context=strings["context"],
        not_context=strings["not_context"],
        context_scope=scope,
        groups=strings["groups"],
        related_to=strings["related_to"],
        refer_as=strings["refer_as"],
        pronouns=strings["pronouns"],
        description=str(table.get("description", "")),
    )


def _parse_context_term(term: str) -> Node:
    """A context term as written in entities.toml (``case:EV`` or a phrase) as a query term."""
    if term.startswith("case:"):
        return parse_phrase(term[5:], case_sensitive=True)
    return parse_phrase(term)


def _line_in_table(text: str, table: str, key: str) -> int | None:
    head = _line_of(text, f"[{table}]")
    if head is None:
        return _line_of(text, key)
    lines = text.splitlines()
    for number in range(head, len(lines)):
        stripped = lines[number].strip()
        if stripped.startswith("["):
            break
        if re.match(rf"{re.escape(key)}\s*=", stripped):
            return number + 1
    return head


def _strings(table: Mapping[str, Any], key: str, path: Path, text: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RuleError(
            f"{key} in [{where}] must be a list of non-empty strings",
            path=str(path),
            line=_line_in_table(text, where, key),
            expected='["...", "..."]',
        )
    return tuple(v.strip() for v in value)


def _check_relations(
    entities: Mapping[str, Entity], sources: Mapping[str, tuple[Path, str]], limit: int
) -> list[RuleError]:
    """The unknown targets of related_to: at most ``limit`` errors."""
    errors: list[RuleError] = []
    for ent in entities.values():
        path, text = sources[ent.id]
        for target in ent.related_to:
            if len(errors) >= limit:
                return errors
            if target not in entities:
                line = _line_in_table(text, ent.id, "related_to")
                errors.append(
                    RuleError(
                        f"[{ent.id}] is related_to unknown entity {target!r}",
                        path=str(path),
                        line=line,
                        source_line=source_line(text, line),
                        expected="an entity defined in entities.toml",
                    )
                )
    return errors


# -- rules ---------------------------------------------------------------------------------


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


def _model(paths: Iterable[Path]) -> Model | None:
    """The topic model in the first rules directory that has one (``model.json``)."""
    for directory in paths:
        path = Path(directory) / MODEL_FILE
        if path.is_file():
            try:
                return load_model(path)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise RuleError(f"cannot read the topic model: {exc}", path=str(path)) from None
    return None


def _with_model(rule: Rule, model: Model) -> Rule:
    topic = model.get(rule.id)
    if topic is None:
        return rule
    # The whole file, cut-offs included: hashing the bytes read costs nothing next to sorting
    # and serializing every topic's weights again.
    digest = hashlib.sha256(f"{rule.content_hash} {model.digest}".encode()).hexdigest()[:16]
    return replace(rule, content_hash=digest)


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


def _table_key_lines(text: str, table: str) -> dict[str, int]:
    """Key → line of the keys of ``[table]`` (one pass; a key that this misses is looked up the slow way)."""
    out: dict[str, int] = {}
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            header = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]\s*(#.*)?", stripped)
            if header is not None:
                inside = header.group(1).strip("\"'") == table
                continue
            if not inside:
                continue
        if inside:
            m = re.match(r"([A-Za-z0-9_-]+)\s*=", stripped)
            if m:
                out.setdefault(m.group(1), number)
    return out


def _query_position(text: str, query: str) -> tuple[int, int]:
    """Line and column in the file where the query's first character stands."""
    m = re.search(r"^\s*query\s*=\s*('''|\"\"\"|'|\")", text, re.M)
    if not m:
        return 1, 1
    start = m.end()
    if m.group(1) in ("'''", '"""') and text[start : start + 1] == "\n":
        start += 1
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, column


def _located(
    _exc: Exception | None,
    message: str,
    path: str,
    text: str,
    qline: int,
    qcol: int,
    line: int,
    column: int,
    expected: str | None,
) -> RuleError:
    file_line = qline + line - 1
    file_col = qcol + column - 1 if line == 1 else column
    if isinstance(_exc, QueryLimitError):
        return limit_error(message, path, file_line, file_col, expected or "")
    return RuleError(
        message,
        path=path,
        line=file_line,
        column=file_col,
        source_line=source_line(text, file_line),
        expected=expected,
    )


def _did_you_mean(name: str, known: set[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None
