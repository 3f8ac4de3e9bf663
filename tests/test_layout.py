"""The package's shape, checked: stages import only downward, every subpackage is placed in
the layer contract and says what it owns, modules and classes stay small, lint and types clean.

The layer contract lives in pyproject.toml (``[tool.importlinter]``) and is run here with
import-linter, the same tool a developer runs as ``lint-imports``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tracker"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250


def _tool(name: str) -> str:
    """A console script of this environment (the one running the tests)."""
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]')")
    return found


def _layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in contract["layers"] for name in layer.split("|")]


def _subpackages() -> set[str]:
    return {f"tracker.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("lint-imports"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stages_import_only_downward() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contract has teeth: the core importing the CLI, even lazily, is reported by name."""
    shutil.copytree(PACKAGE, tmp_path / "tracker", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    text = tmp_path / "tracker" / "core" / "text.py"
    text.write_text(text.read_text(encoding="utf-8") + "\n\ndef _upward() -> None:\n    import tracker.cli.main\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "tracker.core.text -> tracker.cli.main" in result.stdout


def test_every_subpackage_has_a_place_in_the_layers() -> None:
    named = set(_layers())
    assert _subpackages() == named, "add new subpackages to [tool.importlinter] layers in pyproject.toml"


def test_every_subpackage_says_what_it_owns() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 10, f"{init.relative_to(REPO)}: say what the stage owns and may import"


def test_modules_and_classes_stay_small() -> None:
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(REPO)
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{name}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_big.append(f"{name}: class {node.name} is {size} lines (at most {MAX_CLASS_LINES})")
    assert not too_big, "\n".join(too_big)


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "tracker", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    result = subprocess.run(
        [_tool("mypy"), "--cache-dir", str(tmp_path / "mypy"), "--no-error-summary"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
