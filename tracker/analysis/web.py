"""`tracker web`: the store, read-only, in Datasette (the ``web`` extra).

Datasette opens the SQLite file with ``mode=ro``: browsing never writes. This module only
describes the store to it: titles and descriptions of the stable views and their columns,
facets by topic and source, the full-text index on items, and canned queries for the
README's recipes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tracker.core import resources
from tracker.core.errors import ConfigError
from tracker.core.resources import install_hint

#: the README's recipes, runnable from the web view (":topic" becomes a form field)
RECIPES: dict[str, dict[str, Any]] = {
    "new_stories_this_week": {
        "title": "New stories on a topic this week",
        "description": "Stories that started in the last 7 days with an item tagged with the topic.",
        "sql": (
            "SELECT s.story_id, s.headline, s.first_seen, s.n_items, s.n_sources\n"
            "FROM stories s\n"
            "WHERE s.first_seen >= datetime('now', '-7 days')\n"
            "  AND EXISTS (SELECT 1 FROM tagged_items t WHERE t.story_id = s.story_id AND t.rule_id = :topic)\n"
            "ORDER BY s.first_seen DESC"
        ),
    },
    "outlets_covering_topic": {
        "title": "Outlets covering a topic",
        "description": "Each outlet with how many of its items the topic tags, and its latest.",
        "sql": (
            "SELECT i.host AS outlet, COUNT(*) AS items, MAX(coalesce(i.published_at, i.fetched_at)) AS latest\n"
            "FROM matches m JOIN items i ON i.id = m.item_id\n"
            "WHERE m.rule_id = :topic\n"
            "GROUP BY i.host ORDER BY items DESC"
        ),
    },
    "story_timeline": {
        "title": "A story's timeline",
        "description": (
            "Every article of one story, oldest first: when, which outlet, its role (new: started the "
            "story; update: another report of it; copy: a near-duplicate), headline and link. "
            "Every story id in the other pages links here."
        ),
        "sql": (
            "SELECT strftime('%Y-%m-%d %H:%M', i.story_at) AS time, coalesce(i.site_name, i.host) AS outlet,\n"
            "       i.story_role AS role, i.id AS item_id,\n"
            "       i.title, i.url,\n"
            "       (SELECT group_concat(m.rule_id, ', ') FROM matches m WHERE m.item_id = i.id) AS topics\n"
            "FROM items i WHERE i.story_id = :story_id ORDER BY i.story_at, i.id"
        ),
    },
    "topic_volume_per_day": {
        "title": "Topic volume per day",
        "description": "Tagged items, stories and new stories per topic and day (UTC).",
        "sql": "SELECT day, topic, items, stories, new_stories, outlets FROM topic_daily ORDER BY day DESC, topic",
    },
}

_VIEWS: dict[str, dict[str, Any]] = {
    "tagged_items": {
        "title": "Tagged items",
        "description": "One row per stored article and topic it is tagged with (stable view).",
        "facets": ["rule_id", "source"],
        "sort_desc": "stored_at",
        "columns": {
            "item_id": "The article's id (items.id).",
            "url": "Canonical URL.",
            "title": "Headline, plain text.",
            "source": "The first configured feed that carried it.",
            "outlet": "Site name from the page.",
            "published_at": "Publication time, UTC (from the feed or the page).",
            "rule_id": "The topic (rule id).",
            "score": "How strongly the rule matched (higher is stronger).",
            "terms": "The rule's terms found in it (JSON list).",
            "snippet": "One or two sentences around the match.",
            "story_id": "Its story (the id of the story's first item).",
            "stored_at": "When the tracker stored it, UTC.",
        },
    },
    "stories": {
        "title": "Stories",
        "description": "One row per story: re-reports of one event grouped (stable view).",
        "sort_desc": "last_seen",
        "columns": {
            "story_id": "The id of the story's first item.",
            "headline": "The title of its most widely carried item.",
            "first_seen": "Its first item's time, UTC.",
            "last_seen": "Its latest item's time, UTC.",
            "n_items": "Articles in the story.",
            "n_sources": "Distinct outlets.",
            "topics": "Topics any of its items is tagged with.",
        },
    },
    "topic_daily": {
        "title": "Topic volume per day",
        "description": "Per topic and UTC day: tagged items, stories, new stories, outlets (stable view).",
        "facets": ["topic"],
        "sort_desc": "day",
    },
    "feed_health": {
        "title": "Feed health",
        "description": "Every feed: state (ok, failing, parked), last fetch and success, next poll (stable view).",
        "facets": ["state", "last_status"],
    },
    "digest_history": {
        "title": "Digest history",
        "description": "Every digest run: status, when sent, stories and items carried (stable view).",
        "facets": ["subscription", "status"],
        "sort_desc": "created_at",
    },
    "story_developments": {
        "title": "What updates added",
        "description": "One row per sentence of an update that reports what its story had not (stable view).",
        "sort_desc": "at",
    },
    "topic_spikes": {
        "title": "Coverage surges",
        "description": "A topic's volume far above its own baseline, per day or hour, once each (stable view).",
        "facets": ["topic", "measure", "bucket"],
        "sort_desc": "detected_at",
    },
    "items": {
        "title": "Items (table)",
        "description": "Stored articles with their full text. Full-text search covers title, text and entities.",
        "fts_table": "items_fts",
        "fts_pk": "id",
        "facets": ["host", "text_source", "story_role"],
        "sort_desc": "fetched_at",
    },
}
_HIDDEN = (
    "alembic_version",
    "item_developments",
    "spikes",
    "item_signatures",
    "digest_locks",
    "rule_state",
    "items_fts",
    "items_fts_config",
    "items_fts_data",
    "items_fts_docsize",
    "items_fts_idx",
)


def sqlite_path(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise ConfigError(
            "tracker web serves a SQLite store (Datasette); this one is "
            f"{url.get_backend_name()} — query PostgreSQL with its own tools",
            key="database.url",
        )
    return Path(url.database)


def metadata(db_name: str, topics: list[str] | None = None) -> dict[str, Any]:
    """Datasette's metadata; ``topics`` (the rule ids) are named where a query asks for one."""
    tables: dict[str, Any] = {name: dict(spec) for name, spec in _VIEWS.items()}
    tables.update({name: {"hidden": True} for name in _HIDDEN})
    queries = {name: {**spec, "hide_sql": True} for name, spec in RECIPES.items()}
    if topics:
        for spec in queries.values():
            if ":topic" in spec["sql"]:
                spec["description"] += " Topics: " + ", ".join(topics) + "."
    return {
        "title": "newstracker",
        "description": (
            "Tracked news, read-only. Start with the stories view (one row per event) and the queries "
            "below it: a story's timeline, new stories on a topic this week, the outlets covering a topic."
        ),
        "databases": {db_name: {"tables": tables, "queries": queries}},
        "plugins": {"newstracker": {"topics": list(topics or [])}},
    }


def command(database_url: str, host: str, port: int, metadata_file: Path, topics: list[str] | None = None) -> list[str]:
    """The Datasette command line for this store (after writing its metadata file)."""
    try:
        import datasette  # noqa: F401
    except ImportError:
        raise ConfigError(f"tracker web needs Datasette: {install_hint('web')}") from None
    db = sqlite_path(database_url)
    if not db.exists():
        raise ConfigError(f"{db}: no database yet (run `tracker init` or `tracker poll --once` first)")
    metadata_file.write_text(json.dumps(metadata(db.stem, topics), indent=2), encoding="utf-8")
    return [
        sys.executable,
        "-m",
        "tracker.analysis.webserve",
        "serve",
        str(db),
        "--metadata",
        str(metadata_file),
        "--host",
        host,
        "--port",
        str(port),
        "--template-dir",
        str(resources.PACKAGE_DIR / "templates" / "datasette"),
        "--setting",
        "sql_time_limit_ms",
        "5000",
        "--setting",
        "default_page_size",
        "50",
    ]
