"""Set-up and polling: `tracker init`, `tracker poll`, `tracker run` and the offline `tracker demo`."""

from __future__ import annotations

from pathlib import Path

import click

from tracker.cli.common import Context, CycleProgress, handle_errors, pass_ctx


@click.command()
@pass_ctx
@handle_errors
def init(ctx: Context) -> None:
    """Create the database, or upgrade it to the current schema."""
    from tracker.service.app import open_store, validate
    from tracker.store.migrate import current_revision

    ctx.setup_logging()
    validate(ctx.config)
    store = open_store(ctx.config)
    click.echo(f"database ready: {store.url} (schema {current_revision(store.engine)})")


@click.command()
@click.option("--once", is_flag=True, help="Run one full cycle over every feed and exit.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl"]),
    default="table",
    show_default=True,
    help="The summary of --once: tables, or the cycle report as JSON.",
)
@pass_ctx
@handle_errors
def poll(ctx: Context, once: bool, fmt: str) -> None:
    """Poll the configured feeds: one full cycle with --once, else on the schedule.

    Exits 0 when the cycle completed, even if some feeds failed (they are listed and
    recorded on the feed).
    """
    if not once:
        from tracker.service.scheduler import run_service

        ctx.setup_logging(ctx.config.log_level)
        run_service(ctx.config)
        return
    from tracker.analysis.tables import cycle_summary
    from tracker.service.app import poll_once

    ctx.setup_logging()
    with CycleProgress() as shown:
        report = poll_once(ctx.config, progress=shown.tell)
    if fmt != "table":
        from tracker.core.jsonout import dumps, plain_value

        click.echo(dumps({**plain_value(report), "new_items": report.new_items}, indent=2 if fmt == "json" else None))
        return
    click.echo(cycle_summary(report))


@click.command()
@pass_ctx
@handle_errors
def run(ctx: Context) -> None:
    """Run the tracker as a long-lived service (polls on a schedule with APScheduler)."""
    from tracker.service.scheduler import run_service

    ctx.setup_logging(ctx.config.log_level)
    run_service(ctx.config)


@click.command()
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the demo store (default: ./tracker.sqlite, which the next commands here then read).",
)
@pass_ctx
@handle_errors
def demo(ctx: Context, db_path: Path | None) -> None:
    """Poll a small built-in news site on 127.0.0.1 into a fresh SQLite store.

    Works offline: starts the demo site, runs one full cycle, prints what happened per
    feed and per topic, and where the store is. Without --db the store is
    ./tracker.sqlite, so `tracker stories`, `search`, `report`, `web`, ... run in this
    directory afterwards read it without flags.
    """
    from tracker.core.config import load_config
    from tracker.core.locations import LOCAL_DATABASE, database_url
    from tracker.demo.run import run_demo

    ctx.setup_logging()
    if db_path is None and ctx.db and "://" not in ctx.db:
        db_path = Path(ctx.db)
    path = (db_path or Path(LOCAL_DATABASE)).resolve()

    def reads_it() -> bool:
        """Whether the next command here opens this store without flags (else the hints say --db)."""
        return ctx.db is None and load_config(ctx.config_path).database_url == database_url(str(path))

    with CycleProgress("polling the demo site") as shown:
        run_demo(path, echo=click.echo, reads_it=reads_it, progress=shown.tell)


COMMANDS: tuple[click.Command, ...] = (init, poll, run, demo)
