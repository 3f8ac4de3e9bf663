"""The schema: every table, written once (SQLAlchemy 2.x).

Migrations under db/migrations create exactly this; a test checks that Alembic's
autogenerate finds no difference. Views (``tagged_items``) are defined in the migration
that creates them, which autogenerate cannot see. All datetimes are stored as UTC (``UTCDateTime``
keeps them timezone-aware on the way out, also on SQLite, which drops tzinfo).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Feed(Base):
    """A polled feed and its fetch state."""

    __tablename__ = "feeds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str] = mapped_column(String(512))
    title: Mapped[str | None] = mapped_column(String(1024))
    active: Mapped[bool] = mapped_column(default=True)  #: false once removed from the config (or the store)
    #: "config" (the config file is authoritative for it), or "cli" / "opml": added from the command line
    origin: Mapped[str] = mapped_column(String(16), default="config", server_default="config")
    categories: Mapped[str | None] = mapped_column(Text)  #: JSON array of folder/category paths ("News/Autos")
    paused: Mapped[bool] = mapped_column(default=False, server_default=false())  #: kept, not polled
    etag: Mapped[str | None] = mapped_column(String(1024))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    body_hash: Mapped[str | None] = mapped_column(String(64))  #: sha256 of the last parsed body
    last_status: Mapped[str | None] = mapped_column(String(32))  #: a FetchStatus value
    last_error: Mapped[str | None] = mapped_column(Text)
    bozo_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128))  #: the worker holding the feed's lease
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  #: when the lease expires
    publish_rate: Mapped[float | None] = mapped_column(Float)  #: new entries per day, averaged over fetches
    failure_score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  #: graded failures in a row
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  #: first failure of the current run
    parked: Mapped[bool] = mapped_column(default=False, server_default=false())  #: failing for days: retried rarely
    schedule_reason: Mapped[str | None] = mapped_column(String(16))  #: what set next_poll_at
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Item(Base):
    """One article, stored once whatever the number of feeds it appeared in."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)  #: canonical URL
    guid: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(512))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    site_name: Mapped[str | None] = mapped_column(String(512))
    language: Mapped[str | None] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    text_source: Mapped[str] = mapped_column(String(16))  #: a TextSource value
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    raw_html: Mapped[bytes | None] = mapped_column(LargeBinary)  #: zlib-compressed page as fetched
    final_url: Mapped[str | None] = mapped_column(String(2048))
    story_id: Mapped[int | None] = mapped_column(Integer, index=True)  #: the id of the story's first item
    story_role: Mapped[str | None] = mapped_column(String(16))  #: "new", "update" or "copy"
    #: the time the item counts at in its story: published, or fetched if later or unknown
    story_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    host: Mapped[str | None] = mapped_column(String(255))  #: the outlet: canonical URL's host, without www.
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: the catalogue entities its matches found, as "id: name as written; ..." (searchable)
    entities: Mapped[str | None] = mapped_column(Text)
    #: an update: whether it reports something no earlier item of its story carried (else null)
    adds_new: Mapped[bool | None] = mapped_column(Boolean(create_constraint=False))


class ItemDevelopment(Base):
    """What an update adds to its story: one sentence of it each (``story_developments``)."""

    __tablename__ = "item_developments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  #: 0 for the most telling
    sentence: Mapped[str] = mapped_column(Text)
    facts: Mapped[str] = mapped_column(Text)  #: JSON list: the new figures, names and quote in it
    score: Mapped[float] = mapped_column(Float)


class Spike(Base):
    """A topic's volume well above its own baseline in one bucket (``topic_spikes``)."""

    __tablename__ = "spikes"
    __table_args__ = (UniqueConstraint("topic", "measure", "bucket", "bucket_start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(String(128))
    measure: Mapped[str] = mapped_column(String(16))  #: "items" or "stories" (new stories)
    bucket: Mapped[str] = mapped_column(String(8))  #: "day" or "hour" (UTC)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime)
    observed: Mapped[int] = mapped_column(Integer)
    expected: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)  #: -log10 of the chance of so many under the baseline
    reason: Mapped[str] = mapped_column(Text)
    stories: Mapped[str] = mapped_column(Text)  #: JSON: the top stories behind it
    terms: Mapped[str] = mapped_column(Text)  #: JSON: the terms that rose most
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ItemSignature(Base):
    """What story grouping keeps of an item (see ``tracker.stories.signature.Signature``)."""

    __tablename__ = "item_signatures"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    minhash: Mapped[bytes] = mapped_column(LargeBinary)
    terms: Mapped[str] = mapped_column(Text)  #: JSON: lede, text, headline and names vectors, quotes, figures


class StoryMerge(Base):
    """Two stories made one: which survived, which was merged into it, and why."""

    __tablename__ = "story_merges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    story_id: Mapped[int] = mapped_column(Integer, index=True)  #: the surviving story
    merged_story_id: Mapped[int] = mapped_column(Integer, index=True)  #: the story merged into it
    #: the item that linked both (null once it is deleted)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="SET NULL"))
    score: Mapped[float] = mapped_column(Float)  #: the model's probability for the link into the merged story
    reason: Mapped[str] = mapped_column(String(32))  #: the feature that weighed most for that link
    at: Mapped[datetime] = mapped_column(UTCDateTime)  #: when the merge was recorded


class ItemSource(Base):
    """Where an item was seen: one row per (item, feed)."""

    __tablename__ = "item_sources"
    __table_args__ = (
        UniqueConstraint("item_id", "feed_id"),
        Index("ix_item_sources_feed_guid", "feed_id", "guid"),
        Index("ix_item_sources_entry_url", "entry_url"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    entry_url: Mapped[str | None] = mapped_column(String(2048))
    guid: Mapped[str | None] = mapped_column(String(2048))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RuleMatch(Base):
    """A topic rule that matched an item."""

    __tablename__ = "matches"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    score: Mapped[float] = mapped_column(Float)
    terms: Mapped[str] = mapped_column(Text)  #: JSON list of matched terms
    snippet: Mapped[str] = mapped_column(Text)  #: one or two sentences, separated by a newline
    #: JSON list of {term, text, field, start, end}: every matched occurrence, offsets within the field
    evidence: Mapped[str | None] = mapped_column(Text)
    rule_hash: Mapped[str] = mapped_column(String(64))
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the item's time (published, else fetched), copied here so that "topic X since T" is one index range
    item_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_matches_rule_id_item_at", "rule_id", "item_at"),)


class RuleState(Base):
    """The rule version every stored item has been tagged with (see ``tracker rematch``)."""

    __tablename__ = "rule_state"
    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    rule_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FetchLog(Base):
    """One row per feed fetch."""

    __tablename__ = "fetch_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    bytes: Mapped[int | None] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    new_items: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class DigestRun(Base):
    """One digest of one subscription: the outbox row. The rendered message is stored before
    it is sent, so a crash after sending re-sends the identical message (same Message-ID)."""

    __tablename__ = "digest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)  #: the subscription
    status: Mapped[str] = mapped_column(String(16))  #: "pending", "sent", "failed" or "empty"
    since: Mapped[datetime] = mapped_column(UTCDateTime)  #: items stored from here on were considered
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    recipients: Mapped[str] = mapped_column(Text)  #: comma-separated
    message_id: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(Text)
    message: Mapped[bytes | None] = mapped_column(LargeBinary)  #: the .eml as sent
    n_stories: Mapped[int] = mapped_column(Integer, default=0)
    n_items: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class DigestLock(Base):
    """One row per subscription that has run: the row a sender locks (or leases) so that
    workers on several machines never send the same digest at once."""

    __tablename__ = "digest_locks"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128))
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DigestDelivery(Base):
    """An item's match that a subscription's digest carried: never carried twice."""

    __tablename__ = "digest_deliveries"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("digest_runs.id", ondelete="CASCADE"), index=True)


class AlertState(Base):
    """One row per ``[[alerts]]`` entry that has run: where it started looking. Items stored
    before that are never alerted, so a new alert does not announce the whole archive."""

    __tablename__ = "alert_state"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertEvent(Base):
    """An event an alert has taken on: a new story, an update to a story, a topic spike.
    Recorded once per (alert, event, key), before any message about it is sent."""

    __tablename__ = "alert_events"
    __table_args__ = (UniqueConstraint("alert", "event", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(16))  #: "new_story", "update" or "spike"
    #: the event's identity within the alert: "story:<id>", "update:<story>:<item>", "spike:<rule>:<start>"
    key: Mapped[str] = mapped_column(String(255))
    story_id: Mapped[int | None] = mapped_column(Integer)
    item_id: Mapped[int | None] = mapped_column(Integer)
    rule_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)  #: JSON: what the message says about it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: the message that carries it; null while it is held (quiet hours) or not yet composed
    message_id: Mapped[int | None] = mapped_column(ForeignKey("alert_messages.id", ondelete="SET NULL"), index=True)


class AlertMessage(Base):
    """One message of one alert: a single event, or a summary of several. Its content is
    stored before it is sent, so a re-send after a crash says the same, with the same ``ref``."""

    __tablename__ = "alert_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert: Mapped[str] = mapped_column(String(128), index=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)  #: the idempotency key receivers see
    kind: Mapped[str] = mapped_column(String(16))  #: "event" or "summary"
    title: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)  #: JSON: the events and how they are grouped
    n_events: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertSend(Base):
    """A message to one of its alert's URLs: the outbox row, recorded before the send and
    confirmed after it."""

    __tablename__ = "alert_sends"
    __table_args__ = (UniqueConstraint("message_id", "channel"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("alert_messages.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(64))  #: a hash of the URL as written (the channel's identity)
    target: Mapped[str] = mapped_column(Text)  #: the URL with its secrets masked, for people
    status: Mapped[str] = mapped_column(String(16))  #: "pending", "sent", "failed" (given up) or "dropped"
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: when it may be tried (again); while a send is in progress, when that send counts as interrupted
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)  #: the last failure, secrets removed
