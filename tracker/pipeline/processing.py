"""The per-article computation (``process``: build the article, match it, take its story
signature), what it hands back, and why a page got the feed's text instead: the part of
extraction that worker processes, the pool that runs them and the cycle all share."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from tracker.core.types import Article, Match
from tracker.extraction.extract import ExtractJob, build_article
from tracker.rules.matching import Matcher
from tracker.stories.signature import Signature, signature

Processed = tuple[Article, list[Match], Signature]

TIMEOUT = "timeout"  #: ``ExtractFuture.over_budget``: over the time budget
MEMORY = "memory"  #: over the memory budget
CRASHED = "crashed"  #: the worker died while on the page


class ExtractFuture(Future[Processed]):
    """The future ``Extractor.submit`` returns. When the page was over a budget or its worker
    died, the result is the feed-text fallback and ``over_budget`` says why (TIMEOUT, MEMORY,
    CRASHED); else ``over_budget`` is None."""

    over_budget: str | None = None


def over_budget(future: Future[Any]) -> str | None:
    """Why a page from ``Extractor.submit`` got the feed's text instead of extraction
    (TIMEOUT, MEMORY, CRASHED), or None."""
    return future.over_budget if isinstance(future, ExtractFuture) else None


def process(job: ExtractJob, matcher: Matcher) -> Processed:
    """Build the article, match it and take its story signature: the per-article computation."""
    article = build_article(job)
    return article, matcher.match(article.title, article.text), signature(article.title, article.text)
