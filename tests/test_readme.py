"""The README's examples, run as a reader would run them: the demo in a fresh directory, then
every command of the block that follows the quick start, then every SQL recipe on the
demo's store. An example that stops working fails here."""

from __future__ import annotations

import re
import shlex
import sqlite3
from pathlib import Path

import pytest

from .conftest import REPO
from .test_cli import tracker

pytestmark = pytest.mark.slow

README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.S | re.M)


def after_demo_commands() -> list[str]:
    """The ```sh block right after the quick start's two commands."""
    lines = [line.strip() for line in _blocks("sh")[2].splitlines() if line.strip()]
    assert lines and all(line.startswith("tracker ") for line in lines)
    return lines


def sql_statements() -> list[str]:
    statements = []
    for block in _blocks("sql"):
        text = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--"))
        statements += [s.strip() for s in text.split(";") if s.strip()]
    return statements


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("readme")
    result = tracker("demo", cwd=where, env={"TRACKER_HOME": str(where / "home")})
    assert result.returncode == 0, result.stderr
    return where


@pytest.mark.parametrize("command", after_demo_commands())
def test_the_commands_after_the_demo(demo_dir: Path, command: str) -> None:
    result = tracker(*shlex.split(command)[1:], cwd=demo_dir, env={"TRACKER_HOME": str(demo_dir / "home")})
    assert result.returncode == 0, f"{command}: {result.stderr}"
    assert result.stdout.strip() or result.stderr.strip()
    assert "error" not in result.stderr.lower()


@pytest.mark.parametrize("statement", sql_statements(), ids=lambda s: " ".join(s.split())[:60])
def test_the_sql_recipes(demo_dir: Path, statement: str) -> None:
    con = sqlite3.connect(f"file:{demo_dir / 'tracker.sqlite'}?mode=ro", uri=True)
    try:
        con.execute(statement).fetchall()
    finally:
        con.close()
