"""Alembic environment for newstracker.

`tracker init` (tracker.migrate.upgrade) passes an open connection in
``config.attributes["connection"]``; nothing here reads the environment or a .ini file.
"""

from __future__ import annotations

from alembic import context

from tracker.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs copy-and-move for ALTER
        compare_type=True,
        # The FTS5 index (items_fts and its shadow tables) is maintained by triggers, not models.
        include_name=lambda name, kind, _parent: not (kind == "table" and str(name).startswith("items_fts")),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; use `tracker init`")
run_migrations_online()
