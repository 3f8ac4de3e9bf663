"""The entity catalogue (``rules/entities.toml``): ``Entity``, and each entity table read and
checked (names, aliases, context terms, groups, relations, refer_as and pronouns)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.core.errors import RuleError
from tracker.rules.locate import _first_column, _line_in_table, _line_of, _reject_unknown_keys
from tracker.rules.query import Node, QueryLimitError, QuerySyntaxError, parse_phrase
from tracker.rules.rulefiles import limit_error, source_line

IDENT = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ENTITY_TYPES = {"org", "person", "place", "group"}
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


def _count_strings(table: Any) -> int:
    """Strings in the list values of an entity table (what MAX_CATALOGUE_STRINGS counts)."""
    if not isinstance(table, dict):
        return 0
    return sum(len(v) for v in table.values() if isinstance(v, list))


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
