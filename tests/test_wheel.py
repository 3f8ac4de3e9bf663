"""A non-editable install works on its own: rules, migrations and demo content ship in the wheel."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stderr[-2000:]}")
    (path,) = out.glob("newstracker-*.whl")
    return path


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for topic in (
        "ford-china-jv",
        "trump-xi-meeting",
        "gm-opposition",
        "industry-opposition",
        "chinese-automakers-us-entry",
        "entities",
    ):
        assert f"tracker/_bundled/rules/{topic}.toml" in names
    assert "tracker/_bundled/migrations/env.py" in names
    assert {"tracker/templates/digest.html.j2", "tracker/templates/digest.txt.j2"} <= names
    assert any(n.startswith("tracker/_bundled/migrations/versions/") for n in names)
    assert "tracker/demo/articles.json" in names
    assert "tracker/default_feeds.toml" in names
    assert "tracker/stories/model.json" in names  # the story model's weights, loaded offline


def test_installed_wheel_runs_demo_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "TRACKER_HOME": str(tmp_path / "home")}
    env.pop("TRACKER_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "demo"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    where = subprocess.run(
        [sys.executable, "-c", "import tracker; print(tracker.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site))
    con = sqlite3.connect(elsewhere / "tracker.sqlite")
    assert con.execute("SELECT count(DISTINCT rule_id) FROM tagged_items").fetchone()[0] == 5
