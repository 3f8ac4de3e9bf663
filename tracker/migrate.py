"""Schema migrations (Alembic), run by `tracker init` and on service start.

``upgrade`` brings any database to the newest schema this code knows; ``check`` refuses a
database that a newer tracker has already migrated past what this code knows.
"""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from . import resources
from .errors import SchemaVersionError, StorageError

logger = logging.getLogger(__name__)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.bundled("migrations")))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


#: the PostgreSQL advisory lock key held while migrating (any constant unlikely to clash)
MIGRATION_LOCK = 0x6E657773  # "news"


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check(engine: Engine) -> None:
    """Raise SchemaVersionError when the database is newer than this code."""
    current = current_revision(engine)
    if current is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    try:
        script.get_revision(current)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        raise SchemaVersionError(
            f"the database is at schema revision {current!r}, which this tracker does not know "
            f"(newest known: {head_revision()!r}); it was written by a newer tracker: upgrade the tracker"
        ) from None


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema to head; returns (revision before, revision after)."""
    check(engine)
    before = current_revision(engine)
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Workers starting together: one migrates, the others wait, then find it done.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except Exception as exc:
        raise StorageError(f"migration failed: {exc}") from exc
    after = head_revision()
    if before != after:
        logger.info("schema upgraded from=%s to=%s", before or "(empty)", after)
    return before, after
