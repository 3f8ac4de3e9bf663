"""What `tracker web` adds to Datasette's pages, as a plugin registered only in the server
that ``tracker web`` starts (:mod:`tracker.analysis.webserve`), never in other Datasettes:

- stories and items link to each other: a story id (in any view or query) opens the story's
  timeline, a story's headline too, an item id opens the item, and a timeline's headline
  opens the article;
- a topic's matched terms (a JSON list) read as a short line, not a tall block;
- stored times (``2026-03-02 14:05:00.000000``) read as ``2026-03-02 14:05`` (UTC, as stored;
  the full value is in the tooltip);
- a query that asks for a topic offers the valid topics as a list to choose from.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

#: the plugin's name, under which metadata carries its settings (``plugins.newstracker``)
NAME = "newstracker"
TERMS_SHOWN = 6  #: matched terms shown in a cell; the rest are counted and in its tooltip
_ITEM_TABLES = {"items", "tagged_items", "matches", "match_evidence"}
_STORED_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d):\d\d(?:\.\d+)?(?:\+00:00|Z)?")


def _database_url(datasette: Any, database: str) -> str:
    return str(datasette.urls.database(database))


def story_link(datasette: Any, database: str, story_id: int, text: str) -> Markup:
    """A link to the story's timeline (the ``story_timeline`` query)."""
    href = f"{_database_url(datasette, database)}/story_timeline?story_id={int(story_id)}"
    return Markup(f'<a href="{escape(href)}" title="This story&#39;s timeline">{escape(text)}</a>')


def item_link(datasette: Any, database: str, item_id: int) -> Markup:
    href = f"{datasette.urls.table(database, 'items')}/{int(item_id)}"
    return Markup(f'<a href="{escape(href)}" title="The stored article">{int(item_id)}</a>')


def terms_cell(value: str) -> Markup | None:
    """A JSON list of terms as one line: the first few, then how many more (all in the tooltip)."""
    try:
        terms = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        return None
    shown = ", ".join(terms[:TERMS_SHOWN])
    more = f" +{len(terms) - TERMS_SHOWN} more" if len(terms) > TERMS_SHOWN else ""
    return Markup(f'<span class="terms" title="{escape(", ".join(terms))}">{escape(shown)}{escape(more)}</span>')


def url_cell(url: str, keep: int = 32) -> Markup:
    """A link to ``url`` that reads as its host and the end of its path (all of it in the tooltip)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    tail = path if len(path) <= keep else "…" + path[-keep:]
    text = f"{parts.netloc}{tail}"
    return Markup(f'<a href="{escape(url)}" title="{escape(url)}" rel="noopener noreferrer">{escape(text)}</a>')


def _safe_url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def render_cell(row: Any, value: Any, column: str, table: str | None, database: str, datasette: Any) -> Markup | None:
    """A cell as HTML, or None for Datasette's own rendering."""
    keys = set(row.keys()) if hasattr(row, "keys") else set()
    if column == "story_id" and isinstance(value, int):
        return story_link(datasette, database, value, str(value))
    if column == "headline" and isinstance(value, str) and "story_id" in keys and isinstance(row["story_id"], int):
        return story_link(datasette, database, row["story_id"], value)
    if column == "item_id" and isinstance(value, int) and (table in _ITEM_TABLES or table is None):
        return item_link(datasette, database, value)
    if column == "terms" and isinstance(value, str) and value.startswith("["):
        return terms_cell(value)
    if column == "url" and (url := _safe_url(value)) is not None:
        return url_cell(url)
    if isinstance(value, str) and (when := _STORED_TIME.fullmatch(value)):
        return Markup(f'<time datetime="{escape(value)}" title="{escape(value)} UTC">{when[1]} {when[2]}</time>')
    if column == "title" and table is None and isinstance(value, str) and "url" in keys:
        url = _safe_url(row["url"])
        if url is not None:
            return Markup(f'<a href="{escape(url)}" rel="noopener noreferrer">{escape(value)}</a>')
    return None


def topics_script(topics: list[str]) -> str:
    """JavaScript that turns a query's free-text ``topic`` field into a list of the topics."""
    data = json.dumps(topics).replace("<", "\\u003c")
    return (
        "document.querySelectorAll('form input[name=\"topic\"]').forEach(function (input) {\n"
        f"  var topics = {data};\n"
        "  var select = document.createElement('select');\n"
        "  select.name = input.name; select.id = input.id;\n"
        "  topics.forEach(function (t) { select.add(new Option(t, t, false, t === input.value)); });\n"
        "  input.replaceWith(select);\n"
        "});"
    )


def extra_body_script(
    template: str, database: str | None, table: str | None, columns: Any, view_name: str, request: Any, datasette: Any
) -> str:
    topics = (datasette.plugin_config(NAME) or {}).get("topics") or []
    return topics_script([str(t) for t in topics]) if topics else ""


def register() -> None:
    """Add these hooks to Datasette's plugin manager (once per process)."""
    import sys

    from datasette import hookimpl
    from datasette.plugins import pm

    module = sys.modules[__name__]
    if pm.get_plugin(NAME) is None:
        for name in ("render_cell", "extra_body_script"):
            hookimpl(getattr(module, name))
        pm.register(module, name=NAME)
