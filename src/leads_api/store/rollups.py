"""Keeping the count rollups exact: every write of leads reports the rows it removed and
added, in the same transaction, and the rollup tables move by the difference.

Each rollup is a table keyed by organization plus a few group columns; `group_key` says
where a lead row (keyed by column name) falls. The writers in this package call
`record_changes`; a test compares every rollup with a plain COUNT(*) after random writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from leads_api.fields import CATEGORY_NAMES, CLICK_ID_NAMES, FIELDS_BY_NAME
from leads_api.store.schema import (
    category_rollups,
    lead_counts,
    lead_counts_by_clicks,
    lead_counts_by_day,
    lead_counts_by_value,
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


def day_of(created_at_ms: int) -> int:
    return created_at_ms // DAY_MS


def value_bucket(cents: int | None) -> int:
    return NO_VALUE_BUCKET if cents is None else cents // VALUE_BUCKET_CENTS


def click_mask(row: Row) -> int:
    return sum(1 << i for i, column in enumerate(CLICK_COLUMNS) if row.get(column) is not None)


def _category_key(column: str) -> Callable[[Row], tuple[Any, ...]]:
    def key(row: Row) -> tuple[Any, ...]:
        value = row[column]
        return (value is not None, value or "", row["status"], row["source"])

    return key


@dataclass(frozen=True)
class Rollup:
    table: sa.Table
    group_key: Callable[[Row], tuple[Any, ...]]  # in the order of the table's group columns

    @property
    def group_columns(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns if c.name != "org_id"]


ROLLUPS: tuple[Rollup, ...] = (
    Rollup(lead_counts, lambda r: (r["status"], r["source"])),
    Rollup(lead_counts_by_day, lambda r: (day_of(r["created_at"]), r["status"], r["source"])),
    Rollup(
        lead_counts_by_value,
        lambda r: (value_bucket(r["value_cents"]), r["status"], r["source"]),
    ),
    Rollup(lead_counts_by_clicks, lambda r: (click_mask(r),)),
    *(
        Rollup(category_rollups[name], _category_key(FIELDS_BY_NAME[name].column))
        for name in CATEGORY_NAMES
    ),
)


def record_changes(
    conn: Connection, *, org_id: int, removed: Iterable[Row] = (), added: Iterable[Row] = ()
) -> None:
    """Move every rollup of `org_id` by the rows removed and added (an update is both)."""
    deltas: dict[int, Counter[tuple[Any, ...]]] = {i: Counter() for i in range(len(ROLLUPS))}
    for row in removed:
        for i, rollup in enumerate(ROLLUPS):
            deltas[i][rollup.group_key(row)] -= 1
    for row in added:
        for i, rollup in enumerate(ROLLUPS):
            deltas[i][rollup.group_key(row)] += 1
    for i, rollup in enumerate(ROLLUPS):
        changed = sorted((key, n) for key, n in deltas[i].items() if n != 0)
        if changed:
            _upsert(conn, rollup, org_id, changed)


def _upsert(
    conn: Connection, rollup: Rollup, org_id: int, changes: list[tuple[tuple[Any, ...], int]]
) -> None:
    # Sorted keys: concurrent writers lock rollup rows in one order, so they cannot deadlock.
    table = rollup.table
    names = rollup.group_columns
    rows = [{"org_id": org_id, **dict(zip(names, key, strict=True)), "n": n} for key, n in changes]
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.org_id, *(table.c[name] for name in names)],
        set_={"n": table.c.n + insert.excluded.n},
    )
    conn.execute(statement, rows)


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
