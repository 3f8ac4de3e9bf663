"""full-text search over items (FTS5 on SQLite, a GIN index on PostgreSQL); analysts' views

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# SQLite: an external-content FTS5 index over items, kept in step by triggers on every write.
_SQLITE_FTS = [
    """CREATE VIRTUAL TABLE items_fts USING fts5(
        title, text, entities, content='items', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
        INSERT INTO items_fts(rowid, title, text, entities) VALUES (new.id, new.title, new.text, new.entities);
    END""",
    """CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
        INSERT INTO items_fts(items_fts, rowid, title, text, entities)
        VALUES ('delete', old.id, old.title, old.text, old.entities);
    END""",
    """CREATE TRIGGER items_fts_update AFTER UPDATE OF title, text, entities ON items BEGIN
        INSERT INTO items_fts(items_fts, rowid, title, text, entities)
        VALUES ('delete', old.id, old.title, old.text, old.entities);
        INSERT INTO items_fts(rowid, title, text, entities) VALUES (new.id, new.title, new.text, new.entities);
    END""",
    "INSERT INTO items_fts(items_fts) VALUES ('rebuild')",
]

#: the document PostgreSQL searches (the same expression in the index and in queries)
PG_DOCUMENT = (
    "to_tsvector('english', coalesce(title, '') || ' ' || coalesce(text, '') || ' ' || coalesce(entities, ''))"
)

# The day of an item: when it was published, else when it was fetched (UTC).
_DAY = {
    "sqlite": "substr(coalesce(i.published_at, i.fetched_at), 1, 10)",
    "postgresql": "to_char(coalesce(i.published_at, i.fetched_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

_TOPIC_DAILY = """
CREATE VIEW topic_daily AS
SELECT m.rule_id AS topic,
       {day} AS day,
       COUNT(*) AS items,
       COUNT(DISTINCT i.story_id) AS stories,
       SUM(CASE WHEN i.story_role = 'new' THEN 1 ELSE 0 END) AS new_stories,
       COUNT(DISTINCT i.host) AS outlets
FROM matches m JOIN items i ON i.id = m.item_id
GROUP BY m.rule_id, {day}
"""

_FEED_HEALTH = """
CREATE VIEW feed_health AS
SELECT f.id AS feed_id, f.name, f.url, f.title, f.active,
       CASE WHEN f.parked THEN 'parked' WHEN f.consecutive_failures > 0 THEN 'failing' ELSE 'ok' END AS state,
       f.last_status, f.last_error, f.consecutive_failures, f.failing_since,
       f.last_fetched_at, f.last_success_at, f.next_poll_at, f.schedule_reason,
       f.publish_rate AS new_per_day,
       (SELECT COUNT(*) FROM item_sources s WHERE s.feed_id = f.id) AS items
FROM feeds f
"""

_DIGEST_HISTORY = """
CREATE VIEW digest_history AS
SELECT r.id AS run_id, r.name AS subscription, r.status, r.created_at, r.sent_at, r.recipients,
       r.subject, r.message_id, r.n_stories, r.n_items, r.attempts, r.error
FROM digest_runs r
"""


def upgrade() -> None:
    op.add_column("items", sa.Column("entities", sa.Text(), nullable=True))
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(f"CREATE INDEX ix_items_fts ON items USING GIN ({PG_DOCUMENT})")
    op.execute(_TOPIC_DAILY.format(day=_DAY[dialect]))
    op.execute(_FEED_HEALTH)
    op.execute(_DIGEST_HISTORY)


def downgrade() -> None:
    for view in ("digest_history", "feed_health", "topic_daily"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("items_fts_insert", "items_fts_delete", "items_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS items_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_items_fts")
    op.drop_column("items", "entities")
