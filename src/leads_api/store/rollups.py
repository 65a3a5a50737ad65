"""Keeping the count rollups exact: every write of leads reports the rows it removed and
added, in the same transaction, and the rollup tables move by the difference.

The same report moves the organization's data version (organizations.data_version), so
an answer computed at one version stays the answer until the version moves: the API's
answer cache (api/answer_cache.py) relies on it.

Each rollup is a table keyed by organization plus a few group columns; `group_keys` says
where a lead row (keyed by column name) falls in each. The writers in this package call
`record_changes`; a test compares every rollup with a plain COUNT(*) after random writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.fields import CATEGORY_NAMES, CLICK_ID_NAMES, FIELDS_BY_NAME
from leads_api.store.schema import (
    category_rollups,
    lead_counts,
    lead_counts_by_clicks,
    lead_counts_by_day,
    lead_counts_by_value,
    organizations,
)

DAY_MS = 86_400_000
VALUE_BUCKET_CENTS = 10_000  # 100.00: round figures such as 100, 1000 or 5000 align
NO_VALUE_BUCKET = -1
CLICK_COLUMNS = tuple(FIELDS_BY_NAME[name].column for name in CLICK_ID_NAMES)
CATEGORY_COLUMNS = tuple(FIELDS_BY_NAME[name].column for name in CATEGORY_NAMES)

# The columns a writer must supply, for the rows it removes and adds.
ROLLUP_COLUMNS = (
    "status", "source", "created_at", "value_cents", *CLICK_COLUMNS, *CATEGORY_COLUMNS
)

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Rollup:
    table: sa.Table

    @property
    def group_columns(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns if c.name != "org_id"]


# In the order group_keys() gives each row's keys.
ROLLUPS: tuple[Rollup, ...] = (
    Rollup(lead_counts),
    Rollup(lead_counts_by_day),
    Rollup(lead_counts_by_value),
    Rollup(lead_counts_by_clicks),
    *(Rollup(category_rollups[name]) for name in CATEGORY_NAMES),
)


def group_keys(row: Row) -> list[tuple[Any, ...]]:
    """Where `row` falls in each rollup, in the order of ROLLUPS (the hot path of imports:
    one pass over the row instead of one lookup per rollup)."""
    status, source = row["status"], row["source"]
    cents = row["value_cents"]
    mask = 0
    for bit, column in _CLICK_BITS:
        if row[column] is not None:
            mask |= bit
    keys: list[tuple[Any, ...]] = [
        (status, source),
        (row["created_at"] // DAY_MS, status, source),
        (NO_VALUE_BUCKET if cents is None else cents // VALUE_BUCKET_CENTS, status, source),
        (mask,),
    ]
    for column in CATEGORY_COLUMNS:
        value = row[column]
        keys.append((value is not None, value or "", status, source))
    return keys


_CLICK_BITS = tuple((1 << i, column) for i, column in enumerate(CLICK_COLUMNS))


class RollupChanges:
    """Rollup moves gathered over several writes of one transaction, written by `flush`.

    A bulk import gathers its whole run's moves and writes them once before it commits:
    far fewer upserts than one set per chunk, and as exact, since nothing is committed
    until then."""

    def __init__(self) -> None:
        self._deltas: list[Counter[tuple[Any, ...]]] = [Counter() for _ in ROLLUPS]

    def add(self, *, removed: Iterable[Row] = (), added: Iterable[Row] = ()) -> None:
        deltas = self._deltas
        for sign, rows in ((-1, removed), (1, added)):
            for row in rows:
                for delta, key in zip(deltas, group_keys(row), strict=True):
                    delta[key] += sign

    def flush(self, conn: Connection, *, org_id: int) -> None:
        # The version first: every writer then locks the organization's row before its
        # rollup rows (a POST under a leadsLimit locks it first too), one order, no deadlock.
        # Moved even when no count does: a changed name or updatedAt changes answers too.
        bump_data_version(conn, org_id=org_id)
        for rollup, delta in zip(ROLLUPS, self._deltas, strict=True):
            changed = sorted((key, n) for key, n in delta.items() if n != 0)
            if changed:
                _upsert(conn, rollup, org_id, changed)
            delta.clear()


def record_changes(
    conn: Connection,
    *,
    org_id: int,
    removed: Iterable[Row] = (),
    added: Iterable[Row] = (),
    gather: RollupChanges | None = None,
) -> None:
    """Move every rollup of `org_id` by the rows removed and added (an update is both), now,
    or into `gather` when the caller flushes it before committing."""
    changes = gather if gather is not None else RollupChanges()
    changes.add(removed=removed, added=added)
    if gather is None:
        changes.flush(conn, org_id=org_id)


def bump_data_version(conn: Connection, *, org_id: int) -> None:
    conn.execute(
        organizations.update()
        .where(organizations.c.id == org_id)
        .values(data_version=organizations.c.data_version + 1)
    )


def data_version(conn: Connection, *, org_id: int) -> int:
    """The organization's data version as this transaction sees it."""
    return int(
        conn.execute(
            sa.select(organizations.c.data_version).where(organizations.c.id == org_id)
        ).scalar_one()
    )


def _upsert(
    conn: Connection, rollup: Rollup, org_id: int, changes: list[tuple[tuple[Any, ...], int]]
) -> None:
    # Sorted keys: concurrent writers lock rollup rows in one order, so they cannot deadlock.
    # Sent to the driver as plain tuples: SQLAlchemy's per-row parameter handling cost more
    # than the upserts themselves on large imports.
    conn.exec_driver_sql(
        _upsert_sql(rollup, conn.dialect.name), [(org_id, *key, n) for key, n in changes]
    )


@cache
def _upsert_sql(rollup: Rollup, dialect: str) -> str:
    columns = ["org_id", *rollup.group_columns]
    marker = "%s" if dialect == "postgresql" else "?"
    table = rollup.table.name
    return (
        f"INSERT INTO {table} ({', '.join(columns)}, n) "
        f"VALUES ({', '.join([marker] * (len(columns) + 1))}) "
        f"ON CONFLICT ({', '.join(columns)}) DO UPDATE SET n = {table}.n + excluded.n"
    )


def rebuild(conn: Connection, *, org_id: int) -> None:
    """Recompute every rollup of `org_id` from the leads table (repair, and migrations)."""
    from leads_api.store.schema import leads

    for rollup in ROLLUPS:
        conn.execute(rollup.table.delete().where(rollup.table.c.org_id == org_id))
    result = conn.execute(
        sa.select(*(leads.c[c] for c in ROLLUP_COLUMNS)).where(leads.c.org_id == org_id)
    )
    batch: list[Row] = []
    for row in result.mappings():
        batch.append(dict(row))
        if len(batch) >= 10_000:
            record_changes(conn, org_id=org_id, added=batch)
            batch = []
    record_changes(conn, org_id=org_id, added=batch)
