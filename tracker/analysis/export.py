"""`tracker export`: tagged items or stories to CSV, JSON Lines or Parquet, streamed.

Rows come from the stable views (``tagged_items``: one row per item and topic; ``stories``:
one row per story) in batches, so an export of millions of rows runs in constant memory.
Times are UTC, in ISO 8601. Parquet needs the ``parquet`` extra (pyarrow); its columns are
typed (timestamps in UTC, integers, floats, strings).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text

from tracker.core.errors import ConfigError
from tracker.core.resources import install_hint
from tracker.store.database import Store
from tracker.store.models import UTCDateTime

BATCH = 5000

#: the columns of each export, in order, with their kind ("time", "int", "float", "str")
COLUMNS: dict[str, dict[str, str]] = {
    "items": {
        "item_id": "int",
        "url": "str",
        "title": "str",
        "source": "str",
        "outlet": "str",
        "published_at": "time",
        "rule_id": "str",
        "score": "float",
        "terms": "str",
        "snippet": "str",
        "story_id": "int",
        "stored_at": "time",
    },
    "stories": {
        "story_id": "int",
        "headline": "str",
        "first_seen": "time",
        "last_seen": "time",
        "n_items": "int",
        "n_sources": "int",
        "topics": "str",
    },
}
_TIME_COLUMNS = {"published_at", "stored_at", "first_seen", "last_seen"}
_VIEW = {"items": "tagged_items", "stories": "stories"}
_TIME_FILTER = {"items": "coalesce(published_at, stored_at)", "stories": "last_seen"}


def rows(
    store: Store, what: str, *, rule: str | None = None, since: datetime | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Batches of rows of the ``what`` export ("items" or "stories")."""
    if what not in _VIEW:
        raise ConfigError(f"nothing to export called {what!r} (items or stories)")
    columns = list(COLUMNS[what])
    where: list[str] = []
    params: dict[str, Any] = {}
    if rule:
        where.append("rule_id = :rule" if what == "items" else "(',' || replace(topics, ' ', '') || ',') LIKE :rule")
        params["rule"] = rule if what == "items" else f"%,{rule},%"
    if since:
        where.append(f"{_TIME_FILTER[what]} >= :since")
        params["since"] = since
    order = "item_id, rule_id" if what == "items" else "story_id"
    sql = f"SELECT {', '.join(columns)} FROM {_VIEW[what]}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    statement = text(sql + f" ORDER BY {order}").columns(**{c: UTCDateTime for c in columns if c in _TIME_COLUMNS})
    if since:
        statement = statement.bindparams(bindparam("since", type_=UTCDateTime))
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(statement, params)
        while batch := result.mappings().fetchmany(BATCH):
            yield [dict(r) for r in batch]


def export(
    store: Store, what: str, fmt: str, out: Path, *, rule: str | None = None, since: datetime | None = None
) -> int:
    """Write the export to ``out``; returns the number of rows."""
    writer = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}.get(fmt)
    if writer is None:
        raise ConfigError(f"unknown export format {fmt!r} (csv, jsonl or parquet)")
    out.parent.mkdir(parents=True, exist_ok=True)
    return writer(rows(store, what, rule=rule, since=since), COLUMNS[what], out)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _csv(batches: Iterator[list[dict[str, Any]]], columns: dict[str, str], out: Path) -> int:
    n = 0
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for batch in batches:
            writer.writerows({k: _plain(v) for k, v in r.items()} for r in batch)
            n += len(batch)
    return n


def _jsonl(batches: Iterator[list[dict[str, Any]]], columns: dict[str, str], out: Path) -> int:
    """JSON Lines in the shape of every command's JSON: ``terms`` and ``topics`` as arrays
    (the views keep them as JSON text and a comma-separated list, for SQL and CSV)."""
    n = 0
    with out.open("w", encoding="utf-8") as f:
        for batch in batches:
            for r in batch:
                f.write(json.dumps({k: _json_value(k, v) for k, v in r.items()}, ensure_ascii=False) + "\n")
            n += len(batch)
    return n


def _json_value(key: str, value: Any) -> Any:
    if key == "terms" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key == "topics":
        return [t.strip() for t in (value or "").split(",") if t.strip()]
    return _plain(value)


def _parquet(batches: Iterator[list[dict[str, Any]]], columns: dict[str, str], out: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"Parquet export needs pyarrow: {install_hint('parquet')}", key="--format parquet") from None
    kinds = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "time": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([(name, kinds[kind]) for name, kind in columns.items()])
    n = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n
