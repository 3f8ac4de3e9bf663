"""`tracker export`: tagged items and stories to CSV, JSON Lines and Parquet."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from tracker.demo.site import NewsSite

from .test_cli import tracker, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    with NewsSite() as site:
        cfg = write_config(tmp, site)
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    return cfg


def db_rows(cfg: Path, sql: str) -> list[tuple]:
    return sqlite3.connect(cfg.parent / "data" / "tracker.sqlite").execute(sql).fetchall()


def test_items_to_csv_and_jsonl_match_the_view(polled: Path, tmp_path: Path) -> None:
    expected = db_rows(polled, "SELECT item_id, rule_id FROM tagged_items ORDER BY item_id, rule_id")
    assert expected
    done = tracker("--config", str(polled), "export", "--out", str(tmp_path / "items.csv"))
    assert done.returncode == 0 and f"{len(expected)} items rows" in done.stdout
    with (tmp_path / "items.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["item_id"]), r["rule_id"]) for r in rows] == expected
    assert rows[0]["stored_at"].endswith("+00:00")  # UTC, ISO 8601
    assert tracker("--config", str(polled), "export", "--out", str(tmp_path / "x.jsonl")).returncode == 0
    lines = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert [(r["item_id"], r["rule_id"]) for r in lines] == expected
    one = "ford-china-jv"
    assert tracker("--config", str(polled), "export", "--rule", one, "--out", str(tmp_path / "f.jsonl")).returncode == 0
    only = [json.loads(line)["rule_id"] for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert only and set(only) == {one}
    later = tracker("--config", str(polled), "export", "--since", "2999-01-01", "--out", str(tmp_path / "n.csv"))
    assert later.returncode == 0 and "0 items rows" in later.stdout


def test_stories_to_parquet_are_typed(polled: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "stories.parquet"
    done = tracker("--config", str(polled), "export", "--what", "stories", "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.num_rows == db_rows(polled, "SELECT count(*) FROM stories")[0][0] > 0
    types = {f.name: str(f.type) for f in table.schema}
    assert types["first_seen"] == "timestamp[us, tz=UTC]" and types["n_items"] == "int64"
    assert types["headline"] == "string"


def test_a_file_without_a_known_suffix_needs_a_format(polled: Path, tmp_path: Path) -> None:
    result = tracker("--config", str(polled), "export", "--out", str(tmp_path / "items.txt"))
    assert result.returncode == 2 and "--format" in result.stderr
