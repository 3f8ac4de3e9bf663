"""Docs and packaging stay honest: every command documented, --help cheap, CI runs the README."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest

from tracker.cli.main import cli

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(commands(cmd, full + " "))
    return out


@pytest.mark.parametrize(("name", "cmd"), commands(cli), ids=[n for n, _ in commands(cli)])
def test_every_command_is_documented_and_has_help(name: str, cmd: click.Command) -> None:
    assert f"tracker {name}" in README, f"`tracker {name}` is not in README.md"
    assert (cmd.help or "").strip(), f"`tracker {name}` has no help text"
    result = subprocess.run(
        [sys.executable, "-m", "tracker", *name.split(), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from tracker.cli.main import cli\n"
        "try:\n    cli(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('trafilatura', 'lxml', 'sqlalchemy', 'feedparser', 'httpx') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", README, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_test_command() -> None:
    cmds = readme_commands()
    assert "tracker demo" in cmds[0]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert cmds[1] in ci, "the README's second command must be what .ci/run runs"
    assert "pytest" in cmds[1]


def test_dependencies_are_explained() -> None:
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.split(r"[<>=\[ ]", dep, maxsplit=1)[0]
        assert f"`{name}`" in README, f"README does not say why {name} is a dependency"
