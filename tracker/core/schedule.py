"""When to poll a feed next: adaptive, cache-aware, graded backoff, parking (pure functions).

Due-ness lives in the database (``feeds.next_poll_at``); this module only computes it.

- **Healthy feeds** are polled about as often as they publish. The rate of new entries per
  day is an exponentially weighted average over fetches; the next interval is the time in
  which about ``entries_per_poll`` new entries are expected, within ``[min_interval,
  max_interval]``. Entries that turn out to be already stored (repeats from other feeds)
  count for less than new ones: a feed that mostly repeats others is polled less often.
- **Server hints**: Cache-Control ``max-age``, ``Expires`` and the feed's RSS ``<ttl>``
  only ever make a healthy feed's interval longer. After a 429 or 503, ``Retry-After``
  sets the retry time instead of the backoff (at least ``min_interval``, at most a day).
- **Failures** back off exponentially with jitter, graded by kind: a timeout or a reset
  connection weighs less than a 404 or a document that is not a feed.
- **Parked feeds**: a feed failing for ``park_after_days`` is parked: it shows as parked
  and is retried every ``parked_interval``, so it revives on its own when it works again.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from tracker.core.types import FetchStatus

#: how much one failure of each kind adds to the backoff exponent
FAILURE_WEIGHT = {
    FetchStatus.TIMEOUT: 0.5,
    FetchStatus.NETWORK: 0.5,
    FetchStatus.TOO_LARGE: 1.0,
    FetchStatus.ERROR: 1.0,
    FetchStatus.HTTP_ERROR: 1.0,  # 5xx; a 4xx other than 429 counts as ``PERMANENT_WEIGHT``
    FetchStatus.REFUSED: 2.0,
    FetchStatus.PARSE_ERROR: 2.0,
}
PERMANENT_WEIGHT = 2.0  #: 404, 410 and other client errors: not going to fix themselves soon
RATE_HALF_LIFE = timedelta(days=2)  #: how fast the publish-rate average forgets
REPEAT_WEIGHT = 0.25  #: an entry already stored counts as a quarter of a new one
MAX_RETRY_AFTER = timedelta(days=1)
MAX_HINT = timedelta(days=365)  #: a longer server hint is read as this (and then capped by the cadence)
MIN_RATE = 1e-3  #: new entries per day below which a feed counts as silent
_RNG = random.Random()  # one generator: seeding a new one per call costs more than the plan


@dataclass(frozen=True, slots=True)
class Cadence:
    """``[poll]`` settings that shape the schedule."""

    interval: timedelta = timedelta(minutes=30)  #: for a feed with no history yet
    min_interval: timedelta = timedelta(minutes=10)
    max_interval: timedelta = timedelta(hours=6)
    entries_per_poll: float = 1.0  #: aim to find about this many new entries per poll
    max_backoff: timedelta = timedelta(hours=12)
    park_after: timedelta = timedelta(days=3)
    parked_interval: timedelta = timedelta(hours=24)
    jitter: float = 0.1  #: ± fraction applied to every interval


@dataclass(frozen=True, slots=True)
class Plan:
    next_poll_at: datetime
    parked: bool = False
    rate: float | None = None  #: new entries per day, the updated average (None: unchanged)
    reason: str = ""  #: what decided the interval: "rate", "new", "cache", "retry-after", "backoff", "parked"


def failure_weight(status: FetchStatus, http_status: int | None) -> float:
    if status is FetchStatus.HTTP_ERROR and http_status is not None and 400 <= http_status < 500 and http_status != 429:
        return PERMANENT_WEIGHT
    return FAILURE_WEIGHT.get(status, 1.0)


def update_rate(rate: float | None, new: int, repeats: int, since: datetime | None, now: datetime) -> float | None:
    """The publish-rate average after a successful fetch that found ``new`` new and ``repeats``
    already-stored entries, ``since`` the previous successful fetch."""
    if since is None:
        return rate  # the first fetch returns the backlog: no rate yet
    elapsed = max((now - since).total_seconds(), 60.0)
    observed = (new + REPEAT_WEIGHT * repeats) * 86400.0 / elapsed
    if rate is None:
        return observed
    keep = float(0.5 ** (elapsed / RATE_HALF_LIFE.total_seconds()))
    return keep * rate + (1 - keep) * observed


def cache_hint(headers: dict[str, str], now: datetime, ttl_minutes: int | None = None) -> timedelta | None:
    """The longest freshness the response claims: max-age, Expires (against Date) or RSS ttl."""
    hints: list[timedelta] = []
    control = headers.get("cache-control", "").lower()
    for part in control.split(","):
        name, _, value = part.strip().partition("=")
        seconds = _seconds(value.strip().strip('"'))
        if name in ("max-age", "s-maxage") and seconds is not None:
            hints.append(timedelta(seconds=seconds))
    if "no-cache" in control or "no-store" in control:
        hints.clear()
    elif not any(part.strip().startswith("max-age") for part in control.split(",")) and headers.get("expires"):
        expires = _http_date(headers["expires"])
        date = _http_date(headers.get("date", "")) or now
        if expires is not None:
            hints.append(min(expires - date, MAX_HINT))
    if ttl_minutes:
        hints.append(timedelta(minutes=ttl_minutes))
    return max(hints) if hints and max(hints) > timedelta(0) else None


def retry_after(headers: dict[str, str], now: datetime) -> timedelta | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        delay = timedelta(seconds=seconds)
    else:
        when = _http_date(value)
        if when is None:
            return None
        delay = when - now
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


def plan(
    now: datetime,
    cadence: Cadence,
    *,
    failed: bool,
    failure_score: float = 0.0,
    failing_since: datetime | None = None,
    rate: float | None = None,
    cache: timedelta | None = None,
    retry: timedelta | None = None,
    rng: random.Random | None = None,
) -> Plan:
    """The next poll of a feed. ``failure_score`` is the sum of the failure weights of the
    current run of failures (this one included); ``rate`` is the updated publish rate."""
    rng = rng or _RNG
    spread = 1 + rng.uniform(-cadence.jitter, cadence.jitter)
    if failed:
        if failing_since is not None and now - failing_since >= cadence.park_after:
            return Plan(now + cadence.parked_interval * spread, parked=True, reason="parked")
        if retry is not None:
            # The server said when (429, 503): then, but never sooner than the fastest poll.
            return Plan(now + max(retry, cadence.min_interval), reason="retry-after")
        base = max(cadence.interval, cadence.min_interval)
        delay = min(base * 2 ** min(failure_score, 30.0), max(cadence.max_backoff, base))
        return Plan(now + delay * spread, reason="backoff")
    if rate is None:
        interval, reason = cadence.interval, "new"
    elif rate < MIN_RATE:
        interval, reason = cadence.max_interval, "rate"
    else:
        interval, reason = timedelta(days=cadence.entries_per_poll / rate), "rate"
    interval = min(max(interval, cadence.min_interval), cadence.max_interval)
    if retry is not None and retry > interval:
        return Plan(now + retry, rate=rate, reason="retry-after")
    if cache is not None and cache > interval:
        # Never before the response goes stale: the jitter only adds.
        cache = min(cache, max(cadence.max_interval, cadence.parked_interval))
        return Plan(now + cache * (1 + abs(spread - 1)), rate=rate, reason="cache")
    return Plan(now + interval * spread, rate=rate, reason=reason)


def _seconds(value: str) -> int | None:
    """A delta-seconds value (ASCII digits only), capped at a year; None if it is not one."""
    if not (value.isascii() and value.isdigit()):
        return None
    return min(int(value[:12]), int(MAX_HINT.total_seconds()))


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None or math.isnan(parsed.timestamp()):
        return None
    return parsed
