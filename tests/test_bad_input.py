"""Bad configuration and rules: one line naming the file and the key (or line), exit 2,
and nothing written — no database, no lock file — whichever command meets the mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_cli import tracker

pytestmark = pytest.mark.slow

DIGEST = '[[digests]]\nname = "desk"\nto = ["desk@example.com"]\nat = "07:00"\n'
CASES = {
    "unknown key": ("[poll]\nintervl = 5\n", r"t\.toml: poll\.intervl: unknown key"),
    "wrong type": ('[poll]\ninterval_minutes = "often"\n', r"t\.toml: poll\.interval_minutes: expected a number"),
    "bad URL": (
        '[[feeds]]\nname = "a"\nurl = "ftp://example.com/feed"\n',
        r"t\.toml: feeds\[0\]\.url: expected an http",
    ),
    "bad timezone": (
        DIGEST + 'rules = ["*"]\ntimezone = "Mars/Olympus"\n',
        r"t\.toml: digests\[0\]\.timezone: unknown IANA timezone 'Mars/Olympus'",
    ),
    "unknown rule in a digest": (
        DIGEST + 'rules = ["harbour", "no-such-topic"]\ntimezone = "UTC"\n',
        r"t\.toml: digests\[0\]\.rules: unknown rule 'no-such-topic' \(known: harbour\)",
    ),
    "rule syntax error": ("", r"rules/broken\.toml:2:\d+: "),
}


def setup(tmp_path: Path, case: str) -> Path:
    body, _ = CASES[case]
    if "[[digests]]" not in body:
        body += DIGEST + 'rules = ["harbour"]\ntimezone = "UTC"\n'  # so that `digest send` gets as far
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "harbour.toml").write_text('id = "harbour"\ntitle = "Harbour"\nquery = "harbour AND board"\n')
    if case == "rule syntax error":
        (rules / "broken.toml").write_text('id = "broken"\nquery = "harbour AND (board OR quay"\n')
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/db/t.sqlite"\n[rules]\npaths = ["{rules}"]\n{body}')
    return cfg


@pytest.mark.parametrize("command", [("poll", "--once"), ("run",), ("init",), ("digest", "send", "--now")])
@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, case: str, command: tuple[str, ...]) -> None:
    cfg = setup(tmp_path, case)
    result = tracker("--config", str(cfg), *command)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert re.search(CASES[case][1], lines[0]), lines[0]
    assert not (tmp_path / "db").exists() or not any((tmp_path / "db").iterdir())  # nothing written
