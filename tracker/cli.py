"""The `tracker` command: a thin shell over the library.

Each command parses its input, calls one library function and prints the result. Heavy
libraries (trafilatura, lxml, SQLAlchemy) are imported inside the commands so that
``tracker --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .errors import BadQueryError, ConfigError, RuleError, TrackerError
from .urls import redact_text

if TYPE_CHECKING:
    from .config import Config

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    click.echo(f"tracker: error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn TrackerError into a one-line message: exit 2 for bad input, 1 otherwise."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigError, RuleError, BadQueryError) as exc:
            _fail(str(exc), 2)
        except TrackerError as exc:
            _fail(str(exc), 1)

    return wrapper  # type: ignore[return-value]


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
    from .errors import describe_os_error

    if isinstance(exc, click.ClickException):
        return exc.format_message().replace("\n", " "), exc.exit_code
    if isinstance(exc, click.exceptions.Abort):
        return "aborted", 1
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - a dependency
        SQLAlchemyError = ()  # type: ignore[assignment,misc]
    if isinstance(exc, SQLAlchemyError):
        from .store import describe_database_error

        return describe_database_error(exc, _database_url())
    if isinstance(exc, UnicodeError):
        return f"text that is not valid UTF-8 ({type(exc).__name__}: {getattr(exc, 'reason', exc)})", 2
    return f"internal error: {type(exc).__name__}: {exc} (run with -vv to log the traceback)", 1


class Context:
    current: Context | None = None  #: the command's context, for error messages after it ended

    def __init__(self, config_path: str | None, verbose: int) -> None:
        Context.current = self
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from .config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def setup_logging(self, default: str = "WARNING") -> None:
        from .logs import setup

        level = {0: default, 1: "INFO"}.get(self.verbose, "DEBUG")
        setup(level, self.config.log_format)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="TRACKER_CONFIG",
    help="Config file (TOML). Default: $TRACKER_CONFIG, else ./tracker.toml, else built-in defaults.",
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
@click.version_option(__version__, prog_name="tracker")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """newstracker: follow topics across news feeds.

    Pulls RSS/Atom feeds, extracts each new article's full text, tags it with the topic
    rules and stores it in SQL (SQLite by default). Start with `tracker demo`.
    """
    ctx.obj = Context(config_path, verbose)


@cli.command()
@pass_ctx
@handle_errors
def init(ctx: Context) -> None:
    """Create the database, or upgrade it to the current schema."""
    from .app import open_store, validate
    from .migrate import current_revision

    ctx.setup_logging()
    validate(ctx.config)
    store = open_store(ctx.config)
    click.echo(f"database ready: {store.url} (schema {current_revision(store.engine)})")


@cli.command()
@click.option("--once", is_flag=True, help="Run one full cycle over every feed and exit.")
@pass_ctx
@handle_errors
def poll(ctx: Context, once: bool) -> None:
    """Poll the configured feeds: one full cycle with --once, else on the schedule.

    Exits 0 when the cycle completed, even if some feeds failed (they are listed and
    recorded on the feed).
    """
    if not once:
        from .service import run_service

        ctx.setup_logging(ctx.config.log_level)
        run_service(ctx.config)
        return
    from .app import poll_once
    from .report import cycle_summary

    ctx.setup_logging()
    report = poll_once(ctx.config)
    click.echo(cycle_summary(report))


@cli.command()
@pass_ctx
@handle_errors
def run(ctx: Context) -> None:
    """Run the tracker as a long-lived service (polls on a schedule with APScheduler)."""
    from .service import run_service

    ctx.setup_logging(ctx.config.log_level)
    run_service(ctx.config)


@cli.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--explain", is_flag=True, help="Also print terms, evidence positions and highlighted snippets.")
@pass_ctx
@handle_errors
def match(ctx: Context, source: Any, explain: bool) -> None:
    """Tag JSON Lines documents ({"id", "title", "text"}) from SOURCE (a file or -).

    Writes one line per input: {"id", "matches": [{"rule", "score", "snippets"}]}; with
    --explain also the matched terms, every evidence occurrence (term, text, field, start,
    end) and the snippets with the terms [highlighted].
    """
    from .app import load_matcher
    from .explain import explain_match

    matcher = load_matcher(ctx.config)
    name = getattr(source, "name", "-")
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            _fail(f"{name}:{number}: not a JSON object: {exc}", 2)
        out = []
        for m in matcher.match(str(doc.get("title") or ""), str(doc.get("text") or "")):
            entry: dict[str, Any] = {"rule": m.rule, "score": m.score, "snippets": list(m.snippets)}
            if explain:
                entry.update(explain_match(m))
            out.append(entry)
        click.echo(json.dumps({"id": doc.get("id"), "matches": out}, ensure_ascii=False))


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="FILE_OR_URL...")
@pass_ctx
@handle_errors
def extract(ctx: Context, sources: tuple[str, ...]) -> None:
    """Extract articles from HTML files or URLs; one JSON object per line, in order.

    Uses the same extraction as `poll`. "text" is null when nothing was extracted.
    """
    from .app import extract_sources

    ctx.setup_logging()
    for record in extract_sources(sources, ctx.config.fetch):
        click.echo(json.dumps(record, ensure_ascii=False))


@cli.command()
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the demo database (default: demo.sqlite in the data directory).",
)
@pass_ctx
@handle_errors
def demo(ctx: Context, db_path: Path | None) -> None:
    """Poll a small built-in news site on 127.0.0.1 into a fresh SQLite database.

    Works offline: starts the demo site, runs one full cycle, prints what happened per
    feed and per topic, and where the database is.
    """
    from . import resources
    from .demo.run import run_demo

    ctx.setup_logging()
    home = resources.data_dir(os.environ.get("TRACKER_HOME"))
    run_demo(db_path or home / "demo.sqlite", echo=click.echo)


@cli.command()
@pass_ctx
@handle_errors
def feeds(ctx: Context) -> None:
    """Feed health: last success, last status, failures, state (ok, failing, parked), new
    entries per day, next poll and why then."""
    from .app import open_store
    from .report import table

    store = open_store(ctx.config)
    store.sync_feeds(ctx.config.feeds)
    rows = [
        (
            r["name"],
            r["last_success_at"],
            r["last_status"] or "never",
            r["consecutive_failures"],
            "parked" if r["parked"] else "failing" if r["consecutive_failures"] else "ok",
            r["items"],
            "" if r["publish_rate"] is None else f"{r['publish_rate']:.1f}",
            r["next_poll_at"],
            r["schedule_reason"] or "",
            redact_text(r["last_error"] or ""),
        )
        for r in store.feed_health()
        if r["active"]
    ]
    headers = ("feed", "last success", "status", "failures", "state", "items", "new/day", "next poll", "why")
    click.echo(table((*headers, "last error"), rows))


@cli.group()
def rules() -> None:
    """Topic rules: check them, test them on a labeled corpus."""


@rules.command("check")
@pass_ctx
@handle_errors
def rules_check(ctx: Context) -> None:
    """Validate every rule file and the entity catalogue; exit 2 on any error."""
    from .rules import check_rules

    ruleset, errors = check_rules(ctx.config.rule_paths)
    for err in errors:
        click.echo(err.details(), err=True)
    if errors:
        sys.exit(2)
    click.echo(
        f"{len(ruleset.rules)} rules and {len(ruleset.entities)} entities OK: " + ", ".join(r.id for r in ruleset.rules)
    )


@rules.command("test")
@click.argument("rule", required=False)
@click.option(
    "--corpus",
    "corpus_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labeled JSON Lines: id, title, text, labels.",
)
@click.option("--limit", default=20, show_default=True, help="Errors listed per rule.")
@pass_ctx
@handle_errors
def rules_test(ctx: Context, rule: str | None, corpus_path: Path, limit: int) -> None:
    """Precision, recall and F1 of RULE (default: every rule) on a labeled corpus,
    with the false positives and false negatives and why."""
    from .app import load_matcher
    from .report import table
    from .ruletools import evaluate, read_labeled

    matcher = load_matcher(ctx.config)
    rule_ids = [r.id for r in matcher.ruleset.rules]
    if rule is not None:
        if rule not in rule_ids:
            _fail(f"no rule {rule!r} (known: {', '.join(rule_ids)})", 2)
        rule_ids = [rule]
    scores = evaluate(matcher, read_labeled(corpus_path), rule_ids)
    click.echo(
        table(
            ("rule", "tp", "fp", "fn", "precision", "recall", "f1"),
            [(s.rule, s.tp, s.fp, s.fn, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}") for s in scores],
        )
    )
    for s in scores:
        for kind, misses in (("false positive", s.false_positives), ("false negative", s.false_negatives)):
            for miss in misses[:limit]:
                click.echo(f"\n{s.rule}  {kind}  {miss.doc_id}  {miss.title}\n    {miss.detail}")


@rules.command("train")
@click.option(
    "--corpus",
    "corpus_paths",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labeled JSON Lines (id, title, text, labels); repeat for several files.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it (default: model.json in the first rules directory).",
)
@pass_ctx
@handle_errors
def rules_train(ctx: Context, corpus_paths: tuple[Path, ...], out: Path | None) -> None:
    """Fit the topic models that confirm the rules' candidate queries (rules/README.md, "A second signal")."""
    from .classifier import MODEL_FILE, dump
    from .matching import Matcher
    from .rules import load_rules
    from .ruletools import read_labeled, train_model

    # The model being replaced plays no part (and may be from an older tracker).
    matcher = Matcher(load_rules(ctx.config.rule_paths, model=False))
    if not matcher.ruleset.candidates:
        _fail("no rule has a candidate query: nothing to train", 2)
    docs = [d for path in corpus_paths for d in read_labeled(path)]
    model = train_model(matcher, docs, [p.name for p in corpus_paths])
    first = next(iter(ctx.config.rule_paths))
    target = out or (first if first.is_dir() else first.parent) / MODEL_FILE
    dump(model, target)
    click.echo(f"trained {len(model.topics)} topic models on {len(docs)} documents: {target}")


@cli.command()
@click.argument("item")
@pass_ctx
@handle_errors
def explain(ctx: Context, item: str) -> None:
    """Why ITEM (an item id or URL) was tagged: per rule the score, the matched terms and
    entities with their positions, and the snippets with the terms [highlighted]."""
    from .app import open_store
    from .explain import render_item

    store = open_store(ctx.config)
    item_id = int(item) if item.isdigit() else store.item_id(item)
    detail = store.item_detail(item_id) if item_id is not None else None
    if detail is None:
        _fail(f"no stored item {item!r}", 2)
    click.echo(render_item(detail))  # type: ignore[arg-type]


@cli.command()
@click.option("--rule", "rule_id", help="Only this rule (if it changed).")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Only items stored since this date (UTC).",
)
@pass_ctx
@handle_errors
def rematch(ctx: Context, rule_id: str | None, since: Any) -> None:
    """Re-tag stored items with the rules that changed since they were tagged.

    Only changed rules run; a second run does nothing. Progress goes to stderr.
    """
    from datetime import UTC

    from .app import open_store
    from .rules import load_rules
    from .ruletools import changed_rules
    from .ruletools import rematch as run_rematch

    ctx.setup_logging()
    store = open_store(ctx.config)
    ruleset = load_rules(ctx.config.rule_paths)
    since_utc = since.replace(tzinfo=UTC) if since is not None else None
    if not changed_rules(store, ruleset, rule_id):
        click.echo("no rule changed: nothing to do")
        return
    with click.progressbar(length=store.count_items(since_utc), label="re-tagging", file=sys.stderr) as bar:
        report = run_rematch(store, ruleset, rule=rule_id, since=since_utc, progress=bar.update)
    click.echo(f"re-tagged {report.items} items with {', '.join(report.rules)}: {report.changed} tags changed")


_DAY = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, help="Port to listen on.")
@pass_ctx
@handle_errors
def web(ctx: Context, host: str, port: int) -> None:
    """Browse the store, read-only, in Datasette (the web extra): the stable views with
    titles and descriptions, facets by topic and source, full-text search on items, and
    canned queries for the README's recipes."""
    import tempfile

    from .web import command

    with tempfile.TemporaryDirectory(prefix="tracker-web-") as tmp:
        args = command(ctx.config.database_url, host, port, Path(tmp) / "metadata.json")
        click.echo(f"serving {ctx.config.database_url} read-only at http://{host}:{port}/ (Ctrl-C stops)", err=True)
        try:
            code = subprocess.call(args)
        except KeyboardInterrupt:
            code = 0
    sys.exit(code)


@cli.command()
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="HTML file to write."
)
@click.option("--days", default=30, show_default=True, help="The period: this many days up to today (UTC).")
@click.option("--top", default=10, show_default=True, help="Stories listed per topic.")
@pass_ctx
@handle_errors
def report(ctx: Context, out: Path, days: int, top: int) -> None:
    """A self-contained HTML report: topic volume per day (an inline SVG chart, the report
    extra) and the most widely reported stories of each topic."""
    from .app import load_matcher, open_store
    from .htmlreport import build_report
    from .store import utcnow

    titles = {r.id: r.title for r in load_matcher(ctx.config).ruleset.rules}
    html = build_report(open_store(ctx.config), titles, utcnow(), days=max(1, days), top=max(1, top))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    click.echo(f"report written to {out}")


@cli.command("export")
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
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@click.option("--rule", "rule_id", help="Only this topic.")
@click.option("--since", type=_DAY, help="Only items published (else stored) / stories active since this date (UTC).")
@pass_ctx
@handle_errors
def export_cmd(ctx: Context, what: str, fmt: str | None, out: Path, rule_id: str | None, since: Any) -> None:
    """Export tagged items or stories to CSV, JSON Lines or Parquet (the parquet extra)."""
    from datetime import UTC

    from .app import open_store
    from .export import export

    chosen = fmt or {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}.get(out.suffix.lower())
    if chosen is None:
        _fail(f"{out}: say --format csv, jsonl or parquet (or name the file .csv, .jsonl or .parquet)", 2)
        return
    n = export(
        open_store(ctx.config),
        what,
        chosen,
        out,
        rule=rule_id,
        since=since.replace(tzinfo=UTC) if since is not None else None,
    )
    click.echo(f"{n} {what} rows written to {out} ({chosen})")


@cli.command()
@click.argument("query")
@click.option("--rule", "rule_id", help="Only items this rule tags.")
@click.option("--since", type=_DAY, help="Only items published (else fetched) since this date (UTC).")
@click.option("--until", type=_DAY, help="Only items published (else fetched) before this date (UTC).")
@click.option("--source", help="Only items from this outlet (host, e.g. reuters.com) or configured feed name.")
@click.option("--limit", default=20, show_default=True, help="At most this many items.")
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

    from .app import open_store
    from .report import table
    from .search import search as run_search

    hits = run_search(
        open_store(ctx.config),
        query,
        rule=rule_id,
        since=since.replace(tzinfo=UTC) if since is not None else None,
        until=until.replace(tzinfo=UTC) if until is not None else None,
        source=source,
        limit=limit,
        by_date=by_date,
    )
    records = [h.as_dict() for h in hits]
    if fmt == "json":
        click.echo(json.dumps(records, ensure_ascii=False, indent=2))
    elif fmt == "jsonl":
        for r in records:
            click.echo(json.dumps(r, ensure_ascii=False))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(_SEARCH_FIELDS))
        writer.writeheader()
        writer.writerows(records)
    else:
        rows = [(h.item_id, h.at, h.outlet, h.topics, h.title, h.snippet) for h in hits]
        click.echo(table(("item", "when", "outlet", "topics", "title", "snippet"), rows))
        if not hits:
            click.echo("no items match", err=True)


_SEARCH_FIELDS = ("item_id", "title", "url", "outlet", "at", "topics", "snippet", "score")


@cli.command()
@click.option("--rule", "rule_id", help="Only stories with an item this rule tags.")
@click.option("--since", type=_DAY, help="Only stories with an item since this date (UTC).")
@click.option("--limit", default=50, show_default=True, help="At most this many stories (0: all).")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines instead of a table.")
@pass_ctx
@handle_errors
def stories(ctx: Context, rule_id: str | None, since: Any, limit: int, as_json: bool) -> None:
    """Stories, most recently active first: headline, first and last seen, items, outlets,
    topics. Each story is one event, however many outlets re-reported it."""
    from datetime import UTC

    from .app import load_matcher, open_store
    from .grouping import StoryGrouper
    from .report import table
    from .storydb import list_stories

    store = open_store(ctx.config)
    if rule_id is not None:
        known = sorted(r.id for r in load_matcher(ctx.config).ruleset.rules)
        if rule_id not in known:
            _fail(f"no rule {rule_id!r}; the rules are: {', '.join(known)}", 2)
    StoryGrouper(store).catch_up()
    rows = list_stories(
        store.engine,
        rule=rule_id,
        since=since.replace(tzinfo=UTC) if since is not None else None,
        limit=limit or None,
    )
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, default=str, ensure_ascii=False))
        return
    click.echo(
        table(
            ("story", "first seen", "last seen", "items", "outlets", "topics", "headline"),
            [
                (
                    r["story_id"],
                    r["first_seen"],
                    r["last_seen"],
                    r["n_items"],
                    r["n_sources"],
                    ",".join(r["topics"]),
                    r["headline"],
                )
                for r in rows
            ],
        )
    )


@cli.command()
@click.argument("story_id", type=int)
@pass_ctx
@handle_errors
def story(ctx: Context, story_id: int) -> None:
    """The timeline of STORY_ID: each item with its time, outlet, role (new, update, copy),
    topics and URL."""
    from .app import open_store
    from .report import render_story
    from .storydb import story_detail

    detail = story_detail(open_store(ctx.config).engine, story_id)
    if detail is None:
        _fail(f"no story {story_id}", 2)
    click.echo(render_story(detail))  # type: ignore[arg-type]


@cli.command()
@pass_ctx
@handle_errors
def maintain(ctx: Context) -> None:
    """The daily maintenance job, now: check the store (PRAGMA quick_check), drop stored pages
    and fetch logs past [maintenance] retention, let SQLite optimize, and take a backup,
    checked before older ones are rotated away. A store that fails the check is refused:
    no backup, no rotation, exit 1."""
    from .maintenance import maintain_store

    ctx.setup_logging()
    report = maintain_store(ctx.config)  # checks the store before anything opens it for writing
    click.echo(f"stored pages dropped: {report.pages_dropped}")
    click.echo(f"fetch log rows deleted: {report.fetch_logs_deleted}")
    click.echo(f"backup: {report.backup or 'none (not SQLite, or [maintenance] backups = 0)'}")
    for path in report.backups_removed:
        click.echo(f"old backup removed: {path}")


@cli.command()
@click.argument("backup", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the store.")
@pass_ctx
@handle_errors
def restore(ctx: Context, backup: Path, yes: bool) -> None:
    """Put BACKUP (a file `tracker maintain` wrote) in place of the SQLite store. The backup
    must pass PRAGMA quick_check and `tracker run` must be stopped; the current store is
    kept beside it as <db>.before-restore-<time>. PostgreSQL: use pg_restore."""
    from .maintenance import restore as restore_backup
    from .maintenance import sqlite_file

    ctx.setup_logging()
    database = sqlite_file(ctx.config.database_url)
    if database is not None and not yes:
        click.confirm(f"Replace {database} with {backup}? The current store is kept beside it", abort=True)
    report = restore_backup(ctx.config, backup)
    click.echo(f"restored {report.database} from {report.backup}")
    click.echo(f"items: {report.items}, schema revision {report.revision}")
    click.echo(f"previous store kept as {report.set_aside}" if report.set_aside else "there was no store before")


@cli.command()
@pass_ctx
@handle_errors
def status(ctx: Context) -> None:
    """Is the service running; the last day of polling; feeds failing, parked or silent;
    per digest subscription the articles waiting, the last and the next send."""
    from .app import open_store
    from .rulefiles import rule_ids
    from .status import render_status
    from .status import status as read_status
    from .store import utcnow

    ids = rule_ids(ctx.config.rule_paths)
    click.echo(render_status(read_status(ctx.config, open_store(ctx.config), ids, utcnow())))


@cli.group()
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
    from .app import open_store, validate
    from .delivery import send_all, subscriptions

    ctx.setup_logging()
    subs = subscriptions(ctx.config, name)
    if not subs:
        _fail("no [[digests]] in the configuration", 2)
    validate(ctx.config)
    outcomes = send_all(ctx.config, open_store(ctx.config), subs, force=force)
    for o in outcomes:
        detail = {
            "sent": f"sent {o.stories} stories ({o.items} items), run {o.run_id}",
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
@click.option("--since", type=_DAY, help="Include everything stored since this date (UTC) instead.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory.")
@pass_ctx
@handle_errors
def digest_preview(ctx: Context, name: str | None, since: Any, out: Path) -> None:
    """Write NAME.html, NAME.txt and NAME.eml as each digest would be sent now, without
    sending or recording anything."""
    from datetime import UTC

    from .app import open_store, validate
    from .delivery import preview, rule_titles_of, subscriptions

    subs = subscriptions(ctx.config, name)
    if not subs:
        _fail("no [[digests]] in the configuration", 2)
    validate(ctx.config)
    store = open_store(ctx.config)
    titles = rule_titles_of(ctx.config)
    for sub in subs:
        paths = preview(
            ctx.config, store, sub, titles, out, since=since.replace(tzinfo=UTC) if since is not None else None
        )
        click.echo(f"{sub.name}: " + " ".join(str(p) for p in paths))


def main() -> None:
    """Run the command; every error reaches the user as one line on stderr (exit 2 for bad
    input, 1 otherwise), never as a traceback."""
    import logging

    for i, arg in enumerate(sys.argv[1:], start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
            _fail(f"argument {i} is not valid UTF-8: {shown!r}", 2)
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
            _fail(message, status)
        except UnicodeEncodeError:
            _fail(message.encode("utf-8", "replace").decode("ascii", "replace"), status)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
