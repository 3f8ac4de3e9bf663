"""Wiring from a Config to the library objects the commands and the service use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, FetchConfig
from .errors import ConfigError, FetchError
from .store import FeedState, Store, make_engine, utcnow
from .types import Article, CycleReport

# The stages are imported where they are used: a read command that only opens the store
# (``tracker status``) does not pay for fetching, extraction, matching and grouping.
if TYPE_CHECKING:
    from .grouping import StoryGrouper
    from .matching import Matcher
    from .workers import Extractor


def open_store(config: Config, *, migrate: bool = True) -> Store:
    """Engine for the configured database, upgraded to the current schema."""
    engine = make_engine(config.database_url)
    if migrate:
        from .migrate import upgrade

        upgrade(engine)
    return Store(engine)


def load_matcher(config: Config) -> Matcher:
    from .matching import Matcher
    from .rules import load_rules

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
    from .grouping import StoryGrouper

    matcher = validate(config)
    store = store or open_store(config)
    store.adopt_rules((r.id, r.content_hash) for r in matcher.ruleset.rules)
    grouper = StoryGrouper(store)
    grouper.catch_up()
    return Prepared(store, matcher, grouper, store.sync_feeds(config.feeds))


def validate(config: Config) -> Matcher:
    """Load the rules and check the subscriptions against them, touching nothing: commands
    that write call this first, so a mistake in a rule file or a [[digests]] table writes
    nothing (and exits 2)."""
    matcher = load_matcher(config)
    check_digest_rules(config, {r.id for r in matcher.ruleset.rules})
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
    from .workers import Extractor

    fetch = config.fetch
    return Extractor(matcher, fetch.extract_workers, timeout=fetch.extract_timeout, memory_mb=fetch.extract_memory_mb)


def poll_once(config: Config, store: Store | None = None, *, all_feeds: bool = True) -> CycleReport:
    """One full cycle over the configured feeds (all of them, or only those due)."""
    from .fetching import Fetcher
    from .pipeline import run_cycle

    ready = prepare(config, store)
    feeds = ready.feeds if all_feeds else ready.store.feeds(due_at=utcnow())
    # The extraction workers start with the first new article (``Cycle``): a cycle in which
    # every feed is unchanged never spends seconds starting them.
    with Fetcher(config.fetch) as fetcher, closing(make_extractor(config, ready.matcher)) as extractor:
        return run_cycle(
            ready.store, fetcher, ready.matcher, extractor, config.poll, feeds=feeds, grouper=ready.grouper
        )


def extract_sources(sources: Sequence[str], fetch: FetchConfig) -> Iterator[dict[str, Any]]:
    """`tracker extract`: build an Article from each file or URL, in order, as a JSON-ready dict."""
    from .extract import ExtractJob, build_article
    from .fetching import Fetcher

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
