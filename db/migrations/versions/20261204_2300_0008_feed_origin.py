"""feeds.origin, feeds.categories, feeds.paused: feeds added from the command line

A feed now comes from the config (``origin = 'config'``, the config stays authoritative
for it) or was added with `tracker feeds add` / `import` (``'cli'``, ``'opml'``), and
keeps the folders or categories it is filed under. A paused feed stays in the store and
is not polled until it is resumed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy): the views over feeds stay as they are.
    op.add_column("feeds", sa.Column("origin", sa.String(16), nullable=False, server_default="config"))
    op.add_column("feeds", sa.Column("categories", sa.Text(), nullable=True))
    op.add_column(
        "feeds", sa.Column("paused", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    for column in ("paused", "categories", "origin"):  # ALTER TABLE DROP COLUMN (SQLite 3.35+)
        op.drop_column("feeds", column)
