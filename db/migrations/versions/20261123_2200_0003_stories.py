"""stories: story role and time per item, item signatures, the stories view

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:00:00
"""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# One row per story. The headline is the title of the story's most widely carried item
# (most feeds), the earliest on a tie; sources are distinct outlets (hosts); topics are the
# rules any of its items match, comma-separated and sorted.
_STORIES = """
CREATE VIEW stories AS
SELECT i.story_id AS story_id,
       (SELECT h.title FROM items h
         WHERE h.story_id = i.story_id
         ORDER BY (SELECT COUNT(*) FROM item_sources s WHERE s.item_id = h.id) DESC, h.story_at, h.id
         LIMIT 1) AS headline,
       MIN(i.story_at) AS first_seen,
       MAX(i.story_at) AS last_seen,
       COUNT(*) AS n_items,
       COUNT(DISTINCT i.host) AS n_sources,
       {topics} AS topics
FROM items i
WHERE i.story_id IS NOT NULL
GROUP BY i.story_id
"""

# The topics column, per dialect: PostgreSQL orders a DISTINCT aggregate; SQLite's
# group_concat cannot, so it reads from a sorted subquery.
_TOPICS = {
    "postgresql": "(SELECT string_agg(DISTINCT m.rule_id, ',' ORDER BY m.rule_id)"
    " FROM matches m JOIN items t ON t.id = m.item_id WHERE t.story_id = i.story_id)",
    "sqlite": "(SELECT group_concat(rule_id, ',') FROM (SELECT DISTINCT m.rule_id AS rule_id"
    " FROM matches m JOIN items t ON t.id = m.item_id WHERE t.story_id = i.story_id ORDER BY m.rule_id))",
}


def stories_view_sql(dialect: str) -> str:
    if dialect not in _TOPICS:
        raise NotImplementedError(f"no stories view for the {dialect} dialect")
    return _STORIES.format(topics=_TOPICS[dialect])


def _host(url: str) -> str | None:
    host = urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("story_role", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("story_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_items_story_at"), ["story_at"], unique=False)
    op.create_table(
        "item_signatures",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("minhash", sa.LargeBinary(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_signatures_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_item_signatures")),
    )
    # Items stored before this revision get their outlet now, and their story the next
    # time the tracker starts (it groups every item without one, in time order).
    bind = op.get_bind()
    items = sa.table("items", sa.column("id", sa.Integer), sa.column("url", sa.String), sa.column("host", sa.String))
    for item_id, url in bind.execute(sa.select(items.c.id, items.c.url)).all():
        bind.execute(sa.update(items).where(items.c.id == item_id).values(host=_host(url)))
    bind.execute(sa.text("UPDATE items SET story_id = NULL"))
    op.execute(stories_view_sql(bind.dialect.name))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS stories")
    op.drop_table("item_signatures")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_story_at"))
        batch_op.drop_column("host")
        batch_op.drop_column("story_at")
        batch_op.drop_column("story_role")
