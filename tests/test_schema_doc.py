"""docs/schema.md covers the real schema: every table, view and column of a freshly migrated
SQLite database is documented in its own section, and the document names nothing that is gone."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tracker.store.database import make_engine
from tracker.store.migrate import upgrade

from .conftest import REPO

DOC = REPO / "docs" / "schema.md"

#: FTS5's own storage behind items_fts: internal to SQLite, not documented
FTS_SHADOW = {"items_fts_data", "items_fts_idx", "items_fts_docsize", "items_fts_config", "items_fts_content"}

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_OBJECT = re.compile(r"^`(\w+)`$")
_ROW = re.compile(r"^\|\s*`(\w+)`\s*\|")


def schema(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Object name → (``table`` or ``view``, its column names) of a freshly migrated database."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    out = {}
    with closing(sqlite3.connect(path)) as conn:
        objects = conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
        for name, kind in objects:
            if name.startswith("sqlite_") or name in FTS_SHADOW:
                continue
            columns = [row[1] for row in conn.execute(f'PRAGMA table_xinfo("{name}")')]
            out[name] = (kind, columns)
    return out


def sections(text: str) -> dict[str, tuple[str, str]]:
    """Object name → (the level-2 heading it sits under, the text of its section), for each
    heading that is just a backquoted name (``### `items```). A section runs to the next
    heading of the same or a higher level."""
    lines = text.splitlines()
    heads = [(i, len(m[1]), m[2]) for i, line in enumerate(lines) if (m := _HEADING.match(line))]
    out: dict[str, tuple[str, str]] = {}
    part = ""
    for n, (i, level, title) in enumerate(heads):
        if level == 2:
            part = title
        obj = _OBJECT.match(title)
        if obj is None:
            continue
        end = next((j for j, lvl, _ in heads[n + 1 :] if lvl <= level), len(lines))
        assert obj[1] not in out, f"`{obj[1]}` has two sections in {DOC.name}"
        out[obj[1]] = (part, "\n".join(lines[i + 1 : end]))
    return out


@pytest.fixture(scope="module")
def db_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, list[str]]]:
    return schema(tmp_path_factory.mktemp("schema") / "db.sqlite")


@pytest.fixture(scope="module")
def doc_sections() -> dict[str, tuple[str, str]]:
    return sections(DOC.read_text(encoding="utf-8"))


def test_the_schema_is_what_this_test_expects(db_schema: dict[str, tuple[str, list[str]]]) -> None:
    views = {name for name, (kind, _) in db_schema.items() if kind == "view"}
    assert {"tagged_items", "stories", "topic_daily", "feed_health", "digest_history"} <= views
    assert {"items", "feeds", "items_fts", "alembic_version"} <= set(db_schema)


def test_every_table_view_and_column_is_documented(
    db_schema: dict[str, tuple[str, list[str]]], doc_sections: dict[str, tuple[str, str]]
) -> None:
    missing = []
    for name, (kind, columns) in sorted(db_schema.items()):
        if name not in doc_sections:
            missing.append(f"{kind} `{name}`: no '### `{name}`' heading")
            continue
        part, body = doc_sections[name]
        expected_part = "Views" if kind == "view" else "Tables"
        if not part.startswith(expected_part):
            missing.append(f"{kind} `{name}`: documented under '{part}', not under '{expected_part}'")
        undocumented = [c for c in columns if f"| `{c}` |" not in body]
        missing += [f"{kind} `{name}`: column `{c}` has no '| `{c}` |' row" for c in undocumented]
    assert not missing, f"{DOC.relative_to(REPO)} is missing:\n" + "\n".join(missing)


def test_nothing_documented_is_gone(
    db_schema: dict[str, tuple[str, list[str]]], doc_sections: dict[str, tuple[str, str]]
) -> None:
    stale = []
    for name, (_, body) in sorted(doc_sections.items()):
        if name not in db_schema:
            stale.append(f"`{name}`: no such table or view")
            continue
        columns = set(db_schema[name][1])
        rows = [m[1] for line in body.splitlines() if (m := _ROW.match(line))]
        stale += [f"`{name}`.`{c}`: no such column" for c in rows if c not in columns]
    assert not stale, f"{DOC.relative_to(REPO)} documents what the schema lacks:\n" + "\n".join(stale)
