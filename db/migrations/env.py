"""Alembic environment for newstracker.

`tracker init` (tracker.store.migrate.upgrade) passes an open connection in
``config.attributes["connection"]``, already inside the one transaction (holding the
migration lock) that every pending revision runs in: Alembic commits nothing itself, so
an interrupted upgrade leaves the schema it started from. Nothing here reads the
environment or a .ini file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tracker.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection: Connection = config.attributes["connection"]
    if not connection.in_transaction():
        raise RuntimeError("migrations run inside the caller's transaction: use tracker.store.migrate.upgrade")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs copy-and-move for ALTER
        compare_type=True,
        # DDL is transactional on both databases (on SQLite once the driver's own transaction
        # handling is off, which tracker.store.migrate does), and all revisions share one transaction.
        transactional_ddl=True,
        transaction_per_migration=False,
        # The FTS5 index (items_fts and its shadow tables) is maintained by triggers, not models.
        include_name=lambda name, kind, _parent: not (kind == "table" and str(name).startswith("items_fts")),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; use `tracker init`")
run_migrations_online()
