"""deploy/: the systemd unit is hardened and passes `systemd-analyze verify` (where systemd is)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

UNIT = REPO / "deploy" / "tracker.service"


def test_unit_is_hardened() -> None:
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "newstracker",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "KillMode": "mixed",
    }.items():
        assert settings.get(key) == value, key
    assert settings["ExecStartPre"].endswith("tracker init")  # migrations run before start
    assert settings["ExecStart"].endswith("tracker run")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze on this machine")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    tracker = Path(sys.executable).with_name("tracker")
    unit = tmp_path / "tracker.service"
    unit.write_text(UNIT.read_text().replace("/opt/newstracker/venv/bin/tracker", str(tracker)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if "tracker.service" in line]
    assert problems == []
