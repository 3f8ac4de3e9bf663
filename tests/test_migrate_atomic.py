"""Migrations are atomic (on SQLite; on PostgreSQL too when TRACKER_TEST_PG names a server).

`tracker init` is killed (SIGKILL, sometimes SIGTERM) at random moments while it migrates,
from an empty database and from every earlier schema holding data: each kill leaves either
the schema it started from or the newest one, exactly, never a mix; the next `tracker init`
then finishes, the database passes its integrity checks, and every old row is still there.

Processes that start together on a fresh file take turns: one migrates, the others wait
for it and then find nothing to do; none fails.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import Engine, event

from tracker.cli.main import cli
from tracker.core.errors import StorageError
from tracker.store.database import make_engine
from tracker.store.migrate import MIGRATION_LOCK, alembic_config, head_revision, upgrade

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss

pytestmark = pytest.mark.slow

#: items in each pre-filled database: enough that the data migrations take real time
N_ITEMS = 2000
#: kills (of a running `tracker init`) per starting schema, at least
KILLS_PER_START = 5
#: `tracker init` processes started ahead of their turn (their start-up overlaps earlier trials)
PIPELINE = 3
T = "2026-01-01 00:00:00.000000"
WORDS = ("harbour", "council", "ferry", "tram", "budget")
RULE = 'id = "harbour"\ntitle = "Harbour board decisions"\nquery = \'harbour AND board\'\n'

Schema = list[tuple[str, str, str, str]]


# --- databases at each earlier schema, with rows in every table they have --------------------


def fixture_rows(n: int) -> dict[str, tuple[str, list[tuple[Any, ...]]]]:
    """Rows for each table, in an order that satisfies the foreign keys; only the columns each
    table had when it was created (later columns are nullable or have a default)."""
    return {
        "feeds": (
            "INSERT INTO feeds (id, url, name, active, consecutive_failures, created_at) VALUES (?, ?, ?, TRUE, 0, ?)",
            [(f, f"https://feed{f}.example/rss", f"Feed {f}", T) for f in range(1, 5)],
        ),
        "items": (
            "INSERT INTO items (id, url, title, text, text_source, text_hash, fetched_at, published_at) "
            "VALUES (?, ?, ?, ?, 'extracted', ?, ?, ?)",
            [
                (
                    i,
                    f"https://news.example/{i}",
                    f"Story {i} about the {WORDS[i % 5]}",
                    f"Item {i}: the {WORDS[i % 5]} board met on day {i % 28 + 1} and decided on point {i}. " * 6,
                    f"hash{i}",
                    T,
                    None if i % 3 else f"2025-12-{i % 28 + 1:02d} 08:00:00.000000",
                )
                for i in range(1, n + 1)
            ],
        ),
        "item_sources": (
            "INSERT INTO item_sources (item_id, feed_id, entry_url, guid, seen_at) VALUES (?, ?, ?, ?, ?)",
            [(i, i % 4 + 1, f"https://news.example/{i}?utm_source=rss", f"guid-{i}", T) for i in range(1, n + 1)],
        ),
        "matches": (
            "INSERT INTO matches (item_id, rule_id, score, terms, snippet, rule_hash, matched_at) "
            "VALUES (?, ?, ?, '[\"board\"]', ?, 'rulehash', ?)",
            [(i, f"rule{i % 3}", 1.0 + i % 7, f"snippet {i}", T) for i in range(1, n + 1)],
        ),
        "fetch_log": (
            "INSERT INTO fetch_log (feed_id, started_at, duration_ms, status, http_status, entries, new_items) "
            "VALUES (?, ?, ?, 'ok', 200, ?, ?)",
            [(k % 4 + 1, T, 10 + k, k, k % 3) for k in range(40)],
        ),
        "rule_state": (
            "INSERT INTO rule_state (rule_id, rule_hash, updated_at) VALUES (?, ?, ?)",
            [(f"rule{r}", f"rulehash{r}", T) for r in range(3)],
        ),
        "item_signatures": (
            "INSERT INTO item_signatures (item_id, minhash, terms) VALUES (?, ?, ?)",
            [(i, bytes([i % 256]) * 32, "board harbour") for i in range(1, n + 1, 10)],
        ),
        "digest_runs": (
            "INSERT INTO digest_runs (id, name, status, since, created_at, attempts, recipients, n_stories, n_items) "
            "VALUES (?, 'desk', 'sent', ?, ?, 1, 'desk@news.example', 2, 10)",
            [(r, T, T) for r in range(1, 4)],
        ),
        "digest_deliveries": (
            "INSERT INTO digest_deliveries (name, item_id, rule_id, run_id) VALUES ('desk', ?, ?, ?)",
            [(i, f"rule{i % 3}", i % 3 + 1) for i in range(1, 31)],
        ),
        "digest_locks": (
            "INSERT INTO digest_locks (name, owner, until) VALUES (?, ?, ?)",
            [("desk", "worker-1", T), ("night", None, None)],
        ),
    }


def schema_of(db: Path) -> Schema:
    """Everything in sqlite_master (tables, indexes, views, triggers, the FTS tables)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
        return [tuple(r) for r in rows]
    finally:
        con.close()


def revision_of(db: Path) -> str | None:
    con = sqlite3.connect(db)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
            return None
        rows = con.execute("SELECT version_num FROM alembic_version").fetchall()
        assert len(rows) == 1, rows
        return str(rows[0][0])
    finally:
        con.close()


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


@dataclass(eq=False)
class Start:
    """A database at an earlier schema: its file (None: no file at all), its schema and rows."""

    revision: str | None
    path: Path | None
    schema: Schema
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0  #: how long upgrading it takes in this process
    attempts: int = 0
    kills: int = 0
    mid: int = 0  #: kills that interrupted the migration (the write lock held, the old schema left)
    finished: int = 0  #: runs that completed before their kill

    @property
    def label(self) -> str:
        return self.revision or "empty"

    def copy_to(self, db: Path) -> None:
        remove_db(db)
        if self.path is not None:
            shutil.copyfile(self.path, db)


def earlier_revisions() -> list[str | None]:
    """None (an empty database), then every revision before head, oldest first."""
    revisions = [s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    return [None, *reversed(revisions[1:])]


def build_start(directory: Path, revision: str | None) -> Start:
    if revision is None:
        return Start(None, None, [])
    path = directory / f"at-{revision}.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine, revision)
    engine.dispose()
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    start = Start(revision, path, [])
    with con:
        for table, (sql, rows) in fixture_rows(N_ITEMS).items():
            if table in tables:
                con.executemany(sql, rows)
    for table in fixture_rows(0):
        if table in tables:
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            start.columns[table] = cols
            start.rows[table] = con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid").fetchall()
            assert start.rows[table], table
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    start.schema = schema_of(path)
    return start


def verify_upgraded(db: Path, start: Start, head_schema: Schema) -> None:
    """At head, exactly the schema a clean upgrade gives, sound, with every old row."""
    assert revision_of(db) == head_revision()
    assert schema_of(db) == head_schema
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        for table, cols in start.columns.items():
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid").fetchall()
            assert rows == start.rows[table], f"rows of {table} changed"
        # The full-text index holds every item (built by the migration, or kept by its triggers).
        con.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")
        con.rollback()
        expected = sum(1 for row in start.rows.get("items", []) if "harbour" in str(row))
        assert con.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'harbour'").fetchone()[0] == expected
    finally:
        con.close()


# --- in one process ---------------------------------------------------------------------------


@pytest.mark.parametrize("revision", [None, "0003"])
def test_an_error_in_the_last_migration_rolls_back_every_revision(tmp_path: Path, revision: str | None) -> None:
    start = build_start(tmp_path, revision)
    db = tmp_path / "t.sqlite"
    start.copy_to(db)

    def fail_last_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "ix_matches_rule_id_item_at" in statement:  # the last statement of the last revision
            raise RuntimeError("disk on fire")

    event.listen(Engine, "before_cursor_execute", fail_last_statement)
    try:
        with pytest.raises(StorageError, match="disk on fire"):
            upgrade(make_engine(f"sqlite:///{db}"))
    finally:
        event.remove(Engine, "before_cursor_execute", fail_last_statement)
    assert schema_of(db) == start.schema
    assert revision_of(db) == revision
    engine = make_engine(f"sqlite:///{db}")
    assert upgrade(engine) == (revision, head_revision())
    clean = tmp_path / "clean.sqlite"
    upgrade(make_engine(f"sqlite:///{clean}"))
    verify_upgraded(db, start, schema_of(clean))
    with engine.connect() as conn:  # the store's own connections keep their foreign keys
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_an_in_memory_database_is_upgraded_on_the_engines_own_connection() -> None:
    engine = make_engine("sqlite:///:memory:")
    assert upgrade(engine) == (None, head_revision())
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM items").scalar() == 0
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert upgrade(engine) == (head_revision(), head_revision())


# --- killing `tracker init` -------------------------------------------------------------------


def write_locked(db: Path) -> bool:
    """Whether some process holds the database's write lock (a migration in progress)."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    else:
        con.execute("ROLLBACK")
        return False
    finally:
        con.close()


def spawn(cfg: Path, *args: str, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), *args],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=env,
    )


@dataclass
class Trial:
    """One `tracker init` to kill, on a copy of a start database of its own. A gated one starts
    early, while this test holds the database's write lock, so that its interpreter start-up
    (a second or more) overlaps the trials before it: it waits for the lock as it would for a
    concurrent migration, and migrates once the lock is let go. An ungated one starts at its
    turn."""

    start: Start
    directory: Path
    gate: sqlite3.Connection | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.directory / "t.sqlite"

    @property
    def cfg(self) -> Path:
        return self.directory / "t.toml"

    @property
    def log(self) -> str:
        return (self.directory / "err.log").read_text(encoding="utf-8", errors="replace")

    @classmethod
    def prepare(cls, start: Start, directory: Path, *, gated: bool) -> Trial:
        directory.mkdir()
        trial = cls(start, directory)
        trial.cfg.write_text(f'[database]\nurl = "sqlite:///{trial.db}"\n', encoding="utf-8")
        start.copy_to(trial.db)
        if gated:
            trial.gate = sqlite3.connect(trial.db, isolation_level=None)
            trial.gate.execute("BEGIN IMMEDIATE")
            trial.spawn()
        return trial

    def spawn(self) -> None:
        with open(self.directory / "err.log", "wb") as err:
            self.proc = spawn(self.cfg, "init", stderr=err)

    def go(self) -> subprocess.Popen[bytes]:
        """Let it migrate: open its gate, or start it."""
        if self.gate is not None:
            self.gate.execute("ROLLBACK")
            self.gate.close()
            self.gate = None
        else:
            self.spawn()
        assert self.proc is not None
        return self.proc


@pytest.fixture
def run_init() -> Iterator[Any]:
    """`tracker init` in this process (much faster than a new interpreter); the logging setup
    the command makes is undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(cfg: Path) -> None:
        result = CliRunner().invoke(cli, ["--config", str(cfg), "init"])
        assert result.exit_code == 0, (result.output, result.exception)

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


def test_init_killed_at_random_points_of_every_migration_leaves_old_or_new_schema(
    tmp_path: Path, run_init: Any
) -> None:
    rng = random.Random(int(os.environ.get("MIGRATE_KILL_SEED", "20261125")))
    templates = tmp_path / "templates"
    templates.mkdir()
    starts = [build_start(templates, rev) for rev in earlier_revisions()]
    # A clean upgrade of each: the newest schema is the same from every start, and how long
    # the migration takes (in this process, already warm) bounds the kill delays below.
    head_schema: Schema = []
    for start in starts:
        db = tmp_path / f"clean-{start.label}.sqlite"
        start.copy_to(db)
        engine = make_engine(f"sqlite:///{db}")
        began = time.monotonic()
        upgrade(engine)
        start.seconds = time.monotonic() - began
        engine.dispose()
        head_schema = head_schema or schema_of(db)
        verify_upgraded(db, start, head_schema)

    # Which trials to run: KILLS_PER_START kills of each start, more when some ran out before
    # their kill, and until one kill of each start interrupted its migration (from the last
    # earlier schema, that is the newest migration alone). An empty database has no file to
    # hold a lock on: its runs start ungated, like the first run of every start.
    plan: deque[Start] = deque(s for s in starts for _ in range(KILLS_PER_START))
    queued: deque[Trial] = deque()
    launched = 0

    def top_up() -> None:
        nonlocal launched
        while plan and len(queued) < PIPELINE:
            start = plan.popleft()
            gated = start.path is not None and start.attempts > 0
            start.attempts += 1
            launched += 1
            queued.append(Trial.prepare(start, tmp_path / f"trial-{launched}", gated=gated))

    top_up()
    while queued:
        trial = queued.popleft()
        start = trial.start
        top_up()
        proc = trial.go()
        # Once the migration holds the lock, a random moment within (about) its duration.
        while proc.poll() is None and not write_locked(trial.db):
            time.sleep(0.002)
        deadline = time.monotonic() + rng.uniform(0.0, 1.2 * start.seconds)
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        if proc.poll() is not None:
            assert proc.returncode == 0, trial.log
            start.finished += 1
            verify_upgraded(trial.db, start, head_schema)
        else:
            locked = write_locked(trial.db)
            proc.send_signal(signal.SIGTERM if (start.kills + start.finished) % 3 == 2 else signal.SIGKILL)
            proc.wait(30)
            start.kills += 1
            # Old or new, exactly; never a mix. The version row agrees with the schema.
            left = schema_of(trial.db)
            assert left in (start.schema, head_schema), f"{start.label}: half-migrated schema after a kill"
            assert revision_of(trial.db) == (start.revision if left == start.schema else head_revision())
            start.mid += locked and left == start.schema
            # And the next `tracker init` completes it.
            run_init(trial.cfg)
            verify_upgraded(trial.db, start, head_schema)
        shutil.rmtree(trial.directory)
        pending = sum(1 for t in queued if t.start is start) + plan.count(start)
        needed = max(KILLS_PER_START - start.kills, int(start.mid == 0))
        if pending < needed and start.attempts < 4 * KILLS_PER_START:
            plan.append(start)
            top_up()

    summary = ", ".join(f"{s.label}: {s.kills} kills ({s.mid} mid-migration, {s.finished} ran out)" for s in starts)
    print(f"\n{summary}")
    kills = sum(s.kills for s in starts)
    mid = sum(s.mid for s in starts)
    assert kills >= 30, summary
    assert mid >= kills / 3, summary
    assert all(s.mid >= 1 for s in starts), summary


# --- processes starting together on a fresh file ----------------------------------------------


def started_together(
    cfg: Path, commands: list[tuple[str, ...]], logs: Path, *, hold: Path | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start ``commands`` at once (``-v``: their logs say who migrated). With ``hold``, that
    database's write lock is held until every one of them is waiting for it."""
    holder = None
    if hold is not None:
        holder = sqlite3.connect(hold, isolation_level=None)
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("BEGIN IMMEDIATE")
    procs = []
    for i, args in enumerate(commands):
        with open(logs / f"{i}.log", "wb") as err:
            procs.append(spawn(cfg, "-v", *args, stderr=err))
    if holder is not None:
        deadline = time.monotonic() + 60
        while not all("waiting up to" in log_of(logs, i) for i in range(len(commands))):
            assert time.monotonic() < deadline, [log_of(logs, i) for i in range(len(commands))]
            assert all(p.poll() is None for p in procs)
            time.sleep(0.05)
        holder.execute("ROLLBACK")
        holder.close()
    return procs


def log_of(logs: Path, i: int) -> str:
    return (logs / f"{i}.log").read_text(encoding="utf-8", errors="replace")


def migrated_once(db: Path, logs: Path, n: int) -> None:
    """Exactly one of the ``n`` processes ran the migration; the schema is the newest."""
    upgraded = [i for i in range(n) if "schema upgraded from=(empty)" in log_of(logs, i)]
    assert len(upgraded) == 1, [log_of(logs, i) for i in range(n)]
    assert revision_of(db) == head_revision()
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
    finally:
        con.close()


@pytest.mark.parametrize("hold", [False, True], ids=["racing", "queued"])
def test_two_inits_on_a_fresh_file_one_migrates_neither_fails(tmp_path: Path, hold: bool) -> None:
    db = tmp_path / "fresh.sqlite"
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    procs = started_together(cfg, [("init",), ("init",)], tmp_path, hold=db if hold else None)
    assert [p.wait(120) for p in procs] == [0, 0], [log_of(tmp_path, i) for i in range(2)]
    migrated_once(db, tmp_path, 2)


def feed_site(server: HTTPServer, n: int) -> str:
    for a in range(n):
        title = f"Harbour board decision {a}"
        paragraphs = (
            f"The harbour board voted on item {a} of its agenda on Tuesday after a long debate about costs.",
            f"Board members said the work on item {a} would start within {a + 2} weeks.",
            f"Residents asked the board to publish the contract for item {a} before the next meeting.",
        )
        server.routes[f"/a/{a}.html"] = Response(200, page(title, paragraphs), HTML_HEADERS)
    entries = [Entry(f"a{a}", f"Harbour board decision {a}", server.url(f"/a/{a}.html")) for a in range(n)]
    server.routes["/feed.xml"] = Response(200, rss(entries, title="Harbour news"), RSS_HEADERS)
    return server.url("/feed.xml")


def poll_config(tmp_path: Path, db: Path, feed_url: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[rules]\npaths = ["{rules}"]\n'
        f'[[feeds]]\nname = "Harbour"\nurl = "{feed_url}"\n',
        encoding="utf-8",
    )
    return cfg


def assert_stored_once(db: Path, n: int) -> None:
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT url) FROM items").fetchone() == (n, n)
        assert con.execute("SELECT count(*) FROM feeds").fetchone()[0] == 1
        sources = con.execute("SELECT count(*), count(DISTINCT item_id || '/' || feed_id) FROM item_sources")
        assert sources.fetchone() == (n, n)
    finally:
        con.close()


def test_two_polls_on_a_fresh_file_one_migrates_neither_fails(tmp_path: Path, http_server: HTTPServer) -> None:
    db = tmp_path / "fresh.sqlite"
    cfg = poll_config(tmp_path, db, feed_site(http_server, 3))
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = started_together(cfg, [("poll", "--once"), ("poll", "--once")], logs)
    assert [p.wait(120) for p in procs] == [0, 0], [log_of(logs, i) for i in range(2)]
    migrated_once(db, logs, 2)
    assert_stored_once(db, 3)


def test_init_and_run_on_a_fresh_file(tmp_path: Path, http_server: HTTPServer) -> None:
    db = tmp_path / "fresh.sqlite"
    cfg = poll_config(tmp_path, db, feed_site(http_server, 3))
    logs = tmp_path / "logs"
    logs.mkdir()
    init, service = started_together(cfg, [("init",), ("run",)], logs)
    try:
        assert init.wait(120) == 0, log_of(logs, 0)
        deadline = time.monotonic() + 60
        while "cycle done" not in log_of(logs, 1):
            assert time.monotonic() < deadline and service.poll() is None, log_of(logs, 1)
            time.sleep(0.1)
        service.send_signal(signal.SIGTERM)
        assert service.wait(60) == 0, log_of(logs, 1)
    finally:
        if service.poll() is None:
            service.kill()
    migrated_once(db, logs, 2)
    assert_stored_once(db, 3)


def test_processes_starting_at_one_instant_take_turns(tmp_path: Path) -> None:
    """Three processes released by one barrier onto each fresh file, twenty times: in every
    round exactly one migrates (it read an empty database under the lock), none fails."""
    ctx = multiprocessing.get_context("fork")
    for round_ in range(20):
        db = tmp_path / f"r{round_}.sqlite"
        barrier, results = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_upgrade_at_barrier, args=(db, barrier, results)) for _ in range(3)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(60)
            assert proc.exitcode == 0
        assert all(isinstance(o, tuple) for o in outcomes), outcomes
        assert sorted(o[0] is None for o in outcomes) == [False, False, True], outcomes
        assert {o[1] for o in outcomes} == {head_revision()}
        assert revision_of(db) == head_revision()


def _upgrade_at_barrier(db: Path, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        results.put(upgrade(make_engine(f"sqlite:///{db}")))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(repr(exc))


# --- PostgreSQL (with TRACKER_TEST_PG, see tests/test_postgres.py) -----------------------------

PG = os.environ.get("TRACKER_TEST_PG", "")
needs_pg = pytest.mark.skipif(not PG, reason="TRACKER_TEST_PG is not set (see .ci/postgres)")


class PgServer:
    """Databases of our own on the test server, dropped afterwards."""

    def __init__(self) -> None:
        self.admin = PG.replace("postgresql+psycopg://", "postgresql://")
        self.prefix = f"tracker_mig_{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def url(self, name: str) -> str:
        return f"{PG.rpartition('/')[0]}/{name}"

    def dsn(self, name: str) -> str:
        return f"{self.admin.rpartition('/')[0]}/{name}"

    def create(self, suffix: str, template: str | None = None) -> str:
        import psycopg

        name = f"{self.prefix}_{suffix}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.names.append(name)
        return name

    def drop_all(self) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            for name in reversed(self.names):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg() -> Iterator[PgServer]:
    server = PgServer()
    try:
        yield server
    finally:
        server.drop_all()


def pg_query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return list(conn.execute(sql, params).fetchall())


def pg_schema(dsn: str) -> list[tuple[Any, ...]]:
    parts = (
        "SELECT 'column', table_name, column_name || ' ' || data_type || ' ' || is_nullable "
        "|| ' ' || coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = 'public'",
        "SELECT 'index', tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT 'view', viewname, definition FROM pg_views WHERE schemaname = 'public'",
        "SELECT 'constraint', conrelid::regclass::text, conname || ' ' || pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    )
    return pg_query(dsn, " UNION ALL ".join(parts) + " ORDER BY 1, 2, 3")


def pg_revision(dsn: str) -> str | None:
    if not pg_query(dsn, "SELECT 1 FROM information_schema.tables WHERE table_name = 'alembic_version'"):
        return None
    return str(pg_query(dsn, "SELECT version_num FROM alembic_version")[0][0])


def pg_rows(dsn: str, tables: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    order = {t: ", ".join(str(i + 1) for i in range(len(cols))) for t, cols in tables.items()}
    return {t: pg_query(dsn, f"SELECT {', '.join(cols)} FROM {t} ORDER BY {order[t]}") for t, cols in tables.items()}


def pg_migration_locked(dsn: str, name: str) -> bool:
    return bool(
        pg_query(
            dsn,
            "SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted AND d.datname = %s",
            (MIGRATION_LOCK, name),
        )
    )


@needs_pg
def test_postgres_init_killed_mid_migration_leaves_old_or_new_schema(tmp_path: Path, pg: PgServer) -> None:
    import psycopg

    rng = random.Random(20261126)
    # The newest schema, from an empty database.
    fresh = pg.create("head")
    engine = make_engine(pg.url(fresh))
    upgrade(engine)
    engine.dispose()
    head_schema = pg_schema(pg.dsn(fresh))
    kills = mid = 0
    for i, revision in enumerate(earlier_revisions()):
        template = pg.create(f"at_{revision or 'empty'}")
        columns: dict[str, list[str]] = {}
        if revision is not None:
            engine = make_engine(pg.url(template))
            upgrade(engine, revision)
            engine.dispose()
            with psycopg.connect(pg.dsn(template)) as conn:
                tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
                for table, (sql, rows) in fixture_rows(300).items():
                    if table in tables:
                        conn.cursor().executemany(sql.replace("?", "%s"), rows)
                        columns[table] = [
                            r[0]
                            for r in conn.execute(
                                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                                "ORDER BY ordinal_position",
                                (table,),
                            )
                        ]
        old_schema, old_rows = pg_schema(pg.dsn(template)), pg_rows(pg.dsn(template), columns)
        name = pg.create(f"kill_{revision or 'empty'}", template=template)
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(f'[database]\nurl = "{pg.url(name)}"\n', encoding="utf-8")
        proc = spawn(cfg, "init")
        # Once the migration holds its advisory lock, a random moment within it.
        while proc.poll() is None and not pg_migration_locked(pg.admin, name):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))
        if proc.poll() is None:
            locked = pg_migration_locked(pg.admin, name)
            proc.send_signal(signal.SIGTERM if i % 2 else signal.SIGKILL)
            proc.wait(30)
            kills += 1
            left = pg_schema(pg.dsn(name))
            assert left in (old_schema, head_schema), f"{revision}: half-migrated after a kill"
            assert pg_revision(pg.dsn(name)) == (revision if left == old_schema else head_revision())
            mid += locked and left == old_schema
            assert spawn(cfg, "init").wait(120) == 0
        assert pg_revision(pg.dsn(name)) == head_revision()
        assert pg_schema(pg.dsn(name)) == head_schema
        assert pg_rows(pg.dsn(name), columns) == old_rows
    print(f"\nPostgreSQL: {kills} kills, {mid} mid-migration")
    assert kills >= len(earlier_revisions()) - 2 and mid >= 1


@needs_pg
def test_postgres_two_inits_on_an_empty_database(tmp_path: Path, pg: PgServer) -> None:
    name = pg.create("together")
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "{pg.url(name)}"\n', encoding="utf-8")
    procs = started_together(cfg, [("init",), ("init",)], tmp_path)
    assert [p.wait(120) for p in procs] == [0, 0], [log_of(tmp_path, i) for i in range(2)]
    upgraded = [i for i in range(2) if "schema upgraded from=(empty)" in log_of(tmp_path, i)]
    assert len(upgraded) == 1, [log_of(tmp_path, i) for i in range(2)]
    assert pg_revision(pg.dsn(name)) == head_revision()
