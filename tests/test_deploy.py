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


DEPLOY = REPO / "deploy"


def test_dockerfile_copies_what_exists_and_migrates_before_running() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY")]
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), source
    assert any(".[postgres]" in line for line in lines if line.startswith("RUN pip install"))
    assert lines[-1] == 'CMD ["sh", "-c", "tracker init && exec tracker run"]'
    assert "USER tracker" in lines


def test_compose_runs_workers_on_postgresql_with_a_mail_catcher() -> None:
    import yaml

    from tracker.core.config import load_config

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert "mailpit" in services["mail"]["image"]
    tracker = services["tracker"]
    assert tracker["depends_on"]["db"]["condition"] == "service_healthy"
    mounted = {v.split(":")[1]: v.split(":")[0] for v in tracker["volumes"]}
    config_file = DEPLOY / mounted[tracker["environment"]["TRACKER_CONFIG"]]
    config = load_config(config_file)  # the file it mounts is a valid config
    assert config.database_url.startswith("postgresql+psycopg://tracker:tracker@db:5432/")
    db_env = services["db"]["environment"]
    assert (db_env["POSTGRES_USER"], db_env["POSTGRES_DB"]) == ("tracker", "tracker")
    assert (config.smtp.host, config.smtp.port) == ("mail", 1025)  # Mailpit's SMTP port
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"127.0.0.1:{config.service.metrics_port}/healthz" in dockerfile  # the image's health check


def test_example_production_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.core.config import load_config

    monkeypatch.setenv("TRACKER_SMTP_PASSWORD", "secret")
    config = load_config(DEPLOY / "tracker.example.toml")
    assert config.digests and config.feeds and config.log_format == "json"
