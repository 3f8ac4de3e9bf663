"""tracker.core.config: lookup order, validation errors that name file and key, relative paths, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.core.config import Config, load_config
from tracker.core.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "tracker.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value


FEEDS = """
[[feeds]]
name = "Harbour Gazette"
url = "https://gazette.example/rss.xml"

[[feeds]]
url = "https://lantern.example/feed.atom"
"""


# --- lookup order ---------------------------------------------------------------------


def test_explicit_file(tmp_path: Path) -> None:
    path = write(tmp_path, FEEDS)
    cfg = load_config(path, env={})
    assert cfg.path == path
    assert not cfg.feeds_are_default
    assert [(f.name, f.url) for f in cfg.feeds] == [
        ("Harbour Gazette", "https://gazette.example/rss.xml"),
        # a feed without a name is named by its URL
        ("https://lantern.example/feed.atom", "https://lantern.example/feed.atom"),
    ]


def test_explicit_file_wins_over_env(tmp_path: Path) -> None:
    explicit = write(tmp_path, FEEDS, "explicit.toml")
    other = write(tmp_path, "[poll]\ninterval_minutes = 5\n", "other.toml")
    cfg = load_config(explicit, env={"TRACKER_CONFIG": str(other)})
    assert cfg.path == explicit
    assert cfg.poll.interval_minutes == 30.0


def test_tracker_config_from_env_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[poll]\ninterval_minutes = 99\n")  # ./tracker.toml is lower in the order
    path = write(tmp_path / "etc", "[poll]\ninterval_minutes = 5\n")
    cfg = load_config(None, env={"TRACKER_CONFIG": str(path)})
    assert cfg.path == path
    assert cfg.poll.interval_minutes == 5


def test_tracker_toml_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[poll]\ninterval_minutes = 7\n")
    cfg = load_config(None, env={})
    assert cfg.poll.interval_minutes == 7
    assert cfg.path is not None and cfg.path.name == "tracker.toml"


def test_builtin_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={})
    assert cfg.path is None
    assert cfg.feeds_are_default
    assert len(cfg.feeds) > 0
    assert cfg.database_url.startswith("sqlite:///") and cfg.database_url.endswith("tracker.sqlite")
    assert cfg.fetch.allow_private_addresses is False
    assert cfg.summary()["config"] == "(built-in defaults)"


def test_missing_file_named_by_env_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(None, env={"TRACKER_CONFIG": str(missing)})
    assert str(missing) in str(info.value)


# --- errors name the file and the key -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('colour = "red"\n', "colour"),
        ("[fetch]\ntimeoutt = 3\n", "fetch.timeoutt"),
        ('[smtp]\nhost = "mail.example"\npasword = "x"\n', "smtp.pasword"),
        ("[[feeds]]\nurl = 5\n", "feeds[0].url"),
        ('[fetch]\nallow_private_addresses = "yes"\n', "fetch.allow_private_addresses"),
        ("[fetch]\nmax_redirects = true\n", "fetch.max_redirects"),
        ("[fetch]\nmax_bytes = 1.5\n", "fetch.max_bytes"),
        ("[fetch]\nread_timeout = -1\n", "fetch.read_timeout"),
        ('[[feeds]]\nurl = "ftp://files.example/feed.xml"\n', "feeds[0].url"),
        ('[[feeds]]\nurl = "http:///feed.xml"\n', "feeds[0].url"),
        ('[[feeds]]\nname = "x"\n', "feeds[0].url"),
        ('[feeds]\nurl = "https://a.example/f"\n', "feeds"),
        (
            '[[feeds]]\nurl = "https://a.example/f"\n[[feeds]]\nurl = "https://b.example/f"\n'
            '[[feeds]]\nname = "again"\nurl = "https://a.example/f"\n',
            "feeds[2].url",
        ),
        ('[[digests]]\nname = "d"\nto = ["a@b.example"]\ntimezone = "Mars/Olympus"\n', "digests[0].timezone"),
        ('[[digests]]\nname = "d"\nto = ["a@b.example"]\nat = "25:00"\n', "digests[0].at"),
        ('[[digests]]\nname = "d"\nto = ["a@b.example"]\nat = "7"\n', "digests[0].at"),
        ('[[digests]]\nname = "d"\nto = "a@b.example"\nsubject = "x"\n', "digests[0].subject"),
        ('[logging]\nformat = "xml"\n', "logging.format"),
        ('[database]\nurl = "not a url"\n', "database.url"),
    ],
)
def test_error_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    err = load_error(path)
    assert isinstance(err, ValueError)  # ConfigError mixes in ValueError
    assert err.key == key
    assert str(path) in str(err)
    assert key in str(err)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[fetch\nread_timeout = 3\n", 1),
        ("[fetch]\nread_timeout = = 3\n", 2),
        ("[poll]\ninterval_minutes = 1\ninterval_minutes = 2\n", 3),
    ],
)
def test_invalid_toml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    # A TOML syntax error has no key: the message locates it by line instead.
    path = write(tmp_path, text)
    err = load_error(path)
    assert str(path) in str(err)
    assert "not valid TOML" in str(err)
    assert f"line {line}" in str(err)


# --- relative paths -------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        tmp_path / "conf",
        '[database]\nurl = "sqlite:///data/t.sqlite"\n[rules]\npaths = ["myrules", "/abs/rules"]\n',
    )
    cfg = load_config(path, env={})
    conf_dir = (tmp_path / "conf").resolve()
    assert cfg.database_url == f"sqlite:///{conf_dir / 'data' / 't.sqlite'}"
    assert cfg.rule_paths == (conf_dir / "myrules", Path("/abs/rules"))


def test_rules_paths_may_be_a_single_string(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[rules]\npaths = "topics"\n'), env={})
    assert cfg.rule_paths == (tmp_path.resolve() / "topics",)


@pytest.mark.parametrize("url", ["sqlite:////var/lib/tracker.sqlite", "sqlite:///:memory:", "postgresql://h/db"])
def test_absolute_and_non_file_database_urls_are_unchanged(tmp_path: Path, url: str) -> None:
    cfg = load_config(write(tmp_path, f'[database]\nurl = "{url}"\n'), env={})
    assert cfg.database_url == url


# --- secrets -----------------------------------------------------------------------------------


SMTP = """
[smtp]
host = "mail.example"
username = "digest"
password_env = "TRACKER_SMTP_PASSWORD"
"""


def smtp_config(tmp_path: Path, env: dict[str, str]) -> Config:
    return load_config(write(tmp_path, SMTP), env=env)


def test_password_env_resolves_from_the_env_mapping(tmp_path: Path) -> None:
    cfg = smtp_config(tmp_path, {"TRACKER_SMTP_PASSWORD": "tide-4-lantern"})
    assert cfg.smtp.password == "tide-4-lantern"


def test_password_env_unset_is_not_fatal_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The mapping is the only source: the process environment is not consulted.
    monkeypatch.setenv("TRACKER_SMTP_PASSWORD", "from-os-environ")
    cfg = smtp_config(tmp_path, {})
    assert cfg.smtp.password is None


def test_summary_and_repr_hide_secrets(tmp_path: Path) -> None:
    secret = "tide-4-lantern"
    text = SMTP + '\n[database]\nurl = "postgresql://tracker:dbsecret99@db.example/news"\n'
    cfg = load_config(write(tmp_path, text), env={"TRACKER_SMTP_PASSWORD": secret})
    summary = cfg.summary()
    assert summary["smtp"]["password"] == "(hidden)"
    assert summary["smtp"]["username"] == "digest"
    assert secret not in str(summary)
    assert "dbsecret99" not in summary["database"]
    assert "db.example" in summary["database"]
    assert secret not in repr(cfg)
