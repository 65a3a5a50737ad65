"""Bringing a database's schema up to date with the Alembic migrations in this package."""

from __future__ import annotations

import fcntl
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from leads_api.errors import UsageError
from leads_api.store.lead_objects import render_missing
from leads_api.store.schema import organizations

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def schema_is_current(conn: Connection) -> bool:
    """Whether this database's schema is the one this code needs: one small read, cheap
    enough for a readiness probe every second."""
    return MigrationContext.configure(conn).get_current_revision() == head_revision()


def render_stored_objects(conn: Connection) -> int:
    """Render the lead objects not stored yet, one organization after another; how many.
    The end of every upgrade to the newest revision (migrations/env.py)."""
    org_ids = list(conn.execute(sa.select(organizations.c.id)).scalars())
    return sum(render_missing(conn, org_id=org_id) for org_id in org_ids)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade to the newest revision; does nothing when already there."""
    if current_revision(engine) == head_revision():
        return
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def ensure_sqlite_schema(engine: Engine) -> None:
    """A new SQLite file is created and migrated on first use, under a file lock so that
    several processes starting at once migrate it only once."""
    database = engine.url.database
    if not database or database == ":memory:":
        migrate(engine)
        return
    path = Path(database).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(str(path) + ".migrate-lock", "w")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise UsageError(
            f"Cannot create the SQLite database {path}: {error.strerror} "
            "(check LEADS_DATABASE_URL)"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        migrate(engine)


def require_current_schema(engine: Engine) -> None:
    """PostgreSQL is migrated explicitly; refuse to serve an outdated schema."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise UsageError(
            f"The database schema is at revision {current or 'none'}, this version needs "
            f"{head}: run `leads-api migrate` first"
        )
