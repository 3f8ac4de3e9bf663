"""The ``[[alerts]]`` tables of the configuration: who is told what, where, and when not.

Each alert names the rules it follows (ids or ``"*"``), the notification URLs it sends to
(Apprise syntax: ``slack://``, ``msteams://``, ``matrix://``, ``tgram://``, ``discord://``,
``ntfy://``, ``mailto://``, ``json://``, ``form://`` ...), the events it sends (``new_story``,
``update``, ``spike``), the lowest match score it takes, and optional quiet hours in a
timezone during which messages are held and sent afterwards as one summary.

Secrets stay out of the file: ``${NAME}`` anywhere in a URL is replaced by the environment
variable ``NAME`` here, and only here. The URL as written (with ``${NAME}``) is what the
tracker shows and logs; the expanded one is used to send and nowhere else. A variable
that is not set is not an error at load time (read commands do not need it); sending to
that URL fails, and says which variable is missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tracker.core.errors import ConfigError

EVENTS = ("new_story", "update", "spike")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """One ``[[alerts]]`` table. ``urls`` are as written (``${NAME}`` unexpanded: safe to
    show); ``expanded`` are the same URLs with the environment filled in (secret)."""

    name: str
    urls: tuple[str, ...] = field(repr=False)  #: may hold a token written in the file
    rules: tuple[str, ...] = ("*",)
    events: tuple[str, ...] = ("new_story", "update")
    min_score: float = 0.0
    quiet: tuple[time, time] | None = None  #: (start, end) local times; end may be before start
    timezone: str = "UTC"
    burst: int = 5  #: more events than this in one go are sent as one summary message
    timeout: float = 10.0  #: seconds per URL to connect, and to wait for an answer
    attempts: int = 8  #: tries per message and URL before it is given up
    backoff: float = 60.0  #: seconds before the second try, doubling after (at most an hour)
    expanded: tuple[str, ...] = field(default=(), repr=False)
    missing: tuple[tuple[str, ...], ...] = ()  #: per URL, the variables not set in the environment
    secrets: tuple[str, ...] = field(default=(), repr=False)  #: expanded values, to scrub from errors

    def is_quiet(self, now: datetime) -> bool:
        """Is ``now`` (aware) inside the quiet hours, in the alert's timezone?"""
        if self.quiet is None:
            return False
        start, end = self.quiet
        local = now.astimezone(ZoneInfo(self.timezone)).time().replace(tzinfo=None)
        if start < end:
            return start <= local < end
        return local >= start or local < end

    def follows(self, rule_id: str) -> bool:
        return "*" in self.rules or rule_id in self.rules


_KEYS = {
    "name",
    "rules",
    "urls",
    "events",
    "min_score",
    "quiet",
    "timezone",
    "burst",
    "timeout",
    "attempts",
    "backoff",
}


def parse_alerts(data: Mapping[str, Any], where: str, env: Mapping[str, str]) -> tuple[AlertConfig, ...]:
    """The ``[[alerts]]`` tables of a parsed TOML document; ConfigError names file and key."""
    from tracker.core.config import _no_unknown, _ranged, _str_list, _typed

    raw = data.get("alerts", [])
    if not isinstance(raw, list):
        raise ConfigError("expected an array of tables ([[alerts]])", path=where, key="alerts")
    out: list[AlertConfig] = []
    for i, table in enumerate(raw):
        prefix = f"alerts[{i}]."
        if not isinstance(table, dict):
            raise ConfigError("expected a table", path=where, key=f"alerts[{i}]")
        _no_unknown(table, _KEYS, where, prefix)
        name = _typed(table, "name", str, where, prefix).strip()
        if not name:
            raise ConfigError("must not be empty", path=where, key=prefix + "name")
        if any(a.name == name for a in out):
            raise ConfigError(f"duplicate alert name {name!r}", path=where, key=prefix + "name")
        urls = tuple(u.strip() for u in _str_list(table, "urls", where, prefix)) if "urls" in table else ()
        if not urls or any(not u for u in urls):
            raise ConfigError("expected at least one notification URL", path=where, key=prefix + "urls")
        for url in urls:
            if "://" not in url:
                raise ConfigError(f"not a notification URL (schema://...): {url!r}", path=where, key=prefix + "urls")
        rules = tuple(_str_list(table, "rules", where, prefix)) if "rules" in table else ("*",)
        events = tuple(_str_list(table, "events", where, prefix)) if "events" in table else ("new_story", "update")
        bad = [e for e in events if e not in EVENTS]
        if bad or not events:
            raise ConfigError(
                f"unknown event {', '.join(map(repr, bad))} (known: {', '.join(EVENTS)})" if bad else "no events",
                path=where,
                key=prefix + "events",
            )
        tz = _typed(table, "timezone", str, where, prefix, "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown IANA timezone {tz!r}", path=where, key=prefix + "timezone") from None
        quiet = _quiet(_typed(table, "quiet", str, where, prefix, ""), where, prefix + "quiet")
        expanded, missing, secrets = _expand(urls, env)
        out.append(
            AlertConfig(
                name=name,
                urls=urls,
                rules=rules,
                events=tuple(dict.fromkeys(events)),
                min_score=float(_ranged(table, "min_score", (int, float), where, prefix, 0.0)),
                quiet=quiet,
                timezone=tz,
                burst=int(_ranged(table, "burst", int, where, prefix, 5)),
                timeout=float(_ranged(table, "timeout", (int, float), where, prefix, 10.0)),
                attempts=int(_ranged(table, "attempts", int, where, prefix, 8)),
                backoff=float(_ranged(table, "backoff", (int, float), where, prefix, 60.0)),
                expanded=expanded,
                missing=missing,
                secrets=secrets,
            )
        )
    return tuple(out)


#: (lowest, highest, lowest allowed) per key, as ``tracker.core.config._RANGES``
RANGES: dict[str, tuple[float, float, bool]] = {
    "alerts.min_score": (0, 1_000_000, True),
    "alerts.burst": (1, 10_000, True),
    "alerts.timeout": (0, 600, False),
    "alerts.attempts": (1, 1000, True),
    "alerts.backoff": (0, 86_400, True),
}


def _quiet(text: str, where: str, key: str) -> tuple[time, time] | None:
    if not text.strip():
        return None
    m = _QUIET.match(text)
    hours = (int(m[1]), int(m[3])) if m else (99, 99)
    if m is None or max(hours) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
        raise ConfigError(f'expected HH:MM-HH:MM (e.g. "22:00-07:00"), got {text!r}', path=where, key=key)
    start, end = time(int(m[1]), int(m[2])), time(int(m[3]), int(m[4]))
    if start == end:
        raise ConfigError(f"quiet hours start and end at the same time: {text!r}", path=where, key=key)
    return start, end


def _expand(
    urls: tuple[str, ...], env: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """URLs with ``${NAME}`` filled in from ``env``; the names not set, per URL; the values used."""
    expanded: list[str] = []
    missing: list[tuple[str, ...]] = []
    secrets: list[str] = []
    for url in urls:
        names = _VAR.findall(url)
        absent = tuple(n for n in dict.fromkeys(names) if n not in env)
        secrets.extend(env[n] for n in names if env.get(n))
        full = _VAR.sub(lambda m: env.get(m[1], m[0]), url)
        expanded.append(full)
        missing.append(absent)
        with suppress(ValueError):
            if urlsplit(full).password:  # a password written in the file: never shown either
                secrets.append(unquote(urlsplit(full).password or ""))
    return tuple(expanded), tuple(missing), tuple(dict.fromkeys(secrets))
