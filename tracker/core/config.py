"""Configuration: one TOML file loaded once into frozen dataclasses.

Lookup order: ``--config FILE``, then ``$TRACKER_CONFIG``, then ``./tracker.toml``,
then built-in defaults. What a file does not set comes from the current directory when it
holds it (``./tracker.sqlite``, ``./rules/``), else from the data directory and the
shipped rules. Unknown keys and wrong types raise ConfigError naming the file
and the key. Relative paths in the file are relative to the file's directory. Secrets
may come from the environment (``password_env``); they are resolved here, and only here.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tracker.core import resources
from tracker.core.alertconfig import RANGES as _ALERT_RANGES
from tracker.core.alertconfig import AlertConfig, parse_alerts
from tracker.core.errors import ConfigError
from tracker.core.locations import default_database, default_rules, find_config_file
from tracker.core.schedule import Cadence
from tracker.core.types import FeedSource
from tracker.core.urls import validate_feed_url


@dataclass(frozen=True, slots=True)
class FetchConfig:
    allow_private_addresses: bool = False
    allowed_hosts: tuple[str, ...] = ()  #: article hosts exempt from the private-address guard
    user_agent: str = ""  #: empty: "newstracker/<version> (+project URL)"
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0  #: whole response, body included
    max_bytes: int = 10_000_000  #: decompressed body size cap
    max_redirects: int = 5
    concurrency: int = 16  #: requests in flight overall
    per_host_concurrency: int = 2  #: requests in flight to one host
    per_host_per_minute: int = 60  #: requests started per minute to one host; 0: no limit
    extract_workers: int = 0  #: processes for extraction; 0 = one per core
    extract_timeout: float = 20.0  #: seconds one page may take to extract (then: feed text); 0: no limit
    extract_memory_mb: int = 512  #: memory one extraction may add to its worker (then: feed text); 0: no limit


@dataclass(frozen=True, slots=True)
class PollConfig:
    interval_minutes: float = 30.0  #: a new feed's first interval, and the base of failure backoff
    min_interval_minutes: float = 10.0  #: the fastest a busy feed is polled
    max_interval_minutes: float = 360.0  #: the slowest a quiet feed is polled (server hints may say more)
    entries_per_poll: float = 1.0  #: poll about as often as this many new entries appear
    max_backoff_hours: float = 12.0  #: the longest wait between retries of a failing feed
    park_after_days: float = 3.0  #: a feed failing this long is parked
    parked_interval_hours: float = 24.0  #: how often a parked feed is retried
    max_entries_per_feed: int = 1000  #: newest first; a bound for feeds with thousands of entries
    min_text_chars: int = 300  #: extracted text shorter than this falls back to the feed text
    alert_budget: float = 30.0  #: seconds the alerts sent at the end of a cycle may take, all URLs together

    def cadence(self) -> Cadence:
        return Cadence(
            interval=timedelta(minutes=self.interval_minutes),
            min_interval=timedelta(minutes=min(self.min_interval_minutes, self.max_interval_minutes)),
            max_interval=timedelta(minutes=self.max_interval_minutes),
            entries_per_poll=self.entries_per_poll,
            max_backoff=timedelta(hours=self.max_backoff_hours),
            park_after=timedelta(days=self.park_after_days),
            parked_interval=timedelta(hours=self.parked_interval_hours),
        )


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    metrics_port: int = 0  #: health and Prometheus metrics on this loopback port; 0: off
    metrics_host: str = "127.0.0.1"
    stop_timeout: float = 30.0  #: on SIGTERM, seconds to let in-flight work finish before abandoning it
    lease_minutes: float = 10.0  #: how long a worker owns the feeds it claimed (PostgreSQL scale-out)
    claim_batch: int = 500  #: feeds claimed per cycle by one worker


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    at: str = "03:30"  #: the daily maintenance job's time, UTC
    keep_raw_html_days: int = 30  #: stored pages older than this are dropped (their text stays); 0 keeps all
    keep_fetch_log_days: int = 90  #: 0 keeps all
    backup_dir: str = ""  #: SQLite backups; default: backups/ beside the database
    backups: int = 7  #: how many to keep; 0 makes none


@dataclass(frozen=True, slots=True)
class SpikeConfig:
    """Volume spikes per topic, looked for after every poll cycle (``topic_spikes``)."""

    enabled: bool = True
    #: 0–10: a count is a spike when its chance under the topic's baseline is at most
    #: 10 ** (sensitivity − 10) a day (an hour: a 24th of that); each step up: ten times the alarms
    sensitivity: float = 8.0
    min_count: int = 5  #: fewer stories (or items) than this in a bucket are never a spike
    hourly: bool = True  #: look at hours as well as days


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None
    sender: str = "newstracker@localhost"
    timeout: float = 30.0
    ca_file: str | None = None  #: a private CA to trust for TLS (else the system's)
    attempts: int = 3  #: tries per message; transient failures only
    backoff: float = 2.0  #: seconds before the second try, doubling after


@dataclass(frozen=True, slots=True)
class DigestConfig:
    name: str
    to: tuple[str, ...]
    rules: tuple[str, ...] = ("*",)
    at: str = "07:00"
    timezone: str = "UTC"
    min_score: float = 0.0
    max_stories: int = 10
    send_empty: bool = False
    #: leave out updates that report nothing the story had not reported (see ``items.adds_new``)
    only_new_facts: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str = field(repr=False)  # may carry a password
    feeds: tuple[FeedSource, ...]
    rule_paths: tuple[Path, ...]
    fetch: FetchConfig = FetchConfig()
    poll: PollConfig = PollConfig()
    smtp: SmtpConfig = SmtpConfig()
    spikes: SpikeConfig = SpikeConfig()
    digests: tuple[DigestConfig, ...] = ()
    alerts: tuple[AlertConfig, ...] = ()
    maintenance: MaintenanceConfig = MaintenanceConfig()
    service: ServiceConfig = ServiceConfig()
    log_level: str = "INFO"
    log_format: str = "plain"
    path: Path | None = None  #: the file this came from; None for built-in defaults
    feeds_are_default: bool = False

    def summary(self) -> dict[str, Any]:
        """Effective settings for logging, with secrets hidden."""
        smtp = {f.name: getattr(self.smtp, f.name) for f in fields(self.smtp)}
        if smtp["password"]:
            smtp["password"] = "(hidden)"
        return {
            "config": str(self.path) if self.path else "(built-in defaults)",
            "database": _hide_password(self.database_url),
            "feeds": len(self.feeds),
            "rules": [str(p) for p in self.rule_paths],
            "allow_private_addresses": self.fetch.allow_private_addresses,
            "smtp": smtp,
            "digests": [d.name for d in self.digests],
            "alerts": {a.name: [u.partition("://")[0] for u in a.urls] for a in self.alerts},  # no tokens
        }


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a bad URL is reported when the engine is built
        return url


def default_feeds() -> tuple[FeedSource, ...]:
    path = resources.PACKAGE_DIR / "default_feeds.toml"
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return tuple(_feed(f, str(path), i) for i, f in enumerate(data.get("feeds", [])))


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration following the lookup order (see module docstring)."""
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    if file is None:
        return _defaults(env)
    try:
        with open(file, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config file not found", path=str(file)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(file)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(file)) from None
    return parse_config(data, file, env)


def _defaults(env: Mapping[str, str]) -> Config:
    return Config(
        database_url=default_database(env),
        feeds=default_feeds(),
        rule_paths=(default_rules(),),
        feeds_are_default=True,
    )


_TOP_KEYS = {"database", "feeds", "rules", "fetch", "poll", "smtp", "digests", "alerts", "maintenance"}
_TOP_KEYS |= {"service", "logging", "spikes"}


def parse_config(data: Mapping[str, Any], file: Path, env: Mapping[str, str]) -> Config:
    """Validate a parsed TOML document; ``file`` is used for messages and relative paths."""
    where = str(file)
    base = file.resolve().parent
    _no_unknown(data, _TOP_KEYS, where, "")
    cfg = _defaults(env)
    database = _table(data, "database", where)
    _no_unknown(database, {"url"}, where, "database.")
    if "url" in database:
        cfg = replace(cfg, database_url=_database_url(_typed(database, "url", str, where, "database."), base, where))
    if "feeds" in data:
        raw = data["feeds"]
        if not isinstance(raw, list):
            raise ConfigError("expected an array of tables ([[feeds]])", path=where, key="feeds")
        feeds = tuple(_feed(f, where, i) for i, f in enumerate(raw))
        _unique_feeds(feeds, where)
        cfg = replace(cfg, feeds=feeds, feeds_are_default=False)
    rules = _table(data, "rules", where)
    _no_unknown(rules, {"paths"}, where, "rules.")
    if "paths" in rules:
        paths = _str_list(rules, "paths", where, "rules.")
        cfg = replace(cfg, rule_paths=tuple(_resolve(p, base) for p in paths))
    cfg = replace(cfg, fetch=_section(data, "fetch", FetchConfig, where))
    cfg = replace(cfg, poll=_section(data, "poll", PollConfig, where))
    smtp = _section(data, "smtp", SmtpConfig, where)
    cfg = replace(cfg, smtp=_smtp_secret(smtp, env, where))
    cfg = replace(cfg, digests=_digests(data, where), alerts=parse_alerts(data, where, env))
    maintenance = _section(data, "maintenance", MaintenanceConfig, where)
    if not _valid_time(maintenance.at):
        raise ConfigError(f"expected HH:MM, got {maintenance.at!r}", path=where, key="maintenance.at")
    if maintenance.backup_dir:
        maintenance = replace(maintenance, backup_dir=str(_resolve(maintenance.backup_dir, base)))
    cfg = replace(cfg, maintenance=maintenance)
    cfg = replace(cfg, service=_section(data, "service", ServiceConfig, where))
    cfg = replace(cfg, spikes=_section(data, "spikes", SpikeConfig, where))
    logging_ = _table(data, "logging", where)
    _no_unknown(logging_, {"level", "format"}, where, "logging.")
    level = str(_typed(logging_, "level", str, where, "logging.", "INFO")).upper()
    fmt = _typed(logging_, "format", str, where, "logging.", "plain")
    if fmt not in ("plain", "json"):
        raise ConfigError("expected 'plain' or 'json'", path=where, key="logging.format")
    return replace(cfg, log_level=level, log_format=fmt, path=file)


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"expected a table ([{key}])", path=where, key=key)
    return value


def _no_unknown(table: Mapping[str, Any], known: set[str], where: str, prefix: str) -> None:
    for key in table:
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(f"unknown key (known: {hint})", path=where, key=prefix + key)


_MISSING = object()


def _typed(table: Mapping[str, Any], key: str, typ: Any, where: str, prefix: str, default: Any = _MISSING) -> Any:
    if key not in table:
        if default is _MISSING:
            raise ConfigError("missing required key", path=where, key=prefix + key)
        return default
    value = table[key]
    ok = isinstance(value, typ) and not (typ in (int, float, (int, float)) and isinstance(value, bool))
    if not ok:
        name = {str: "a string", bool: "true or false", int: "an integer", (int, float): "a number"}.get(typ, str(typ))
        raise ConfigError(f"expected {name}, got {value!r}", path=where, key=prefix + key)
    return value


def _str_list(table: Mapping[str, Any], key: str, where: str, prefix: str) -> list[str]:
    value = table[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("expected a list of strings", path=where, key=prefix + key)
    return list(value)


def _resolve(p: str, base: Path) -> Path:
    path = Path(os.path.expanduser(p))
    return path if path.is_absolute() else base / path


def _database_url(url: str, base: Path, where: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}", path=where, key="database.url") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        db = Path(parsed.database)
        if not db.is_absolute():
            return parsed.set(database=str(base / db)).render_as_string(hide_password=False)
    return url


def _feed(raw: Any, where: str, index: int) -> FeedSource:
    prefix = f"feeds[{index}]."
    if not isinstance(raw, dict):
        raise ConfigError("expected a table with url and name", path=where, key=f"feeds[{index}]")
    _no_unknown(raw, {"url", "name", "categories"}, where, prefix)
    url = _typed(raw, "url", str, where, prefix)
    problem = validate_feed_url(url)
    if problem:
        raise ConfigError(f"{problem}: {url!r}", path=where, key=prefix + "url")
    name = _typed(raw, "name", str, where, prefix, "") or url
    categories = _str_list(raw, "categories", where, prefix) if "categories" in raw else []
    return FeedSource(url=url, name=name, categories=tuple(sorted({c.strip("/ ") for c in categories} - {""})))


def _unique_feeds(feeds: tuple[FeedSource, ...], where: str) -> None:
    seen: set[str] = set()
    for i, feed in enumerate(feeds):
        if feed.url in seen:
            raise ConfigError(f"duplicate feed url {feed.url!r}", path=where, key=f"feeds[{i}].url")
        seen.add(feed.url)


_FIELD_TYPES: dict[str, Any] = {
    "bool": bool,
    "str": str,
    "int": int,
    "float": (int, float),
    "str | None": str,
    "tuple[str, ...]": list,
}


#: what a number may be, beyond its type: (lowest, highest, whether the lowest itself is allowed).
#: A value of the right type outside its range ("connect_timeout = 0", "metrics_port = 70000")
#: is refused at load time with the file and the key, instead of failing later in the cycle.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "fetch.connect_timeout": (0, 3600, False),
    "fetch.read_timeout": (0, 3600, False),
    "fetch.total_timeout": (0, 86400, False),
    "fetch.max_bytes": (1024, 2**40, True),
    "fetch.max_redirects": (0, 50, True),
    "fetch.concurrency": (1, 1024, True),
    "fetch.per_host_concurrency": (1, 1024, True),
    "fetch.per_host_per_minute": (0, 100_000, True),
    "fetch.extract_workers": (0, 256, True),
    "fetch.extract_timeout": (0, 86400, True),
    "fetch.extract_memory_mb": (0, 2**20, True),
    "poll.interval_minutes": (0, 525_600, False),
    "poll.min_interval_minutes": (0, 525_600, False),
    "poll.max_interval_minutes": (0, 525_600, False),
    "poll.entries_per_poll": (0, 100_000, False),
    "poll.max_backoff_hours": (0, 8760, False),
    "poll.park_after_days": (0, 3650, False),
    "poll.parked_interval_hours": (0, 8760, False),
    "poll.max_entries_per_feed": (1, 1_000_000, True),
    "poll.min_text_chars": (0, 1_000_000, True),
    "service.metrics_port": (0, 65535, True),
    "service.stop_timeout": (0, 86400, True),
    "service.lease_minutes": (0, 10_080, False),
    "service.claim_batch": (1, 1_000_000, True),
    "maintenance.keep_raw_html_days": (0, 36_500, True),
    "maintenance.keep_fetch_log_days": (0, 36_500, True),
    "maintenance.backups": (0, 10_000, True),
    "smtp.port": (1, 65535, True),
    "smtp.timeout": (0, 3600, False),
    "smtp.attempts": (1, 100, True),
    "smtp.backoff": (0, 3600, True),
    "digests.min_score": (0, 1_000_000, True),
    "digests.max_stories": (1, 10_000, True),
    "spikes.sensitivity": (0, 10, True),
    "spikes.min_count": (1, 1_000_000, True),
    "poll.alert_budget": (0, 3600, False),
    **_ALERT_RANGES,
}


def _check_range(value: float, name: str, where: str, key: str) -> None:
    """Refuse a number of the right type that the key cannot take (see ``_RANGES``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {value!r}", path=where, key=key)
    bounds = _RANGES.get(name)
    if bounds is None:
        if value < 0:
            raise ConfigError("must not be negative", path=where, key=key)
        return
    low, high, low_ok = bounds
    if value < low or (value == low and not low_ok) or value > high:
        lowest = f"at least {_number(low)}" if low_ok else f"above {_number(low)}"
        raise ConfigError(
            f"{value!r} is out of range: expected {lowest} and at most {_number(high)}", path=where, key=key
        )


def _number(x: float) -> str:
    return f"{int(x):,}" if x == int(x) else f"{x:g}"


def _section(data: Mapping[str, Any], key: str, cls: Any, where: str) -> Any:
    table = _table(data, key, where)
    known = {f.name for f in fields(cls)}
    _no_unknown(table, known, where, key + ".")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in table:
            typ = _FIELD_TYPES[str(f.type)]
            value = _typed(table, f.name, typ, where, key + ".")
            if typ is list:
                value = tuple(_str_list(table, f.name, where, key + "."))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                _check_range(value, f"{key}.{f.name}", where, f"{key}.{f.name}")
            values[f.name] = value
    return cls(**values)


def _smtp_secret(smtp: SmtpConfig, env: Mapping[str, str], where: str) -> SmtpConfig:
    if smtp.password_env and not smtp.password:
        secret = env.get(smtp.password_env)
        if secret is None:
            # Not fatal at load time: only sending mail needs it, and it says so then.
            return smtp
        return replace(smtp, password=secret)
    return smtp


def _digests(data: Mapping[str, Any], where: str) -> tuple[DigestConfig, ...]:
    raw = data.get("digests", [])
    if not isinstance(raw, list):
        raise ConfigError("expected an array of tables ([[digests]])", path=where, key="digests")
    out = []
    for i, table in enumerate(raw):
        prefix = f"digests[{i}]."
        if not isinstance(table, dict):
            raise ConfigError("expected a table", path=where, key=f"digests[{i}]")
        _no_unknown(table, {f.name for f in fields(DigestConfig)}, where, prefix)
        name = _typed(table, "name", str, where, prefix)
        to = tuple(_str_list(table, "to", where, prefix))
        rules = tuple(_str_list(table, "rules", where, prefix)) if "rules" in table else ("*",)
        at = _typed(table, "at", str, where, prefix, "07:00")
        if not _valid_time(at):
            raise ConfigError(f"expected HH:MM, got {at!r}", path=where, key=prefix + "at")
        tz = _typed(table, "timezone", str, where, prefix, "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown IANA timezone {tz!r}", path=where, key=prefix + "timezone") from None
        out.append(
            DigestConfig(
                name=name,
                to=to,
                rules=rules,
                at=at,
                timezone=tz,
                min_score=float(_ranged(table, "min_score", (int, float), where, prefix, 0.0)),
                max_stories=int(_ranged(table, "max_stories", int, where, prefix, 10)),
                send_empty=bool(_typed(table, "send_empty", bool, where, prefix, False)),
                only_new_facts=bool(_typed(table, "only_new_facts", bool, where, prefix, False)),
            )
        )
    return tuple(out)


def _ranged(table: Mapping[str, Any], key: str, typ: Any, where: str, prefix: str, default: Any) -> Any:
    value = _typed(table, key, typ, where, prefix, default)
    _check_range(value, prefix.split("[")[0] + "." + key, where, prefix + key)
    return value


def _valid_time(at: str) -> bool:
    hh, _, mm = at.partition(":")
    return hh.isdigit() and mm.isdigit() and len(mm) == 2 and 0 <= int(hh) < 24 and 0 <= int(mm) < 60
