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
