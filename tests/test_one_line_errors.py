"""Every error a user can cause answers in one line on stderr, with exit 2 (bad input) or 1.

Through the real CLI in a subprocess: a file that is not a database, a corrupt SQLite file,
an unreachable PostgreSQL, an --out path that cannot be written, a config value of the right
type but impossible, arguments that are not UTF-8, an unknown command. None may print a
traceback, and the line must name what is wrong and where.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run(cwd: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ}
    env.pop("TRACKER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], cwd=cwd, capture_output=True, env=env, timeout=120, check=False
    )


def one_line(result: subprocess.CompletedProcess[bytes], code: int, *needles: str) -> str:
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def config(tmp_path: Path, body: str, name: str = "tracker.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["status"], ["init"], ["stories"], ["search", "ford"], ["poll", "--once"]])
def test_a_file_that_is_not_a_database(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "notes.sqlite").write_text("shopping list: milk, eggs\n" * 100, encoding="utf-8")
    cfg = config(tmp_path, '[database]\nurl = "sqlite:///notes.sqlite"\n')
    line = one_line(run(tmp_path, "--config", str(cfg), *command), 2, "notes.sqlite", "not an SQLite database")
    assert "[database] url" in line
    assert (tmp_path / "notes.sqlite").read_text(encoding="utf-8").startswith("shopping list")  # untouched


def test_a_corrupt_sqlite_file(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[database]\nurl = "sqlite:///t.sqlite"\n')
    assert run(tmp_path, "--config", str(cfg), "init").returncode == 0
    con = sqlite3.connect(tmp_path / "t.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with open(tmp_path / "t.sqlite", "r+b") as fh:  # the schema page, past the file header
        fh.seek(100)
        fh.write(b"\xde\xad\xbe\xef" * 200)
    for command in (["status"], ["init"], ["stories"], ["search", "ford"]):
        one_line(run(tmp_path, "--config", str(cfg), *command), 1, "t.sqlite", "corrupt", "tracker restore")


def test_an_unreachable_postgresql_names_host_and_port_but_not_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    port = free_port()
    cfg = config(tmp_path, f'[database]\nurl = "postgresql+psycopg://analyst:s3cr3tpw@127.0.0.1:{port}/news"\n')
    for command in (["init"], ["status"]):
        line = one_line(run(tmp_path, "--config", str(cfg), *command), 1, f"127.0.0.1:{port}", "cannot connect")
        assert "s3cr3tpw" not in line


@pytest.mark.parametrize(
    "command",
    [
        ["export", "--out", "afile/items.csv"],
        ["report", "--out", "afile/report.html"],
        ["report", "--out", "."],
        ["digest", "preview", "--out", "afile/digest"],
        ["digest", "preview", "--out", "afile"],
    ],
)
def test_an_out_path_that_cannot_be_written(tmp_path: Path, command: list[str]) -> None:
    digest = '[[digests]]\nname = "d"\nto = ["a@example.com"]\n'
    cfg = config(tmp_path, '[database]\nurl = "sqlite:///t.sqlite"\n\n' + digest)
    assert run(tmp_path, "--config", str(cfg), "init").returncode == 0
    (tmp_path / "afile").write_text("in the way\n", encoding="utf-8")
    one_line(run(tmp_path, "--config", str(cfg), *command), 2, command[-1].split("/")[0])
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "in the way\n"


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("fetch", "connect_timeout", "-1"),
        ("fetch", "total_timeout", "0"),
        ("fetch", "read_timeout", "inf"),
        ("fetch", "concurrency", "0"),
        ("fetch", "per_host_concurrency", "0"),
        ("fetch", "max_bytes", "10"),
        ("service", "metrics_port", "70000"),
        ("smtp", "port", "0"),
        ("poll", "max_entries_per_feed", "0"),
        ("poll", "interval_minutes", "nan"),
    ],
)
def test_an_impossible_config_value(tmp_path: Path, table: str, key: str, value: str) -> None:
    cfg = config(tmp_path, f'[database]\nurl = "sqlite:///t.sqlite"\n\n[{table}]\n{key} = {value}\n')
    for command in (["status"], ["init"], ["poll", "--once"]):
        one_line(run(tmp_path, "--config", str(cfg), *command), 2, "tracker.toml", f"{table}.{key}")
    assert not (tmp_path / "t.sqlite").exists()  # refused before anything was written


def test_an_impossible_digest_value(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        '[database]\nurl = "sqlite:///t.sqlite"\n\n[[digests]]\nname = "d"\nto = ["a@example.com"]\nmax_stories = 0\n',
    )
    one_line(run(tmp_path, "--config", str(cfg), "status"), 2, "digests[0].max_stories")


def test_arguments_that_are_not_utf8(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[database]\nurl = "sqlite:///t.sqlite"\n')
    one_line(run(tmp_path, "--config", str(cfg), "search", b"ford \xff\xfe"), 2, "not valid UTF-8", "\\xff")
    one_line(run(tmp_path, "--config", b"\xff.toml", "status"), 2, "not valid UTF-8")


def test_usage_mistakes(tmp_path: Path) -> None:
    one_line(run(tmp_path, "no-such-command"), 2, "no-such-command")
    one_line(run(tmp_path, "search"), 2, "QUERY")
    one_line(run(tmp_path, "poll", "--no-such-option"), 2, "--no-such-option")
