"""Wiring from a Config to the library objects the commands and the service use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracker.core.config import Config, FetchConfig
from tracker.core.errors import ConfigError, FetchError
from tracker.core.types import Article, CycleReport
from tracker.store.database import FeedState, Store, make_engine, utcnow

logger = logging.getLogger(__name__)

# The stages are imported where they are used: a read command that only opens the store
# (``tracker status``) does not pay for fetching, extraction, matching and grouping.
if TYPE_CHECKING:
    from tracker.pipeline.grouping import StoryGrouper
    from tracker.pipeline.workers import Extractor
    from tracker.rules.matching import Matcher
    from tracker.service.metrics import Metrics


def open_store(config: Config, *, migrate: bool = True) -> Store:
    """Engine for the configured database, upgraded to the current schema."""
    engine = make_engine(config.database_url)
    if migrate:
        from tracker.store.migrate import upgrade

        upgrade(engine)
    return Store(engine)


def read_store(config: Config, *, given_as: str | None = None) -> Store:
    """The configured store for a command that only reads: never created, migrated or
    changed. A SQLite file that is not there, or a store older than this tracker, is one
    line saying what to run (exit 2) instead of an empty answer from a new empty file.
    ``given_as``: where the database was named, when not in the config (``--db``)."""
    from tracker.store.migrate import HEAD, check, current_revision

    name, where = must_exist(config, given_as)
    engine = make_engine(config.database_url, read_only=True)
    revision = current_revision(engine)
    if revision is None:
        raise ConfigError(f"{name} is not a tracker store (no schema); run `tracker init` or {where}")
    check(engine)  # newer than this tracker: says to upgrade the tracker
    if revision != HEAD:
        raise ConfigError(f"{name} has an older schema ({revision}, this tracker uses {HEAD}); run `tracker init`")
    return Store(engine)


def existing_store(config: Config, *, given_as: str | None = None) -> Store:
    """The configured store for a command that changes what is in it (pause a feed, re-tag,
    back up): like ``open_store`` (upgraded to the current schema), but a SQLite file that
    is not there is the same one line as for a read, not a new empty store."""
    must_exist(config, given_as)
    return open_store(config)


def must_exist(config: Config, given_as: str | None) -> tuple[str, str]:
    """(the store's name for messages, what to check); ConfigError when its SQLite file is missing."""
    from tracker.core.locations import LOCAL_DATABASE
    from tracker.store.engine import sqlite_file

    where = (
        f"check {given_as}"
        if given_as
        else f"check [database] url in {config.path}"
        if config.path
        else f"run it where the store is (./{LOCAL_DATABASE}, as `tracker demo` leaves it) or pass --db PATH"
    )
    file = sqlite_file(config.database_url)
    if file is not None and not file.is_file():
        looked = "" if given_as or config.path else f"no ./{LOCAL_DATABASE} here and "
        raise ConfigError(f"{looked}no database at {file}; run `tracker init` (or `tracker demo`), or {where}")
    return (str(file) if file is not None else "the database"), where


def load_matcher(config: Config) -> Matcher:
    from tracker.rules.matching import Matcher
    from tracker.rules.ruleset import load_rules

    return Matcher(load_rules(config.rule_paths))


@dataclass(frozen=True)
class Prepared:
    store: Store
    matcher: Matcher
    grouper: StoryGrouper
    feeds: list[FeedState]


def prepare(config: Config, store: Store | None = None) -> Prepared:
    """Store (migrated, every item in a story), compiled rules, and the feed table synced
    with the config."""
    # Rules and subscriptions are checked before the database is touched: a mistake in
    # either writes nothing.
    from tracker.pipeline.grouping import StoryGrouper

    matcher = validate(config)
    store = store or open_store(config)
    store.adopt_rules((r.id, r.content_hash) for r in matcher.ruleset.rules)
    grouper = StoryGrouper(store)
    grouper.catch_up()
    # The built-in feed list stands in only for a store whose user has not chosen feeds.
    sources = () if config.feeds_are_default and store.has_added_feeds() else config.feeds
    return Prepared(store, matcher, grouper, store.sync_feeds(sources))


def validate(config: Config) -> Matcher:
    """Load the rules and check the subscriptions against them, touching nothing: commands
    that write call this first, so a mistake in a rule file or a [[digests]] table writes
    nothing (and exits 2). The [[alerts]] entries are checked too."""
    matcher = load_matcher(config)
    check_digest_rules(config, {r.id for r in matcher.ruleset.rules})
    if config.alerts:
        from tracker.alerts.delivery import check

        check(config, {r.id for r in matcher.ruleset.rules})
    return matcher


def check_digest_rules(config: Config, rule_ids: set[str]) -> None:
    """Every [[digests]] subscription names only loaded rules (or "*")."""
    for i, sub in enumerate(config.digests):
        unknown = [r for r in sub.rules if r != "*" and r not in rule_ids]
        if unknown:
            raise ConfigError(
                f"unknown rule {', '.join(map(repr, unknown))} (known: {', '.join(sorted(rule_ids))})",
                path=str(config.path or "defaults"),
                key=f"digests[{i}].rules",
            )


def make_extractor(config: Config, matcher: Matcher) -> Extractor:
    """The extraction workers, with the per-page budgets of ``[fetch]``."""
    from tracker.pipeline.workers import Extractor

    fetch = config.fetch
    return Extractor(matcher, fetch.extract_workers, timeout=fetch.extract_timeout, memory_mb=fetch.extract_memory_mb)


def poll_once(
    config: Config,
    store: Store | None = None,
    *,
    all_feeds: bool = True,
    progress: Callable[[int, int, int], None] | None = None,
) -> CycleReport:
    """One full cycle over the configured feeds (all of them, or only those due), then the
    alerts for what it stored; ``progress`` is told (feeds done, feeds, articles stored) as
    it goes."""
    from tracker.pipeline.cycle import run_cycle
    from tracker.sources.fetching import Fetcher

    ready = prepare(config, store)
    feeds = ready.feeds if all_feeds else ready.store.feeds(due_at=utcnow())
    # The extraction workers start with the first new article (``Cycle``): a cycle in which
    # every feed is unchanged never spends seconds starting them.
    with Fetcher(config.fetch) as fetcher, closing(make_extractor(config, ready.matcher)) as extractor:
        report = run_cycle(
            ready.store,
            fetcher,
            ready.matcher,
            extractor,
            config.poll,
            feeds=feeds,
            grouper=ready.grouper,
            progress=progress,
        )
    after_cycle(config, ready.store, ready.matcher, report)
    return report


def rule_titles(matcher: Matcher) -> dict[str, str]:
    return {r.id: r.title for r in matcher.ruleset.rules}


def after_cycle(
    config: Config, store: Store, matcher: Matcher, report: CycleReport, metrics: Metrics | None = None
) -> None:
    """What follows a cycle: when it stored something, spikes are looked for (and recorded);
    then the alerts go out, new spikes among them. A failure here is logged and never stops
    polling: the items are stored already."""
    found: list[Any] = []
    if report.new_items:
        try:
            from tracker.analysis.spikewatch import watch

            found = watch(store.engine, (r.id for r in matcher.ruleset.rules), utcnow(), config.spikes)
        except Exception:
            logger.exception("looking for spikes failed; polling goes on")
    from tracker.service.alerting import after_cycle as send_alerts
    from tracker.service.alerting import spike_events

    send_alerts(config, store, report.started_at, rule_titles(matcher), metrics, spikes=spike_events(found))


def extract_sources(sources: Sequence[str], fetch: FetchConfig) -> Iterator[dict[str, Any]]:
    """`tracker extract`: build an Article from each file or URL, in order, as a JSON-ready dict."""
    from tracker.extraction.extract import ExtractJob, build_article
    from tracker.sources.fetching import Fetcher

    fetcher: Fetcher | None = None
    try:
        for source in sources:
            error = None
            job = ExtractJob(url=source)
            if source.startswith(("http://", "https://")):
                fetcher = fetcher or Fetcher(fetch)
                try:
                    page = fetcher.get(source)
                    job = ExtractJob(
                        url=source,
                        html=page.body,
                        final_url=page.final_url,
                        content_type=page.headers.get("content-type"),
                    )
                except FetchError as exc:
                    error = str(exc)
            else:
                try:
                    job = ExtractJob(url=source, html=Path(source).read_bytes())
                except OSError as exc:
                    error = f"{source}: {exc.strerror}"
            yield _article_record(source, build_article(job), error)
    finally:
        if fetcher is not None:
            fetcher.close()


def _article_record(source: str, article: Article, error: str | None) -> dict[str, Any]:
    return {
        "source": source,
        "url": article.url if article.url != source else None,
        "canonical_url": article.canonical_url,
        "title": article.title or None,
        "author": article.author,
        "published": article.published.isoformat() if article.published else None,
        "site_name": article.site_name,
        "language": article.language,
        "text": article.text or None,
        "text_source": article.text_source.value,
        "error": error,
    }
