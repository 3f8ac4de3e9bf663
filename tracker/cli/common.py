"""What every command module shares: the command's Context, the one-line error handling of
TrackerError, and the option types the commands have in common."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tracker.core.errors import BadQueryError, ConfigError, RuleError, TrackerError

if TYPE_CHECKING:
    from tracker.core.config import Config
    from tracker.store.database import Store

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> None:
    click.echo(f"tracker: error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn TrackerError into a one-line message: exit 2 for bad input, 1 otherwise."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigError, RuleError, BadQueryError) as exc:
            fail(str(exc), 2)
        except TrackerError as exc:
            fail(str(exc), 1)

    return wrapper  # type: ignore[return-value]


class Context:
    current: Context | None = None  #: the command's context, for error messages after it ended

    def __init__(self, config_path: str | None, verbose: int, db: str | None = None) -> None:
        Context.current = self
        self.config_path = config_path
        self.verbose = verbose
        self.db = db
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from dataclasses import replace

            from tracker.core.config import load_config
            from tracker.core.locations import database_url

            config = load_config(self.config_path)
            if self.db:
                config = replace(config, database_url=database_url(self.db))
            self._config = config
            if self.verbose:
                click.echo(f"tracker: {in_use(config)}", err=True)
        return self._config

    def check_rule(self, rule_id: str | None) -> None:
        """An unknown ``--rule`` is an error (exit 2) naming the rules there are."""
        if rule_id is None:
            return
        from tracker.rules.rulefiles import rule_ids

        known = rule_ids(self.config.rule_paths)
        if rule_id not in known:
            fail(f"no rule {rule_id!r}; the rules are: {', '.join(known)}", 2)

    def read_store(self) -> Store:
        """The store for a command that only reads (never created or changed)."""
        from tracker.service.app import read_store

        return read_store(self.config, given_as=self.given_as())

    def existing_store(self) -> Store:
        """The store for a command that changes what is in it; never created."""
        from tracker.service.app import existing_store

        return existing_store(self.config, given_as=self.given_as())

    def given_as(self) -> str | None:
        """Where the store was named when not in the config: ``--db`` or ``$TRACKER_DB``."""
        import os

        if not self.db:
            return None
        return "--db" if os.environ.get("TRACKER_DB") != self.db else "$TRACKER_DB"

    def setup_logging(self, default: str = "WARNING") -> None:
        from tracker.core.logs import setup

        level = {0: default, 1: "INFO"}.get(self.verbose, "DEBUG")
        setup(level, self.config.log_format)


class CycleProgress:
    """A progress line on a terminal for a poll cycle (feeds done of due, articles stored);
    nothing at all when stderr is not a terminal. Use as a context manager; pass ``tell``."""

    def __init__(self, label: str = "polling") -> None:
        self.label = label
        self.shown = False
        self.on = sys.stderr.isatty()

    def tell(self, done: int, total: int, stored: int) -> None:
        if not self.on:
            return
        finished = done == total
        click.echo(f"\r{self.label}: {done}/{total} feeds, {stored} articles stored", nl=finished, err=True)
        self.shown = not finished

    def __enter__(self) -> CycleProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:  # stopped before the end: end the line
            click.echo("", err=True)


def in_use(config: Config) -> str:
    """Which config file, database and rules a command works with, in one line."""
    summary = config.summary()
    return f"config {summary['config']}; database {summary['database']}; rules {', '.join(summary['rules'])}"


def emit(rows: Sequence[Mapping[str, Any]], fmt: str, *, columns: Mapping[str, str]) -> None:
    """Print listing rows: a table of ``columns`` (header -> key) that fits the terminal, or
    every field as JSON (one array) or JSON Lines, with times in ISO 8601."""
    if fmt == "table":
        from tracker.analysis.tables import table

        width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else None
        click.echo(table(list(columns), ([row.get(k) for k in columns.values()] for row in rows), width=width))
        return
    from tracker.core.jsonout import dumps

    if fmt == "json":
        click.echo(dumps(list(rows), indent=2))
    else:
        for row in rows:
            click.echo(dumps(row))


pass_ctx = click.make_pass_decorator(Context)

DAY = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])
