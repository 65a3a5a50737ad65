"""Writing leads: inserting complete rows. Scoped to an organization.

Rows arrive keyed by column name (see `leads_api.lead`), already validated; the derived
search and ordering columns are filled in here, and the count rollups moved in the same
transaction (store/rollups.py), so no writer can forget them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from leads_api.lead import with_derived_columns
from leads_api.store.rollups import RollupChanges, record_changes
from leads_api.store.schema import leads

_LEAD_COLUMNS = tuple(c.name for c in leads.columns)
_INSERT = f"INSERT INTO {leads.name} ({', '.join(_LEAD_COLUMNS)}) VALUES ({{markers}})"
_row_values = itemgetter(*_LEAD_COLUMNS)  # a row's values in column order, at C speed
# From this many rows on, PostgreSQL gets them by COPY: a few times quicker than INSERTs.
COPY_FROM_ROWS = 100

_COPY_LEADS = sql.SQL("COPY {} ({}) FROM STDIN").format(
    sql.Identifier(leads.name), sql.SQL(", ").join(map(sql.Identifier, _LEAD_COLUMNS))
)


def insert_leads(
    conn: Connection,
    *,
    org_id: int,
    rows: Iterable[Mapping[str, Any]],
    rollups: RollupChanges | None = None,
) -> int:
    """Insert new leads for `org_id`; every row gets every column (absent ones as NULL).
    The rollups move now, or in `rollups` if the caller gathers them (see RollupChanges)."""
    batch = [_complete(row, org_id) for row in rows]
    if len(batch) >= COPY_FROM_ROWS and conn.dialect.name == "postgresql":
        _copy(conn, batch)
    elif batch:
        # Plain tuples to the driver: SQLAlchemy's per-row parameter handling for ~50
        # columns cost as much as SQLite's own insert work.
        marker = "%s" if conn.dialect.name == "postgresql" else "?"
        conn.exec_driver_sql(
            _INSERT.format(markers=", ".join([marker] * len(_LEAD_COLUMNS))),
            [_row_values(row) for row in batch],
        )
    if batch:
        record_changes(conn, org_id=org_id, added=batch, gather=rollups)
    return len(batch)


def _complete(row: Mapping[str, Any], org_id: int) -> dict[str, Any]:
    full = dict.fromkeys(_LEAD_COLUMNS)
    full.update(with_derived_columns(row))
    full["org_id"] = org_id  # last: a row can never name another organization
    return full


def _copy(conn: Connection, batch: Sequence[Mapping[str, Any]]) -> None:
    """COPY on the connection's own psycopg connection, inside its open transaction."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor, cursor.copy(_COPY_LEADS) as copy:
            for row in batch:
                copy.write_row(_row_values(row))
    except psycopg.Error as error:
        # The raw connection bypasses SQLAlchemy's wrapping: wrap as it would, so callers
        # see IntegrityError / OperationalError (a 503) like for any other statement.
        raise DBAPIError.instance(
            "COPY leads", None, error, psycopg.Error, dialect=conn.dialect
        ) from error
