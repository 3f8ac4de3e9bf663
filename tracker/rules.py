"""Rule files and the entity catalogue → RuleSet.

A rule file (``rules/<topic-id>.toml``) names groups of terms that must all occur in
one window of the article (a paragraph by default); ``rules/entities.toml`` defines the
entities (``@ford``) and groups (``@chinese-automakers``) that terms may refer to. The
format is documented in rules/README.md. Every problem is a RuleError naming the file,
the line and what was expected.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RuleError
from .types import Rule

ENTITY_FILE = "entities.toml"
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ENTITY_TYPES = {"org", "person", "place", "group"}
WINDOWS = {"paragraph", "sentence", "document"}
_RULE_KEYS = {
    "id",
    "title",
    "description",
    "all",
    "any",
    "none",
    "window",
    "min_windows",
    "threshold",
    "owner",
    "priority",
}
_ENTITY_KEYS = {"type", "names", "exclude", "groups", "description"}


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    type: str
    names: tuple[str, ...]  #: case-sensitive surface forms; possessives match automatically
    exclude: tuple[str, ...] = ()  #: longer phrases in which a name does not mean this entity
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    entities: Mapping[str, Entity] = field(default_factory=dict)

    def members(self, ref: str) -> tuple[Entity, ...]:
        """Entities an ``@ref`` stands for: the entity itself, or every member of the group."""
        own = self.entities.get(ref)
        grouped = tuple(e for e in self.entities.values() if ref in e.groups)
        return ((own,) if own else ()) + grouped

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def rule_files(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(rule files, entity files) found under ``paths`` (files or directories)."""
    rules: list[Path] = []
    entities: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(path.glob("*.toml"))
        elif path.is_file():
            candidates = [path]
        else:
            raise RuleError("no such file or directory", path=str(path))
        for file in candidates:
            (entities if file.name == ENTITY_FILE else rules).append(file)
    return rules, entities


def load_rules(paths: Iterable[Path]) -> RuleSet:
    """Load and validate every rule and entity file; raise the first RuleError found."""
    ruleset, errors = check_rules(paths)
    if errors:
        raise errors[0]
    return ruleset


def check_rules(paths: Iterable[Path]) -> tuple[RuleSet, list[RuleError]]:
    """Load what can be loaded and collect every error (for ``tracker rules check``)."""
    errors: list[RuleError] = []
    try:
        rule_paths, entity_paths = rule_files(paths)
    except RuleError as exc:
        return RuleSet(rules=()), [exc]
    entities: dict[str, Entity] = {}
    entity_bytes = b""
    for path in entity_paths:
        try:
            raw, data = _read(path)
            entity_bytes += raw
            for ent in _entities(data, path, raw.decode("utf-8", "replace")):
                if ent.id in entities:
                    errors.append(
                        RuleError(
                            f"entity {ent.id!r} defined twice",
                            path=str(path),
                            line=_line_of(raw.decode(), f"[{ent.id}]"),
                        )
                    )
                entities[ent.id] = ent
        except RuleError as exc:
            errors.append(exc)
    group_ids = {g for e in entities.values() for g in e.groups}
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    for path in rule_paths:
        try:
            raw, data = _read(path)
            rule = _rule(data, path, raw, entity_bytes, set(entities) | group_ids)
            if rule.id in seen:
                raise RuleError(
                    f"rule id {rule.id!r} is also used by {seen[rule.id]}",
                    path=str(path),
                    line=_line_of(raw.decode(), "id"),
                )
            seen[rule.id] = path
            rules.append(rule)
        except RuleError as exc:
            errors.append(exc)
    return RuleSet(rules=tuple(rules), entities=entities), errors


def _read(path: Path) -> tuple[bytes, dict[str, Any]]:
    raw = path.read_bytes()
    try:
        return raw, tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RuleError("file is not UTF-8", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"at line (\d+)", msg)
        raise RuleError(
            f"not valid TOML: {re.sub(r' [(]at line.*', '', msg)}",
            path=str(path),
            line=int(m.group(1)) if m else None,
            expected="TOML key = value",
        ) from None


def _line_of(text: str, needle: str) -> int | None:
    """Line of ``key = ...`` when ``needle`` is a bare key, else of the first line containing it."""
    if re.fullmatch(r"[A-Za-z_][\w-]*", needle):
        key = re.compile(rf"^\s*{re.escape(needle)}\s*=", re.M)
        m = key.search(text)
        if m:
            return text.count("\n", 0, m.start()) + 1
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return None


def _entities(data: Mapping[str, Any], path: Path, text: str) -> list[Entity]:
    out = []
    for ent_id, table in data.items():
        line = _line_of(text, f"[{ent_id}]")
        if not RULE_ID.match(ent_id):
            raise RuleError(
                f"bad entity id {ent_id!r}", path=str(path), line=line, expected="lower-case letters, digits and '-'"
            )
        if not isinstance(table, dict):
            raise RuleError(f"{ent_id} is not a table", path=str(path), line=line, expected=f"[{ent_id}]")
        unknown = set(table) - _ENTITY_KEYS
        if unknown:
            raise RuleError(
                f"unknown key {sorted(unknown)[0]!r} in [{ent_id}]",
                path=str(path),
                line=line,
                expected="one of " + ", ".join(sorted(_ENTITY_KEYS)),
            )
        etype = table.get("type", "org")
        if etype not in ENTITY_TYPES:
            raise RuleError(
                f"bad type {etype!r} in [{ent_id}]",
                path=str(path),
                line=line,
                expected=" or ".join(sorted(ENTITY_TYPES)),
            )
        names = _strings(table, "names", path, text, ent_id)
        if not names and etype != "group":
            raise RuleError(f"[{ent_id}] has no names", path=str(path), line=line, expected='names = ["..."]')
        out.append(
            Entity(
                id=ent_id,
                type=etype,
                names=names,
                exclude=_strings(table, "exclude", path, text, ent_id),
                groups=_strings(table, "groups", path, text, ent_id),
            )
        )
    return out


def _strings(table: Mapping[str, Any], key: str, path: Path, text: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RuleError(
            f"{key} in {where} must be a list of non-empty strings",
            path=str(path),
            line=_line_of(text, key),
            expected='["...", "..."]',
        )
    return tuple(v.strip() for v in value)


def _rule(data: Mapping[str, Any], path: Path, raw: bytes, entity_bytes: bytes, known_refs: set[str]) -> Rule:
    text = raw.decode("utf-8")
    where = str(path)
    unknown = set(data) - _RULE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise RuleError(
            f"unknown key {key!r}",
            path=where,
            line=_line_of(text, key),
            expected="one of " + ", ".join(sorted(_RULE_KEYS)),
        )
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        raise RuleError("missing or bad id", path=where, line=_line_of(text, "id"), expected='id = "lower-case-id"')
    groups = data.get("all")
    if not isinstance(groups, list) or not groups:
        raise RuleError(
            "missing 'all'",
            path=where,
            line=_line_of(text, "all"),
            expected='all = [["term", "@entity"], ["other term"]]',
        )
    all_of = []
    for group in groups:
        if isinstance(group, str):
            group = [group]
        if not isinstance(group, list) or not group or not all(isinstance(t, str) and t.strip() for t in group):
            raise RuleError(
                "each group in 'all' must be a non-empty list of terms",
                path=where,
                line=_line_of(text, "all"),
                expected='["term", "@entity"]',
            )
        all_of.append(tuple(t.strip() for t in group))
    any_of = _strings(data, "any", path, text, rule_id)
    none_of = _strings(data, "none", path, text, rule_id)
    for term in [t for g in all_of for t in g] + list(any_of) + list(none_of):
        _check_term(term, known_refs, where, text)
    window = data.get("window", "paragraph")
    if window not in WINDOWS:
        raise RuleError(
            f"bad window {window!r}", path=where, line=_line_of(text, "window"), expected=" or ".join(sorted(WINDOWS))
        )
    min_windows = data.get("min_windows", 1)
    threshold = data.get("threshold", 1.0)
    if not isinstance(min_windows, int) or isinstance(min_windows, bool) or min_windows < 1:
        raise RuleError("min_windows must be a whole number ≥ 1", path=where, line=_line_of(text, "min_windows"))
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise RuleError("threshold must be a number", path=where, line=_line_of(text, "threshold"))
    return Rule(
        id=rule_id,
        title=str(data.get("title") or rule_id),
        description=str(data.get("description") or ""),
        all_of=tuple(all_of),
        any_of=any_of,
        none_of=none_of,
        window=window,
        min_windows=min_windows,
        threshold=float(threshold),
        source=where,
        content_hash=hashlib.sha256(raw + b"\0" + entity_bytes).hexdigest()[:16],
    )


def _check_term(term: str, known_refs: set[str], where: str, text: str) -> None:
    if term.startswith("@"):
        if term[1:] not in known_refs:
            raise RuleError(
                f"unknown entity {term!r}",
                path=where,
                line=_line_of(text, f'"{term}"'),
                expected="an entity or group defined in entities.toml",
            )
        return
    if any("*" in word.rstrip("*") or word == "*" for word in term.split()):
        raise RuleError(
            f"wildcard in the middle of {term!r}",
            path=where,
            line=_line_of(text, term),
            expected="'*' only at the end of a word, e.g. partner*",
        )
