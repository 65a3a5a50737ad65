"""The count rollups, each one declaration: its table, its group key, the columns it reads and
the filters whose totals it answers.

A rollup is a table of exact lead counts per organization and group; every write of leads
moves it by the rows the write removed and added, in the write's own transaction (the unit
of work in store/unit_of_work.py does that, for every writer). A rollup's group key is a sequence
of *dimensions*, each of which says where a lead row falls (its part of the key) and which
query predicates it can answer on the rollup's table:

- `Equal(*fields)`: columns kept as they are (status, source); answers `field=` filters.
- `Buckets(field, ...)`: a number cut into fixed-width buckets (days of createdAt, 100.00s
  of value); answers ranges and `[exists]`, with the partial buckets at a range's ends
  counted on the leads table (store/counts.py).
- `Presence(*fields)`: a bitmask of which fields are set; answers `[exists]`.
- `Category(field)`: a text field with few values (present, value); answers `=` and `[exists]`.

**A new rollup** is a declaration in ROLLUPS, its table in store/schema.py and a migration
that creates and backfills it: the writers and the count planner loop over ROLLUPS.

>>> lead_counts_rollup.key({"status": "won", "source": "api"})
('won', 'api')
>>> by_day = next(r for r in ROLLUPS if r.table.name == "lead_counts_by_day")
>>> by_day.key({"created_at": 86_400_000 * 3 + 5, "status": "open", "source": "gtm"})
(3, 'open', 'gtm')
>>> by_day.columns
('created_at', 'status', 'source')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from operator import itemgetter
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from leads_api.fields import CATEGORY_NAMES, CLICK_ID_NAMES, FIELDS_BY_NAME
from leads_api.query.model import Exists, IntRanges, Predicate, TextIn
from leads_api.store.driver import psycopg_connection
from leads_api.store.schema import (
    category_rollups,
    lead_counts,
    lead_counts_by_clicks,
    lead_counts_by_day,
    lead_counts_by_updated_day,
    lead_counts_by_value,
)

DAY_MS = 86_400_000
VALUE_BUCKET_CENTS = 10_000  # 100.00: round figures such as 100, 1000 or 5000 align
NO_VALUE_BUCKET = -1

Row = Mapping[str, Any]
KeyPart = Callable[[Row], tuple[Any, ...]]


class Dimension(Protocol):
    """One part of a rollup's group key."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The lead columns its key part reads."""
        ...

    def key_part(self) -> KeyPart: ...

    def answers(self, predicate: Predicate) -> bool: ...

    def conditions(
        self, table: sa.Table, predicates: list[Predicate]
    ) -> list[ColumnElement[bool]]:
        """Conditions on the rollup table's group columns that select exactly the groups
        whose leads meet `predicates` (all answered by this dimension)."""
        ...


@dataclass(frozen=True)
class Equal:
    """Lead columns kept as they are in the key (status and source)."""

    fields: tuple[str, ...]

    def __init__(self, *fields: str) -> None:
        object.__setattr__(self, "fields", fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(FIELDS_BY_NAME[name].column for name in self.fields)

    def key_part(self) -> KeyPart:
        getter = itemgetter(*self.columns)
        if len(self.columns) == 1:
            return lambda row: (getter(row),)
        return getter  # already a tuple, built at C speed

    def answers(self, predicate: Predicate) -> bool:
        return isinstance(predicate, TextIn) and predicate.field.name in self.fields

    def conditions(
        self, table: sa.Table, predicates: list[Predicate]
    ) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        for p in predicates:
            assert isinstance(p, TextIn)
            out.append(table.c[p.field.column].in_(p.values))
        return out


@dataclass(frozen=True)
class Buckets:
    """A whole number cut into buckets `width` wide, in the rollup column `group_column`;
    a lead without a value falls in `null_bucket` (None: the field is never null)."""

    field: str
    group_column: str
    width: int
    null_bucket: int | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (FIELDS_BY_NAME[self.field].column,)

    @property
    def lead_column(self) -> str:
        return FIELDS_BY_NAME[self.field].column

    def key_part(self) -> KeyPart:
        column, width, none = self.lead_column, self.width, self.null_bucket

        def part(row: Row) -> tuple[Any, ...]:
            v = row[column]
            return (none if v is None else v // width,)

        return part

    def answers(self, predicate: Predicate) -> bool:
        return isinstance(predicate, IntRanges | Exists) and predicate.field.name == self.field

    def conditions(
        self, table: sa.Table, predicates: list[Predicate]
    ) -> list[ColumnElement[bool]]:
        # Ranges need their partial edge buckets counted on the leads table, which only the
        # count planner can do (store/counts.py); this answers the one case that needs no
        # edges: "no value" (`[exists]=false` alone).
        assert all(isinstance(p, Exists) and not p.present for p in predicates)
        return [table.c[self.group_column] == self.null_bucket]


@dataclass(frozen=True)
class Presence:
    """Which of some nullable fields are set, as a bitmask (bit i = fields[i])."""

    fields: tuple[str, ...]
    group_column: str = "mask"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(FIELDS_BY_NAME[name].column for name in self.fields)

    def bit(self, name: str) -> int:
        return 1 << self.fields.index(name)

    def key_part(self) -> KeyPart:
        bits = tuple((1 << i, column) for i, column in enumerate(self.columns))

        def part(row: Row) -> tuple[Any, ...]:
            mask = 0
            for bit, column in bits:
                if row[column] is not None:
                    mask |= bit
            return (mask,)

        return part

    def answers(self, predicate: Predicate) -> bool:
        return isinstance(predicate, Exists) and predicate.field.name in self.fields

    def conditions(
        self, table: sa.Table, predicates: list[Predicate]
    ) -> list[ColumnElement[bool]]:
        return [self.test(table.c[self.group_column], p) for p in predicates]

    def test(self, mask: ColumnElement[Any], predicate: Predicate) -> ColumnElement[bool]:
        """`predicate` (an answered `[exists]`) as a test of the bits of `mask`: a rollup
        table's group column, or the leads' own click_mask (store/sql.py)."""
        assert isinstance(predicate, Exists)
        bit = self.bit(predicate.field.name)
        return mask.op("&")(bit) == (bit if predicate.present else 0)


@dataclass(frozen=True)
class Category:
    """A text field with few values per organization, as (present, value): `present` keeps
    a lead without the field apart from one whose value is "" (None cannot be part of a
    primary key)."""

    field: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (FIELDS_BY_NAME[self.field].column,)

    def key_part(self) -> KeyPart:
        column = FIELDS_BY_NAME[self.field].column

        def part(row: Row) -> tuple[Any, ...]:
            v = row[column]
            return (v is not None, v or "")

        return part

    def answers(self, predicate: Predicate) -> bool:
        return isinstance(predicate, TextIn | Exists) and predicate.field.name == self.field

    def conditions(
        self, table: sa.Table, predicates: list[Predicate]
    ) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        for p in predicates:
            if isinstance(p, TextIn):
                out += [table.c.present.is_(True), table.c.value.in_(p.values)]
            else:
                assert isinstance(p, Exists)
                out.append(table.c.present.is_(p.present))
        return out


@dataclass(frozen=True)
class Rollup:
    """A rollup table and its group key, dimension by dimension in the order of the table's
    group columns (its primary key after org_id)."""

    table: sa.Table
    dimensions: tuple[Dimension, ...]
    key: KeyPart = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _joined_key(self.dimensions))

    @property
    def columns(self) -> tuple[str, ...]:
        """The lead columns this rollup reads."""
        return tuple(dict.fromkeys(c for d in self.dimensions for c in d.columns))

    @property
    def group_columns(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns if c.name != "org_id"]

    def __hash__(self) -> int:
        return hash(self.table.name)


def _joined_key(dimensions: tuple[Dimension, ...]) -> KeyPart:
    parts = [d.key_part() for d in dimensions]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda row: first(row) + second(row)
    return lambda row: tuple(v for part in parts for v in part(row))


_STATUS_SOURCE = Equal("status", "source")
# The click IDs' bits: the click rollup's key, and the leads' click_mask (store/schema.py).
CLICK_PRESENCE = Presence(CLICK_ID_NAMES)

lead_counts_rollup = Rollup(lead_counts, (_STATUS_SOURCE,))

# In the order the count planner tries them: the smallest tables first.
ROLLUPS: tuple[Rollup, ...] = (
    lead_counts_rollup,
    Rollup(lead_counts_by_clicks, (CLICK_PRESENCE,)),
    *(Rollup(category_rollups[name], (Category(name), _STATUS_SOURCE)) for name in CATEGORY_NAMES),
    Rollup(lead_counts_by_day, (Buckets("createdAt", "day", DAY_MS), _STATUS_SOURCE)),
    # A poller's `updated_after`: a PATCH moves its lead from its old day to today's.
    Rollup(lead_counts_by_updated_day, (Buckets("updatedAt", "day", DAY_MS),)),
    Rollup(
        lead_counts_by_value,
        (Buckets("value", "bucket", VALUE_BUCKET_CENTS, NO_VALUE_BUCKET), _STATUS_SOURCE),
    ),
)

# The columns a writer must supply, for the rows it removes and adds.
ROLLUP_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(c for r in ROLLUPS for c in r.columns))


# An execution option of a connection: while it holds a RollupSink, `RollupChanges.flush`
# hands its moves to it instead of writing them (a group of writers sharing one
# transaction writes its members' moves once, before its commit: store/write_groups.py).
ROLLUP_SINK_OPTION = "leads_rollup_sink"


class RollupChanges:
    """Rollup moves gathered over the writes of one transaction, written by `flush`.

    The unit of work gathers a whole write's moves (a bulk import's whole run) and writes
    them once before it commits: far fewer upserts than one set per chunk, and as exact,
    since nothing is committed until then."""

    def __init__(self) -> None:
        self._deltas: list[Counter[tuple[Any, ...]]] = [Counter() for _ in ROLLUPS]

    def merge(self, other: RollupChanges) -> None:
        """Add `other`'s moves to these."""
        for mine, theirs in zip(self._deltas, other._deltas, strict=True):
            mine.update(theirs)

    def add(self, *, removed: Iterable[Row] = (), added: Iterable[Row] = ()) -> None:
        removed, added = list(removed), list(added)
        for rollup, delta in zip(ROLLUPS, self._deltas, strict=True):
            if added:
                delta.update(map(rollup.key, added))
            if removed:
                delta.subtract(map(rollup.key, removed))

    def flush(self, conn: Connection, *, org_id: int) -> None:
        sink: RollupSink | None = conn.get_execution_options().get(ROLLUP_SINK_OPTION)
        if sink is not None:
            sink.setdefault(org_id, RollupChanges()).merge(self)
            for delta in self._deltas:
                delta.clear()
            return
        moves = []
        for rollup, delta in zip(ROLLUPS, self._deltas, strict=True):
            # Sorted keys: concurrent writers lock rollup rows in one order (no deadlock).
            changed = sorted((key, n) for key, n in delta.items() if n != 0)
            if changed:
                moves.append((rollup, [(org_id, *key, n) for key, n in changed]))
            delta.clear()
        _upsert(conn, moves)


# Rollup moves by organization, waiting to be written (see ROLLUP_SINK_OPTION).
RollupSink = dict[int, RollupChanges]


def _upsert(conn: Connection, moves: list[tuple[Rollup, list[tuple[Any, ...]]]]) -> None:
    """Each rollup's rows (org_id, *key, n) added to its table, in ROLLUPS order.

    Sent to the driver as plain tuples: SQLAlchemy's per-row parameter handling cost more
    than the upserts themselves on large imports. On PostgreSQL in one pipeline: every
    table's upserts go out at once and their answers are awaited once, so a create pays one
    round trip for its nine rollups instead of nine, while it holds the organization's lock
    (measured: a third of a create's time was these round trips)."""
    dialect = conn.dialect.name
    if dialect != "postgresql" or len(moves) < 2:
        for rollup, rows in moves:
            conn.exec_driver_sql(_upsert_sql(rollup, dialect), rows)
        return
    with (
        psycopg_connection(conn, what="rollup upserts") as raw,
        raw.pipeline(),
        raw.cursor() as cursor,
    ):
        for rollup, rows in moves:
            cursor.executemany(_upsert_sql(rollup, dialect), rows)


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
    """Recompute every rollup of `org_id` from the leads table (a repair tool)."""
    from leads_api.store.schema import leads

    for rollup in ROLLUPS:
        conn.execute(rollup.table.delete().where(rollup.table.c.org_id == org_id))
    result = conn.execute(
        sa.select(*(leads.c[c] for c in ROLLUP_COLUMNS)).where(leads.c.org_id == org_id)
    )
    changes = RollupChanges()
    for rows in result.mappings().partitions(10_000):
        changes.add(added=[dict(row) for row in rows])
    changes.flush(conn, org_id=org_id)
