"""Where things are when nothing names them: the config file's lookup order, the store
(``./tracker.sqlite`` when the current directory has one, else the data directory's) and the
rules (``./rules/`` when the current directory has rule files, else the shipped ones)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tracker.core import resources


def database_url(path_or_url: str) -> str:
    """``--db``: a SQLAlchemy URL as it is; anything else is the path of a SQLite file."""
    if "://" in path_or_url:
        return path_or_url
    return f"sqlite:///{Path(os.path.expanduser(path_or_url)).resolve()}"


def default_database_url(data_dir: Path | None = None) -> str:
    return f"sqlite:///{(data_dir or resources.data_dir()) / 'tracker.sqlite'}"


def find_config_file(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """Apply the lookup order; None means built-in defaults."""
    if explicit:
        return Path(explicit)
    if env.get("TRACKER_CONFIG"):
        return Path(env["TRACKER_CONFIG"])
    local = Path("tracker.toml")
    return local if local.is_file() else None


#: the store a directory holds (`tracker demo` writes it): used when nothing names another
LOCAL_DATABASE = "tracker.sqlite"


def default_database(env: Mapping[str, str]) -> str:
    """``./tracker.sqlite`` when the current directory has one (after `tracker demo`), else
    ``tracker.sqlite`` in the data directory (``$TRACKER_HOME``, the checkout's ``db/``, or
    the user's data directory)."""
    local = Path(LOCAL_DATABASE)
    if local.is_file():
        return f"sqlite:///{local.resolve()}"
    return default_database_url(resources.data_dir(env.get("TRACKER_HOME")))


def default_rules() -> Path:
    """``./rules`` when the current directory has rule files, else the shipped rules."""
    local = Path("rules")
    if local.is_dir() and any(local.glob("*.toml")):
        return local.resolve()
    return resources.bundled("rules")
