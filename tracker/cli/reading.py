"""Reading the store: `tracker stories`, `story`, `search`, `report`, `export` and `web`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from tracker.cli.common import DAY, Context, emit, fail, handle_errors, pass_ctx


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, help="Port to listen on.")
@pass_ctx
@handle_errors
def web(ctx: Context, host: str, port: int) -> None:
    """Browse the store, read-only, in Datasette (the web extra): the stable views with
    titles and descriptions, facets by topic and source, full-text search on items, and
    canned queries for the README's recipes."""
    import tempfile

    from tracker.analysis.web import command

    ctx.read_store()  # one line, not a server on an empty store, when there is no store
    with tempfile.TemporaryDirectory(prefix="tracker-web-") as tmp:
        from tracker.rules.rulefiles import rule_ids

        args = command(
            ctx.config.database_url, host, port, Path(tmp) / "metadata.json", rule_ids(ctx.config.rule_paths)
        )
        click.echo(f"serving {ctx.config.database_url} read-only at http://{host}:{port}/ (Ctrl-C stops)", err=True)
        code = _serve(args)
    sys.exit(code)


def _serve(args: list[str]) -> int:
    """Run the server until it exits, or until Ctrl-C or SIGTERM stops it (then it is
    stopped too, and the temporary metadata removed, before this returns 0)."""
    import signal

    server = subprocess.Popen(args)
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        server.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        code = server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if stopping else code


@click.command()
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="HTML file to write (-: standard output).",
)
@click.option("--days", default=30, show_default=True, help="The period: this many days up to today (UTC).")
@click.option("--top", default=10, show_default=True, help="Stories listed per topic.")
@click.option(
    "--timezone",
    "tz",
    metavar="ZONE",
    help="IANA time zone of the days and times shown (default: the first digest's, else UTC).",
)
@click.option(
    "--web-url",
    metavar="URL",
    help="Where `tracker web` serves this store (e.g. http://127.0.0.1:8001/tracker): stories link to their timeline.",
)
@pass_ctx
@handle_errors
def report(ctx: Context, out: Path, days: int, top: int, tz: str | None, web_url: str | None) -> None:
    """A self-contained HTML report: topic volume per day (an inline SVG chart, the report
    extra) and the most widely reported stories of each topic."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from tracker.analysis.htmlreport import build_report
    from tracker.service.app import load_matcher
    from tracker.store.database import utcnow

    zone = tz or next((d.timezone for d in ctx.config.digests), "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--timezone: unknown IANA time zone {zone!r} (e.g. Europe/Berlin, America/New_York)", 2)
    if web_url is not None and not web_url.startswith(("http://", "https://")):
        fail(f"--web-url: {web_url!r} is not an http(s) address", 2)
    titles = {r.id: r.title for r in load_matcher(ctx.config).ruleset.rules}
    html = build_report(
        ctx.read_store(), titles, utcnow(), days=max(1, days), top=max(1, top), tz=zone, web_url=web_url
    )
    if str(out) == "-":
        click.echo(html, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    click.echo(f"report written to {out}")


@click.command("export")
@click.option(
    "--what",
    type=click.Choice(["items", "stories"]),
    default="items",
    show_default=True,
    help="items: one row per tagged item and topic (the tagged_items view); stories: one per story.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), help="Default: from the file name's suffix."
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="File to write (-: standard output).",
)
@click.option("--rule", "rule_id", help="Only this topic.")
@click.option("--since", type=DAY, help="Only items published (else stored) / stories active since this date (UTC).")
@pass_ctx
@handle_errors
def export_cmd(ctx: Context, what: str, fmt: str | None, out: Path, rule_id: str | None, since: Any) -> None:
    """Export tagged items or stories to CSV, JSON Lines or Parquet (the parquet extra)."""
    from datetime import UTC

    from tracker.analysis.export import export

    ctx.check_rule(rule_id)
    chosen = fmt or {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}.get(out.suffix.lower())
    if chosen is None:
        fail(f"{out}: say --format csv, jsonl or parquet (or name the file .csv, .jsonl or .parquet)", 2)
        return
    store = ctx.read_store()
    with _output(out) as target:
        n = export(
            store, what, chosen, target, rule=rule_id, since=since.replace(tzinfo=UTC) if since is not None else None
        )
    to_stdout = str(out) == "-"  # then the summary goes to stderr, out of the data's way
    click.echo(f"{n} {what} rows written to {'standard output' if to_stdout else out} ({chosen})", err=to_stdout)


@contextmanager
def _output(out: Path) -> Iterator[Path]:
    """``out`` itself, or for ``-`` a temporary file copied to standard output afterwards."""
    if str(out) != "-":
        yield out
        return
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tracker-out-") as tmp:
        target = Path(tmp) / "out"
        yield target
        with target.open("rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
        sys.stdout.buffer.flush()


@click.command()
@click.argument("query")
@click.option("--rule", "rule_id", help="Only items this rule tags.")
@click.option("--since", type=DAY, help="Only items published (else fetched) since this date (UTC).")
@click.option("--until", type=DAY, help="Only items published (else fetched) before this date (UTC).")
@click.option("--source", help="Only items from this outlet (host, e.g. reuters.com) or configured feed name.")
@click.option("--limit", default=20, show_default=True, help="At most this many items (0: all).")
@click.option("--by-date", is_flag=True, help="Newest first instead of most relevant first.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "jsonl"]), default="table", show_default=True
)
@pass_ctx
@handle_errors
def search(
    ctx: Context,
    query: str,
    rule_id: str | None,
    since: Any,
    until: Any,
    source: str | None,
    limit: int,
    by_date: bool,
    fmt: str,
) -> None:
    """Full-text search of the stored items (title, text, entities), with the matched words
    [marked] in a snippet. SQLite: FTS5 syntax — words, "phrases", AND, OR, NOT, prefix*.
    PostgreSQL: web-search syntax — words, "phrases", OR, -word."""
    import csv
    from datetime import UTC

    from tracker.analysis.search import search as run_search

    ctx.check_rule(rule_id)
    hits = run_search(
        ctx.read_store(),
        query,
        rule=rule_id,
        since=since.replace(tzinfo=UTC) if since is not None else None,
        until=until.replace(tzinfo=UTC) if until is not None else None,
        source=source,
        limit=limit,
        by_date=by_date,
    )
    records = [h.as_dict() for h in hits]
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(_SEARCH_FIELDS))
        writer.writeheader()
        writer.writerows({**r, "topics": ",".join(r["topics"])} for r in records)
        return
    columns = {"item": "item_id", "when": "at", "outlet": "outlet", "topics": "topics", "title": "title"}
    if fmt == "table":  # times as every table shows them (the records carry ISO 8601 for JSON)
        records = [{**r, "at": h.at} for r, h in zip(records, hits, strict=True)]
    emit(records, fmt, columns={**columns, "snippet": "snippet"})
    if not hits and fmt == "table":
        click.echo("no items match", err=True)


_SEARCH_FIELDS = ("item_id", "title", "url", "outlet", "at", "topics", "snippet", "score")


@click.command()
@click.option("--rule", "rule_id", help="Only stories with an item this rule tags.")
@click.option("--since", type=DAY, help="Only stories with an item since this date (UTC).")
@click.option("--limit", default=50, show_default=True, help="At most this many stories (0: all).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, hidden=True, help="The same as --format jsonl.")
@pass_ctx
@handle_errors
def stories(ctx: Context, rule_id: str | None, since: Any, limit: int, fmt: str, as_json: bool) -> None:
    """Stories, most recently active first: headline, first and last seen, items, outlets,
    topics. Each story is one event, however many outlets re-reported it."""
    from datetime import UTC

    from tracker.store.storydb import list_stories

    store = ctx.read_store()
    ctx.check_rule(rule_id)
    rows = list_stories(
        store.engine,
        rule=rule_id,
        since=since.replace(tzinfo=UTC) if since is not None else None,
        limit=limit or None,
    )
    columns = {"story": "story_id", "first seen": "first_seen", "last seen": "last_seen", "items": "n_items"}
    emit(
        rows,
        "jsonl" if as_json else fmt,
        columns={**columns, "outlets": "n_sources", "topics": "topics", "headline": "headline"},
    )


@click.command()
@click.argument("story_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table", show_default=True)
@pass_ctx
@handle_errors
def story(ctx: Context, story_id: int, fmt: str) -> None:
    """The timeline of STORY_ID: each item with its time, outlet, role (new, update, copy),
    topics and URL."""
    from tracker.analysis.tables import render_story
    from tracker.store.storydb import story_detail

    detail = story_detail(ctx.read_store().engine, story_id)
    if detail is None:
        fail(f"no story {story_id}", 2)
    if fmt != "table":
        from tracker.core.jsonout import dumps

        click.echo(dumps(detail, indent=2 if fmt == "json" else None))
        return
    click.echo(render_story(detail))  # type: ignore[arg-type]


COMMANDS: tuple[click.Command, ...] = (web, report, export_cmd, search, stories, story)
