"""Operations: `tracker maintain`, `restore`, `status` and the `tracker digest` group (send,
preview)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tracker.cli.common import DAY, Context, fail, handle_errors, in_use, pass_ctx


@click.command()
@pass_ctx
@handle_errors
def maintain(ctx: Context) -> None:
    """The daily maintenance job, now: check the store (PRAGMA quick_check), drop stored pages
    and fetch logs past [maintenance] retention, let SQLite optimize, and take a backup,
    checked before older ones are rotated away. A store that fails the check is refused:
    no backup, no rotation, exit 1."""
    from tracker.service.app import must_exist
    from tracker.service.maintenance import maintain_store

    ctx.setup_logging()
    must_exist(ctx.config, ctx.given_as())  # a mistyped path is not backed up as an empty store
    report = maintain_store(ctx.config)  # checks the store before anything opens it for writing
    click.echo(f"stored pages dropped: {report.pages_dropped}")
    click.echo(f"fetch log rows deleted: {report.fetch_logs_deleted}")
    click.echo(f"backup: {report.backup or 'none (not SQLite, or [maintenance] backups = 0)'}")
    for path in report.backups_removed:
        click.echo(f"old backup removed: {path}")


@click.command()
@click.argument("backup", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the store.")
@pass_ctx
@handle_errors
def restore(ctx: Context, backup: Path, yes: bool) -> None:
    """Put BACKUP (a file `tracker maintain` wrote) in place of the SQLite store. The backup
    must pass PRAGMA quick_check and `tracker run` must be stopped; the current store is
    kept beside it as <db>.before-restore-<time>. PostgreSQL: use pg_restore."""
    from tracker.service.maintenance import restore as restore_backup
    from tracker.service.maintenance import sqlite_file

    ctx.setup_logging()
    database = sqlite_file(ctx.config.database_url)
    if database is not None and not yes:
        click.confirm(f"Replace {database} with {backup}? The current store is kept beside it", abort=True)
    report = restore_backup(ctx.config, backup)
    click.echo(f"restored {report.database} from {report.backup}")
    click.echo(f"items: {report.items}, schema revision {report.revision}")
    click.echo(f"previous store kept as {report.set_aside}" if report.set_aside else "there was no store before")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True)
@pass_ctx
@handle_errors
def status(ctx: Context, fmt: str) -> None:
    """Is the service running; the last day of polling; feeds failing, parked or silent;
    per digest subscription the articles waiting, the last and the next send; and which
    config file, store and rules are in use."""
    from tracker.rules.rulefiles import rule_ids
    from tracker.service.status import render_status
    from tracker.service.status import status as read_status
    from tracker.store.database import utcnow

    ids = rule_ids(ctx.config.rule_paths)
    state = read_status(ctx.config, ctx.read_store(), ids, utcnow())
    if fmt != "text":
        from tracker.core.jsonout import dumps

        summary = ctx.config.summary()
        state["in_use"] = {k: summary[k] for k in ("config", "database", "rules")}
        click.echo(dumps(state, indent=2 if fmt == "json" else None))
        return
    click.echo(render_status(state))
    click.echo(f"In use: {in_use(ctx.config)}")


@click.group()
def digest() -> None:
    """Email digests: what each [[digests]] subscription has not received yet."""


@digest.command("send")
@click.option("--name", help="Only this subscription.")
@click.option("--now", "force", is_flag=True, help="Send even if its time today has not come or it was sent today.")
@pass_ctx
@handle_errors
def digest_send(ctx: Context, name: str | None, force: bool) -> None:
    """Send the digests that are due (or all of them with --now). Each item goes out once:
    a re-run sends nothing already sent; a failed send leaves its items for the next run.
    Exits 1 when any digest failed."""
    from tracker.digest.delivery import send_all, subscriptions
    from tracker.service.app import validate

    ctx.setup_logging()
    subs = subscriptions(ctx.config, name)
    if not subs:
        fail("no [[digests]] in the configuration", 2)
    validate(ctx.config)
    outcomes = send_all(ctx.config, ctx.existing_store(), subs, force=force)
    for o in outcomes:
        detail = {
            "sent": f"sent {o.stories} stories, {o.items} articles, run {o.run_id}",
            "empty": "nothing new: not sent",
            "not-due": "not due yet (use --now to send anyway)",
            "failed": f"FAILED, run {o.run_id}: {o.error}; its items stay pending",
            "busy": f"skipped: {o.error}",
        }[o.status]
        resent = f" (and re-sent {o.resent} interrupted digest{'s' if o.resent > 1 else ''})" if o.resent else ""
        if o.resend_failed:
            resent += f" (re-sending {o.resend_failed} interrupted digest(s) FAILED; they stay pending)"
        click.echo(f"{o.name}: {detail}{resent}")
    if any(o.status == "failed" or o.resend_failed for o in outcomes):
        sys.exit(1)


@digest.command("preview")
@click.option("--name", help="Only this subscription.")
@click.option("--since", type=DAY, help="Include everything stored since this date (UTC) instead.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory.")
@pass_ctx
@handle_errors
def digest_preview(ctx: Context, name: str | None, since: Any, out: Path) -> None:
    """Write NAME.html, NAME.txt and NAME.eml as each digest would be sent now, without
    sending or recording anything."""
    from datetime import UTC

    from tracker.digest.delivery import preview, rule_titles_of, subscriptions
    from tracker.service.app import validate

    subs = subscriptions(ctx.config, name)
    if not subs:
        fail("no [[digests]] in the configuration", 2)
    validate(ctx.config)
    store = ctx.read_store()
    titles = rule_titles_of(ctx.config)
    for sub in subs:
        paths = preview(
            ctx.config, store, sub, titles, out, since=since.replace(tzinfo=UTC) if since is not None else None
        )
        click.echo(f"{sub.name}: " + " ".join(str(p) for p in paths))


COMMANDS: tuple[click.Command, ...] = (maintain, restore, status, digest)
