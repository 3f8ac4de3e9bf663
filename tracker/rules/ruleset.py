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

Entity tables are read in catalogue.py, each rule file in ruleparse.py, and the positions that
errors name are found in locate.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tracker.core.errors import RuleError
from tracker.core.types import Rule
from tracker.rules.catalogue import Entity, _check_relations, _count_strings, _entity
from tracker.rules.classifier import MODEL_FILE, Model
from tracker.rules.classifier import load as load_model
from tracker.rules.locate import _first_column, _line_of
from tracker.rules.query import EntityRef, Node
from tracker.rules.rulefiles import Budget, limit_error, read_toml, rule_files
from tracker.rules.ruleparse import _rule

__all__ = [
    "MAX_CATALOGUE_STRINGS",
    "MAX_ERRORS",
    "MAX_RULES",
    "MAX_TERMS_TOTAL",
    "Entity",
    "RuleSet",
    "check_rules",
    "load_rules",
]

#: Errors that ``check_rules`` collects before it stops (each may cost a look through its file).
MAX_ERRORS = 50
#: Rule files in all.
MAX_RULES = 1_000
#: Terms of all rules together, counted as for MAX_TERMS (tracker/query.py).
MAX_TERMS_TOTAL = 20_000
#: Strings in the entity catalogue: names, exclude, ambiguous, context, not_context, groups, related_to.
MAX_CATALOGUE_STRINGS = 20_000


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
