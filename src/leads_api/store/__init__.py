"""The only layer that talks to the database: schema, engine, migrations, reads and writes.

Every function that touches leads takes the organization id as a required keyword argument.
"""

from __future__ import annotations

# Every unit of work writes its webhook messages in its own transaction: importing the
# outbox registers it as a write listener, wherever the store is used.
from leads_api.store import outbox  # noqa: F401
from leads_api.store.engine import Store, create_engine, database_url_from_env
from leads_api.store.migrate import ensure_sqlite_schema, require_current_schema


def open_store(url: str | None = None, *, migrate_sqlite: bool = True) -> Store:
    """Open the store at `url` (default: LEADS_DATABASE_URL or ./leads.db).

    SQLite files are created and migrated on first use; PostgreSQL must already be migrated.
    """
    engine = create_engine(url or database_url_from_env())
    if engine.dialect.name == "sqlite":
        if migrate_sqlite:
            ensure_sqlite_schema(engine)
    else:
        require_current_schema(engine)
    return Store(engine)


__all__ = ["Store", "create_engine", "database_url_from_env", "open_store"]
