"""Sending digests exactly once: build, record in the outbox, send, confirm.

1. Any run of the subscription still ``pending`` for longer than a send can take (the
   process died between recording and confirming) is claimed and sent again first — the
   stored message byte for byte, with the same Message-ID, so a server or mail client that
   already has it can drop the copy. If that fails too it stays pending, with its items:
   its stories are never put in a second, different digest.
2. The new digest is built from the matches the subscription has not received; the run
   and its (item, topic) pairs are recorded in one transaction, the message rendered and
   stored with the run, then sent.
3. Sent: the run is confirmed. Failed: the error is recorded and the pairs are released, so
   the next run carries them. A crash between 2 and 3 leaves the run pending: step 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from tracker.core.config import Config, DigestConfig
from tracker.core.errors import ConfigError, MailError, TrackerError
from tracker.digest.compose import Digest, build_digest
from tracker.digest.mail import send
from tracker.digest.queries import (
    attach_message,
    claim_unsent,
    first_since,
    last_sent,
    lock_digest,
    mark_failed,
    mark_sent,
    note_resend_failure,
    record_run,
    unlock_digest,
)
from tracker.digest.render import message, render
from tracker.store.database import Store, utcnow
from tracker.store.lock import worker_name

logger = logging.getLogger(__name__)

FIRST_DIGEST_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    status: str  #: "sent", "empty" (nothing new; nothing sent), "failed" or "busy" (another run holds it)
    run_id: int | None = None
    stories: int = 0
    items: int = 0
    error: str | None = None
    resent: int = 0  #: earlier runs sent again after an interruption
    resend_failed: int = 0  #: earlier runs whose re-send failed (still pending)


@dataclass(frozen=True, slots=True)
class Sender:
    """How to send: the retry policy (default: ``[smtp] attempts`` and ``backoff``) and the
    clock to wait with."""

    attempts: int | None = None
    backoff: float | None = None
    sleep: Callable[[float], None] = time.sleep

    def deliver(self, config: Config, data: bytes, recipients: Sequence[str]) -> int:
        return send(
            config.smtp,
            data,
            sender=config.smtp.sender,
            recipients=recipients,
            attempts=self.attempts if self.attempts is not None else config.smtp.attempts,
            backoff=self.backoff if self.backoff is not None else config.smtp.backoff,
            sleep=self.sleep,
        )


def subscriptions(config: Config, name: str | None) -> list[DigestConfig]:
    subs = [d for d in config.digests if name is None or d.name == name]
    if name is not None and not subs:
        known = ", ".join(d.name for d in config.digests) or "none configured"
        raise ConfigError(f"no digest named {name!r} ([[digests]]: {known})", path=str(config.path or "defaults"))
    return subs


def check_rules(config: Config, sub: DigestConfig, rule_titles: Mapping[str, str]) -> None:
    unknown = [r for r in sub.rules if r != "*" and r not in rule_titles]
    if unknown:
        raise ConfigError(
            f"digest {sub.name!r} names unknown rules {', '.join(unknown)} (known: {', '.join(sorted(rule_titles))})",
            path=str(config.path or "defaults"),
            key="digests.rules",
        )


def compose(
    config: Config,
    store: Store,
    sub: DigestConfig,
    rule_titles: Mapping[str, str],
    now: datetime,
    since: datetime | None = None,
) -> tuple[Digest, datetime]:
    """The digest ``sub`` gets now, and the floor it looked from."""
    check_rules(config, sub, rule_titles)
    floor = since or first_since(store.engine, sub.name) or now - FIRST_DIGEST_LOOKBACK
    digest = build_digest(
        store,
        sub,
        rule_titles,
        since=floor,
        now=now,
        last_sent=None if since else last_sent(store.engine, sub.name),
        config_path=str(config.path) if config.path else None,
    )
    return digest, floor


def send_digest(
    config: Config,
    store: Store,
    sub: DigestConfig,
    rule_titles: Mapping[str, str],
    *,
    now: datetime | None = None,
    sender: Sender = Sender(),
) -> Outcome:
    now = now or utcnow()
    resent, resend_failed = _resend_interrupted(config, store, sub, sender, now)
    digest, floor = compose(config, store, sub, rule_titles, now)
    stories = digest.stories
    if digest.empty and not sub.send_empty:
        record_run(
            store.engine, sub.name, since=floor, now=now, recipients=sub.to, deliveries=(), n_stories=0, status="empty"
        )
        logger.info("digest %s: nothing new", sub.name)
        return Outcome(sub.name, "empty", resent=resent, resend_failed=resend_failed)
    try:
        run_id = record_run(
            store.engine,
            sub.name,
            since=floor,
            now=now,
            recipients=sub.to,
            deliveries=digest.deliveries,
            n_stories=stories,
        )
    except IntegrityError:
        return Outcome(
            sub.name, "busy", error="another digest run claimed these items", resent=resent, resend_failed=resend_failed
        )
    msg = message(digest, sender=config.smtp.sender, to=sub.to, msgid_key=f"digest-{run_id}")
    data = msg.as_bytes(policy=SMTP_POLICY)  # CRLF line ends, as SMTP wants them; stored as sent
    attach_message(store.engine, run_id, str(msg["Message-ID"]), str(msg["Subject"]), data)
    try:
        attempts = sender.deliver(config, data, sub.to)
    except MailError as exc:
        mark_failed(store.engine, run_id, str(exc), exc.attempts)
        logger.error("digest %s: run %d failed: %s", sub.name, run_id, exc)
        items = len({i for i, _ in digest.deliveries})
        return Outcome(sub.name, "failed", run_id, stories, items, str(exc), resent, resend_failed)
    mark_sent(store.engine, run_id, utcnow(), attempts)
    logger.info("digest %s: run %d sent to %s (%s)", sub.name, run_id, ", ".join(sub.to), digest.summary)
    items = len({i for i, _ in digest.deliveries})
    return Outcome(sub.name, "sent", run_id, stories, items, resent=resent, resend_failed=resend_failed)


def send_window(config: Config) -> timedelta:
    """The longest a send with retries can take: a run pending for longer was interrupted."""
    attempts = max(1, config.smtp.attempts)
    waits = sum(config.smtp.backoff * 2**i for i in range(attempts - 1))
    return timedelta(seconds=4 * config.smtp.timeout * attempts + waits + 60)


def _resend_interrupted(
    config: Config, store: Store, sub: DigestConfig, sender: Sender, now: datetime
) -> tuple[int, int]:
    done = failed = 0
    for run in claim_unsent(store.engine, sub.name, now, now - send_window(config)):
        if not run["message"]:
            # Died before the message was stored: it was never sent. Release its items.
            mark_failed(store.engine, run["id"], "interrupted before sending", 0)
            continue
        recipients = [r.strip() for r in run["recipients"].split(",") if r.strip()]
        try:
            attempts = sender.deliver(config, run["message"], recipients)
        except MailError as exc:
            note_resend_failure(store.engine, run["id"], f"re-send after an interruption: {exc}", exc.attempts)
            logger.error("digest %s: re-sending interrupted run %d failed: %s", sub.name, run["id"], exc)
            failed += 1
            continue
        mark_sent(store.engine, run["id"], utcnow(), attempts)
        logger.warning("digest %s: run %d was interrupted; sent again as %s", sub.name, run["id"], run["message_id"])
        done += 1
    return done, failed


def preview(
    config: Config,
    store: Store,
    sub: DigestConfig,
    rule_titles: Mapping[str, str],
    out: Path,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Write NAME.html, NAME.txt and NAME.eml as the digest would be sent now; record nothing."""
    now = now or utcnow()
    digest, _ = compose(config, store, sub, rule_titles, now, since)
    html, text = render(digest)
    msg = message(digest, sender=config.smtp.sender, to=sub.to, msgid_key=f"preview-{sub.name}")
    out.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in sub.name)
    paths = [out / f"{stem}.html", out / f"{stem}.txt", out / f"{stem}.eml"]
    paths[0].write_text(html, encoding="utf-8")
    paths[1].write_text(text, encoding="utf-8")
    paths[2].write_bytes(msg.as_bytes())
    return paths


def last_scheduled(sub: DigestConfig, now: datetime) -> datetime:
    """The latest time (UTC) at or before ``now`` at which ``sub`` was scheduled: its ``at``
    in its timezone, on today's or yesterday's local date. A wall time that a DST change
    skips or repeats resolves to its first reading (fold 0)."""
    zone = ZoneInfo(sub.timezone)
    hour, minute = (int(x) for x in sub.at.split(":"))
    today = now.astimezone(zone).date()
    for day in (today, today - timedelta(days=1)):
        at = datetime.combine(day, dtime(hour, minute), tzinfo=zone).astimezone(UTC)
        if at <= now:
            return at
    raise AssertionError("unreachable: yesterday's time is always in the past")


def due(sub: DigestConfig, now: datetime, last: datetime | None) -> bool:
    """Has the subscription's time come since its last digest?"""
    return last is None or last < last_scheduled(sub, now)


def rule_titles_of(config: Config) -> dict[str, str]:
    from tracker.rules.ruleset import load_rules

    return {r.id: r.title for r in load_rules(config.rule_paths).rules}


def send_all(
    config: Config,
    store: Store,
    names: Sequence[DigestConfig],
    *,
    force: bool,
    sender: Sender = Sender(),
    now: datetime | None = None,
) -> list[Outcome]:
    titles = rule_titles_of(config)
    now = now or utcnow()
    owner = worker_name()
    out = []
    for sub in names:
        # Workers on other machines may reach the same subscription at the same minute: one
        # sends, and the others then find it not due (or busy while it is still sending).
        # The lock outlasts a send and the re-sends of interrupted runs that precede it.
        if not lock_digest(store.engine, sub.name, owner, now, utcnow() + 4 * send_window(config)):
            out.append(Outcome(sub.name, "busy", error="another sender is sending this digest"))
            continue
        try:
            if not force and not due(sub, now, last_sent(store.engine, sub.name)):
                out.append(Outcome(sub.name, "not-due"))
                continue
            out.append(send_digest(config, store, sub, titles, now=now, sender=sender))
        except TrackerError as exc:  # one bad subscription does not stop the others
            logger.error("digest %s: %s", sub.name, exc)
            out.append(Outcome(sub.name, "failed", error=str(exc)))
        finally:
            unlock_digest(store.engine, sub.name, owner)
    return out
