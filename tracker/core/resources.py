"""Where the files that ship with the tracker live.

In a wheel, ``rules/`` and ``db/migrations/`` are force-included under
``tracker/_bundled/``; in a source checkout (or an editable install) they are read
from the checkout itself. Everything else asks this module, never guesses a path.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent.parent
_CHECKOUT = PACKAGE_DIR.parent
_IN_CHECKOUT = {"rules": _CHECKOUT / "rules", "migrations": _CHECKOUT / "db" / "migrations"}


def bundled(name: str) -> Path:
    """Path of a shipped data directory: ``"rules"`` or ``"migrations"``."""
    packaged = PACKAGE_DIR / "_bundled" / name
    if packaged.is_dir():
        return packaged
    return _IN_CHECKOUT[name]


def is_checkout() -> bool:
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "db").is_dir()


def data_dir(home: str | None = None) -> Path:
    """Where the default SQLite database lives.

    ``home`` (the config layer passes ``$TRACKER_HOME``) when set; ``db/`` of the source
    checkout when running from one; otherwise the user data directory
    (e.g. ``~/.local/share/newstracker``).
    """
    if home:
        return Path(home)
    if is_checkout():
        return _CHECKOUT / "db"
    return Path(platformdirs.user_data_dir("newstracker", appauthor=False))


def install_hint(extra: str) -> str:
    """The pip command that installs an optional extra for this installation: from the
    source checkout when running from one, from the directory or file it was installed
    from (pip records it), else from the package index."""
    if is_checkout():
        return f"pip install '{_CHECKOUT}[{extra}]'"
    return f"pip install '{_installed_from() or 'newstracker'}[{extra}]'"


def _installed_from() -> str | None:
    """The local directory or file pip installed this package from (PEP 610), if any."""
    import json
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import unquote, urlsplit

    try:
        recorded = distribution("newstracker").read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    try:
        url = str(json.loads(recorded or "{}").get("url", ""))
    except ValueError:
        return None
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" and parts.path else None
