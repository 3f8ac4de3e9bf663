"""The `tracker` command: a thin shell over the library.

Each command parses its input, calls one library function and prints the result. Heavy
libraries (trafilatura, lxml, SQLAlchemy) are imported inside the commands so that
``tracker --help`` stays fast.

This module owns the root group (`cli`), `main()` and the last-resort one-line error
handling; the commands live one module per group (polling, tagging, reading, feeds,
operations) and are attached to the group here. The plumbing they share is in
``tracker.cli.common``.
"""

from __future__ import annotations

import sys

import click

from tracker import __version__
from tracker.cli import alerts, feeds, operations, polling, reading, tagging
from tracker.cli.common import Context, fail
from tracker.core.urls import redact_text


def _database_url() -> str | None:
    """The database URL of the running command, when its configuration loaded."""
    obj = Context.current
    if obj is None or obj._config is None:
        return None
    return obj._config.database_url


def _one_line(exc: BaseException) -> tuple[str, int]:
    """What went wrong, in one line, and the exit code: for the errors a user can cause
    outside our own error tree (a file that is not a database, an unreachable server, a
    path that cannot be written), and as the last resort for a bug of ours."""
    from tracker.core.errors import describe_os_error

    if isinstance(exc, click.ClickException):
        return exc.format_message().replace("\n", " "), exc.exit_code
    if isinstance(exc, click.exceptions.Abort):
        return "aborted", 1
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("psycopg"):
        from tracker.core.resources import install_hint

        return f"a PostgreSQL store needs its driver: {install_hint('postgres')}", 2
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - a dependency
        SQLAlchemyError = ()  # type: ignore[assignment,misc]
    if isinstance(exc, SQLAlchemyError):
        from tracker.store.database import describe_database_error

        return describe_database_error(exc, _database_url())
    if isinstance(exc, UnicodeError):
        return f"text that is not valid UTF-8 ({type(exc).__name__}: {getattr(exc, 'reason', exc)})", 2
    return f"internal error: {type(exc).__name__}: {exc} (run with -vv to log the traceback)", 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="TRACKER_CONFIG",
    help="Config file (TOML). Default: $TRACKER_CONFIG, else ./tracker.toml, else built-in defaults.",
)
@click.option(
    "--db",
    metavar="PATH_OR_URL",
    envvar="TRACKER_DB",
    help="The store to use instead of the config's [database] url: a SQLite file path, or a SQLAlchemy URL.",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.version_option(__version__, prog_name="tracker")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, db: str | None, verbose: int) -> None:
    """newstracker: follow topics across news feeds.

    Pulls RSS/Atom feeds, extracts each new article's full text, tags it with the topic
    rules and stores it in SQL (SQLite by default). Start with `tracker demo`.
    """
    ctx.obj = Context(config_path, verbose, db)


for _module in (polling, tagging, reading, feeds, operations, alerts):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    """Run the command; every error reaches the user as one line on stderr (exit 2 for bad
    input, 1 otherwise), never as a traceback."""
    import logging

    for i, arg in enumerate(sys.argv[1:], start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
            fail(f"argument {i} is not valid UTF-8: {shown!r}", 2)
    try:
        code = cli.main(prog_name="tracker", standalone_mode=False)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException as exc:
        logging.getLogger("tracker").debug("command failed", exc_info=exc)
        message, status = _one_line(exc)
        message = redact_text(" ".join(message.split()))
        try:
            fail(message, status)
        except UnicodeEncodeError:
            fail(message.encode("utf-8", "replace").decode("ascii", "replace"), status)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
