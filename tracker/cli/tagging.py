"""Tagging: the `tracker rules` group (check, test, train), `match`, `extract`, `explain` and
`rematch`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tracker.cli.common import Context, fail, handle_errors, pass_ctx


@click.command()
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
    from tracker.rules.explain import explain_match
    from tracker.service.app import load_matcher

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
            fail(f"{name}:{number}: not a JSON object: {exc}", 2)
        out = []
        for m in matcher.match(str(doc.get("title") or ""), str(doc.get("text") or "")):
            entry: dict[str, Any] = {"rule": m.rule, "score": m.score, "snippets": list(m.snippets)}
            if explain:
                entry.update(explain_match(m))
            out.append(entry)
        click.echo(json.dumps({"id": doc.get("id"), "matches": out}, ensure_ascii=False))


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="FILE_OR_URL...")
@pass_ctx
@handle_errors
def extract(ctx: Context, sources: tuple[str, ...]) -> None:
    """Extract articles from HTML files or URLs; one JSON object per line, in order.

    Uses the same extraction as `poll`. "text" is null when nothing was extracted.
    """
    from tracker.service.app import extract_sources

    ctx.setup_logging()
    for record in extract_sources(sources, ctx.config.fetch):
        click.echo(json.dumps(record, ensure_ascii=False))


@click.group()
def rules() -> None:
    """Topic rules: check them, test them on a labeled corpus."""


@rules.command("check")
@pass_ctx
@handle_errors
def rules_check(ctx: Context) -> None:
    """Validate every rule file and the entity catalogue; exit 2 on any error."""
    from tracker.rules.ruleset import check_rules

    ruleset, errors = check_rules(ctx.config.rule_paths)
    for err in errors:
        click.echo(err.details(), err=True)
    if errors:
        sys.exit(2)
    where = ", ".join(str(p) for p in ctx.config.rule_paths)
    click.echo(
        f"{len(ruleset.rules)} rules and {len(ruleset.entities)} entities OK in {where}: "
        + ", ".join(r.id for r in ruleset.rules)
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
    from tracker.analysis.tables import table
    from tracker.rules.evaluate import evaluate, read_labeled
    from tracker.service.app import load_matcher

    matcher = load_matcher(ctx.config)
    rule_ids = [r.id for r in matcher.ruleset.rules]
    if rule is not None:
        if rule not in rule_ids:
            fail(f"no rule {rule!r} (known: {', '.join(rule_ids)})", 2)
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
    from tracker.rules.classifier import MODEL_FILE, dump
    from tracker.rules.evaluate import read_labeled, train_model
    from tracker.rules.matching import Matcher
    from tracker.rules.ruleset import load_rules

    # The model being replaced plays no part (and may be from an older tracker).
    matcher = Matcher(load_rules(ctx.config.rule_paths, model=False))
    if not matcher.ruleset.candidates:
        fail("no rule has a candidate query: nothing to train", 2)
    docs = [d for path in corpus_paths for d in read_labeled(path)]
    model = train_model(matcher, docs, [p.name for p in corpus_paths])
    first = next(iter(ctx.config.rule_paths))
    target = out or (first if first.is_dir() else first.parent) / MODEL_FILE
    dump(model, target)
    click.echo(f"trained {len(model.topics)} topic models on {len(docs)} documents: {target}")


@click.command()
@click.argument("item")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True)
@pass_ctx
@handle_errors
def explain(ctx: Context, item: str, fmt: str) -> None:
    """Why ITEM (an item id or URL) was tagged: per rule the score, the matched terms and
    entities with their positions, and the snippets with the terms [highlighted]."""
    from tracker.rules.explain import render_item

    store = ctx.read_store()
    item_id = int(item) if item.isdigit() else store.item_id(item)
    if item_id is None and not item.isdigit():
        from contextlib import suppress

        from tracker.core.urls import canonicalize

        with suppress(ValueError):  # a URL as pasted from a browser or a feed: tracking parameters, fragment
            item_id = store.item_id(canonicalize(item))
    detail = store.item_detail(item_id) if item_id is not None else None
    if detail is None:
        fail(f"no stored item {item!r}", 2)
    if fmt != "text":
        from tracker.core.jsonout import dumps

        click.echo(dumps(detail, indent=2 if fmt == "json" else None))
        return
    click.echo(render_item(detail))  # type: ignore[arg-type]


@click.command()
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

    from tracker.pipeline.rematch import changed_rules
    from tracker.pipeline.rematch import rematch as run_rematch
    from tracker.rules.ruleset import load_rules

    ctx.setup_logging()
    store = ctx.existing_store()
    ruleset = load_rules(ctx.config.rule_paths)
    since_utc = since.replace(tzinfo=UTC) if since is not None else None
    if not changed_rules(store, ruleset, rule_id):
        click.echo("no rule changed: nothing to do")
        return
    with click.progressbar(length=store.count_items(since_utc), label="re-tagging", file=sys.stderr) as bar:
        report = run_rematch(store, ruleset, rule=rule_id, since=since_utc, progress=bar.update)
    click.echo(f"re-tagged {report.items} items with {', '.join(report.rules)}: {report.changed} tags changed")


COMMANDS: tuple[click.Command, ...] = (match, extract, rules, explain, rematch)
