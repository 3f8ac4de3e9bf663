"""The feed list: `tracker feeds` (health, and where each feed came from) and its subcommands
`add` (a feed URL, or a page whose feeds are discovered), `remove`, `pause`, `resume`,
`import` and `export` (OPML 2.0).

Feeds added here live in the store; the config file stays authoritative for the feeds it
lists. Listing never writes: a feed in the config that was never polled is shown as such.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tracker.cli.common import Context, emit, fail, handle_errors, pass_ctx
from tracker.core.urls import redact, redact_text


@click.group(invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True)
@pass_ctx
@handle_errors
def feeds(ctx: Context, fmt: str) -> None:
    """Feed health: where each feed came from (config, cli, opml), last success, last status,
    failures, state (ok, failing, parked, paused), new entries per day, next poll and why then.

    Subcommands add, remove, pause, resume, import and export manage the list."""
    click_ctx = click.get_current_context()
    if click_ctx.invoked_subcommand is not None:
        return
    store = ctx.read_store()
    rows = [_health_row(r) for r in store.feed_health() if r["active"]]
    polled = {r["url"] for r in rows}
    for source in ctx.config.feeds:
        if source.url not in polled and not ctx.config.feeds_are_default:
            rows.append(_health_row({"name": source.name, "url": source.url, "origin": "config"}))
    emit(rows, fmt, columns=_COLUMNS)


_COLUMNS = {
    "feed": "name",
    "url": "url",
    "from": "origin",
    "last success": "last_success_at",
    "status": "last_status",
    "failures": "consecutive_failures",
    "state": "state",
    "items": "items",
    "new/day": "new_per_day",
    "next poll": "next_poll_at",
    "why": "schedule_reason",
    "last error": "last_error",
}


def _state(r: dict[str, Any]) -> str:
    if r.get("paused"):
        return "paused"
    if r.get("last_fetched_at") is None:
        return "not polled yet"
    if r.get("parked"):
        return "parked"
    return "failing" if r.get("consecutive_failures") else "ok"


def _health_row(r: dict[str, Any]) -> dict[str, Any]:
    failures = r.get("consecutive_failures") or 0
    state = _state(r)
    rate = r.get("publish_rate")
    return {
        "name": r["name"],
        "url": redact(r["url"]),
        "origin": r.get("origin") or "config",
        "last_success_at": r.get("last_success_at"),
        "last_status": r.get("last_status") or "never",
        "consecutive_failures": failures,
        "state": state,
        "items": r.get("items") or 0,
        "new_per_day": None if rate is None else round(rate, 1),
        "next_poll_at": None if r.get("paused") else r.get("next_poll_at"),
        "schedule_reason": r.get("schedule_reason") or "",
        "last_error": redact_text(r.get("last_error") or ""),
    }


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="The feed's name (default: its own title). Only when one feed is added.")
@click.option("--category", "categories", multiple=True, help="A folder or category to file it under (repeatable).")
@click.option("--yes", "-y", is_flag=True, help="Add what is found without asking.")
@pass_ctx
@handle_errors
def feeds_add(ctx: Context, url: str, name: str | None, categories: tuple[str, ...], yes: bool) -> None:
    """Add the feed at URL, or the feeds a web page at URL advertises (found from its
    <link rel="alternate"> elements, else at common paths such as /feed and /rss.xml).

    What is found is listed and added on confirmation (or at once with --yes)."""
    from tracker.core.errors import ConfigError
    from tracker.core.types import FeedSource
    from tracker.core.urls import validate_feed_url
    from tracker.pipeline.guards import feed_guard
    from tracker.service.app import open_store
    from tracker.sources.discover import discover
    from tracker.sources.fetching import Fetcher

    problem = validate_feed_url(url)
    if problem:
        raise ConfigError(f"{problem}: {url!r}")
    with Fetcher(ctx.config.fetch) as fetcher:
        found = discover(fetcher, url, feed_guard(url, ctx.config.fetch))
    if not found:
        fail(f"no feed found at {redact(url)}: it is not a feed, links none, and no common feed path answered", 2)
    click.echo(f"found {len(found)} feed{'s' if len(found) != 1 else ''} at {redact(url)}:")
    for n, feed in enumerate(found, 1):
        click.echo(f"  {n}. {feed.title or '(untitled)'}  {redact(feed.url)}  ({feed.version}, {feed.entries} entries)")
    chosen = found
    if not yes:
        if not sys.stdin.isatty():
            fail("nothing added: confirm on a terminal, or pass --yes", 2)
        answer = click.prompt("add which (numbers, 'all' or 'none')", default="all" if len(found) > 1 else "1")
        chosen = _pick(found, answer)
    if name and len(chosen) != 1:
        fail("--name names one feed; choose one, or leave --name out", 2)
    sources = [
        FeedSource(url=f.url, name=name or f.title or f.url, categories=tuple(c.strip("/ ") for c in categories))
        for f in chosen
    ]
    store = open_store(ctx.config)
    result = store.add_feeds(sources, "cli")
    _report(result.added, result.present, store.url)


def _pick(found: list[Any], answer: str) -> list[Any]:
    answer = answer.strip().lower()
    if answer in ("all", "a", "y", "yes"):
        return found
    if answer in ("none", "n", "no", ""):
        return []
    picked = []
    for part in answer.replace(",", " ").split():
        if not part.isdigit() or not 1 <= int(part) <= len(found):
            fail(f"not a number between 1 and {len(found)}: {part!r}", 2)
        picked.append(found[int(part) - 1])
    return picked


def _report(added: tuple[str, ...], present: tuple[str, ...], store_url: str) -> None:
    for url in added:
        click.echo(f"added {redact(url)}")
    for url in present:
        click.echo(f"already polled: {redact(url)}")
    if added:
        click.echo(f"in {redact(store_url)}; polled from the next `tracker poll` or `tracker run` cycle")


@feeds.command("remove")
@click.argument("url", metavar="URL_OR_NAME")
@pass_ctx
@handle_errors
def feeds_remove(ctx: Context, url: str) -> None:
    """Stop polling a feed added from the command line (its articles stay in the store)."""
    ctx.existing_store().remove_feed(url, str(ctx.config.path) if ctx.config.path else None)
    click.echo(f"removed {redact(url)}")


@feeds.command("pause")
@click.argument("url", metavar="URL_OR_NAME")
@pass_ctx
@handle_errors
def feeds_pause(ctx: Context, url: str) -> None:
    """Stop polling a feed for now; it keeps its history (`tracker feeds resume URL`)."""
    changed = ctx.existing_store().set_paused(url, True)
    click.echo(f"{'paused' if changed else 'already paused'}: {redact(url)}")


@feeds.command("resume")
@click.argument("url", metavar="URL_OR_NAME")
@pass_ctx
@handle_errors
def feeds_resume(ctx: Context, url: str) -> None:
    """Poll a paused feed again, from the next cycle."""
    changed = ctx.existing_store().set_paused(url, False)
    click.echo(f"{'resumed' if changed else 'not paused'}: {redact(url)}")


@feeds.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
@handle_errors
def feeds_import(ctx: Context, path: Path) -> None:
    """Add the feeds of an OPML file (from another reader), with their folders as categories."""
    from tracker.core.types import FeedSource
    from tracker.service.app import open_store
    from tracker.sources.opml import read_opml

    listed = read_opml(path)
    sources = [FeedSource(url=f.url, name=f.name, categories=f.categories) for f in listed.feeds]
    store = open_store(ctx.config)
    result = store.add_feeds(sources, "opml")
    click.echo(
        f"{path}: {len(result.added)} added, {len(result.present)} already polled, {len(listed.skipped)} skipped"
        f" (in {redact(store.url)})"
    )
    for reason in listed.skipped:
        click.echo(f"  skipped {redact_text(reason)}")


@feeds.command("export")
@click.argument("out", required=False, default="-", type=click.Path(dir_okay=False, allow_dash=True))
@pass_ctx
@handle_errors
def feeds_export(ctx: Context, out: str) -> None:
    """Write every polled feed (from the config and added ones) as OPML 2.0 to OUT
    (default: standard output)."""
    from tracker.sources.opml import ListedFeed, write_opml

    stored = ctx.read_store().feed_list()
    listed = {f.url: ListedFeed(f.url, f.name, f.categories) for f in stored}
    if not ctx.config.feeds_are_default:
        for source in ctx.config.feeds:
            listed.setdefault(source.url, ListedFeed(source.url, source.name, source.categories))
    document = write_opml(sorted(listed.values(), key=lambda f: f.name.lower()))
    if out == "-":
        click.echo(document, nl=False)
    else:
        Path(out).write_text(document, encoding="utf-8")
        click.echo(f"{len(listed)} feeds written to {out}", err=True)


COMMANDS: tuple[click.Command, ...] = (feeds,)
