"""`tracker alerts test NAME` and `tracker alerts list`: try an alert's URLs, and see what
was sent."""

from __future__ import annotations

import sys

import click

from tracker.cli.common import Context, emit, handle_errors, pass_ctx


@click.group()
def alerts() -> None:
    """Alerts: messages about new stories, updates and spikes, sent to chat, email and
    webhooks ([[alerts]] in the config) at the end of each poll cycle."""


@alerts.command("test")
@click.argument("name")
@pass_ctx
@handle_errors
def alerts_test(ctx: Context, name: str) -> None:
    """Send a sample message to each URL of alert NAME now (nothing is recorded). Exits 1
    when any URL failed, saying why."""
    from tracker.alerts.delivery import find_alert, send_test

    ctx.setup_logging()
    results = send_test(find_alert(ctx.config, name))
    for target, error in results:
        click.echo(f"{target}: " + (f"FAILED: {error}" if error else "sent"))
    if any(error for _, error in results):
        sys.exit(1)


@alerts.command("list")
@click.option("--name", help="Only this alert.")
@click.option("--limit", default=50, show_default=True, help="At most this many sends (0: all).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True)
@pass_ctx
@handle_errors
def alerts_list(ctx: Context, name: str | None, limit: int, fmt: str) -> None:
    """Recent alert messages, newest first, one row per URL: what it was about, its ref
    (the idempotency key receivers see), and whether it was sent, is pending or failed."""
    from tracker.alerts.queries import recent_sends

    rows = recent_sends(ctx.read_store().engine, name, limit)
    if not rows and fmt == "table":  # a header over nothing reads as a fault
        configured = len(ctx.config.alerts)
        why = "" if configured else " ([[alerts]] in the config file sets them up; see the README)"
        click.echo(f"No alert messages yet{' for ' + name if name else ''}{why}.")
        return
    emit(
        rows,
        fmt,
        columns={
            "created": "created_at",
            "alert": "alert",
            "ref": "ref",
            "events": "events",
            "title": "title",
            "url": "target",
            "status": "status",
            "tries": "attempts",
            "error": "error",
        },
    )


COMMANDS: tuple[click.Command, ...] = (alerts,)
