"""The one write path: every change of an organization's leads goes through a `LeadWrites`.

Callers say *what* changed (new rows, rewritten rows, an update of some matched leads);
the unit of work makes the derived state follow, in the write's own transaction:

1. before any lead row is touched, it takes the organization's next change position
   (`tenants.take_change_position`: the data version moves, and the organization's row
   stays locked until commit, so writers of one organization follow each other), unless
   its transaction is a PostgreSQL writer group's that took one for all its members when
   it opened (`tenants.hold_position`);
2. every lead it writes is stamped with that position (`change_seq`) and its ordinal
   among the rows of the position, in the order they are written (`change_ord`, from 0,
   counted across a group's members): the change feed's order, which so follows the order
   the rows went into the table;
   and it gets its derived search and ordering columns (SQLite's FTS5 search index
   follows `search_text` by triggers, migration 0010) and its rendered object
   (`lead_json`, what the API answers for it);
3. at the end (`flush`, done by `lead_writes` on leaving the block) every rollup moves by
   the rows removed and added, and the write listeners (the webhook outbox) are told which
   leads were created or changed, each with its object after the write; in a writer group
   both wait for the group's end, so they are written once for all its writers;
4. in a writer group, the new rows of a writer that only appends (APPEND_ONLY_OPTION: a
   create that reads nothing) wait too: the group writes them, with those of the
   append-only writers after it, in one statement (see Deferred).

Nothing outside this module moves rollups, versions or positions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection

from leads_api.fields import LEAD_FIELDS
from leads_api.lead import lead_json, with_derived_columns
from leads_api.store.driver import psycopg_connection
from leads_api.store.rollups import ROLLUP_COLUMNS, RollupChanges
from leads_api.store.schema import (
    CHANGE_ORD_COLUMN,
    CHANGE_SEQ_COLUMN,
    LEAD_JSON_COLUMN,
    leads,
)
from leads_api.store.tenants import held_position, take_change_position

Row = Mapping[str, Any]

# What a writer writes: every column but those the database computes (click_mask).
_LEAD_COLUMNS = tuple(c.name for c in leads.columns if c.computed is None)
_INSERT = f"INSERT INTO {leads.name} ({', '.join(_LEAD_COLUMNS)}) VALUES ({{markers}})"
_row_values = itemgetter(*_LEAD_COLUMNS)  # a row's values in column order, at C speed
# Everything a rewrite may set: the lead's columns but its id and organization.
_SET_COLUMNS = tuple(c for c in _LEAD_COLUMNS if c not in ("id", "org_id"))
# What an update() reads back of the rows it wrote: every field (to render the objects),
# what the rollups group by, and the place it stamped (which its objects are written for).
_KEPT = ("id", *ROLLUP_COLUMNS)  # what it keeps of them after rendering
_RETURNED = tuple(
    leads.c[c]
    for c in dict.fromkeys(
        [*(f.column for f in LEAD_FIELDS), *_KEPT, CHANGE_SEQ_COLUMN, CHANGE_ORD_COLUMN]
    )
)
# An update()'s objects, written after it: each only onto the version of the row it was
# rendered from (the row's change position and ordinal still the ones that update stamped),
# so whichever order objects of one lead are written in, a later write's wins.
_SET_LEAD_JSON = (
    leads.update()
    .where(
        leads.c.org_id == sa.bindparam("_org"),
        leads.c.id == sa.bindparam("_id"),
        leads.c[CHANGE_SEQ_COLUMN] == sa.bindparam("_seq"),
        leads.c[CHANGE_ORD_COLUMN] == sa.bindparam("_ord"),
    )
    .values({LEAD_JSON_COLUMN: sa.bindparam("_json")})
)
# From this many rows on, PostgreSQL gets them by COPY: a few times quicker than INSERTs.
COPY_FROM_ROWS = 100
# An update() stamps its rows' ordinals with one CASE over their ids per this many rows
# (SQLite tries a CASE's branches in turn, so a long one would cost rows x branches).
UPDATE_CHUNK_ROWS = 200
# Outside a writer group, events go to the listeners once this many are waiting.
EVENT_CHUNK = 10_000

_COPY_LEADS = sql.SQL("COPY {} ({}) FROM STDIN").format(
    sql.Identifier(leads.name), sql.SQL(", ").join(map(sql.Identifier, _LEAD_COLUMNS))
)


class PreparedRow(dict[str, Any]):
    """A new lead's row with every column, its derived columns and its rendered object, but
    not yet its place (change position, ordinal) nor its organization: what `insert` would
    build from a plain row, built beforehand (prepared_row)."""


def prepared_row(row: Row) -> PreparedRow:
    """The part of a new row's completion that does not depend on where it is written, for
    a caller to do in a thread of its own: an import prepares the next chunk while its
    writing thread inserts this one (the rendering was a fifth of that thread's time)."""
    full = PreparedRow(dict.fromkeys(_LEAD_COLUMNS))
    full.update(with_derived_columns(row))
    full[LEAD_JSON_COLUMN] = lead_json(full)
    return full


@dataclass(frozen=True)
class LeadEvent:
    """One lead written by a unit of work."""

    lead_id: str
    created: bool  # a new lead (POST, import); else an update (PATCH, import)
    old_status: str | None  # None when created
    new_status: str
    lead: str  # the lead object after this write, as JSON text (lead.lead_json)


# Called inside the write's transaction, after its lead rows are written and before commit,
# once per unit of work with its events in the order the leads were written; in a writer
# group (store/write_groups.py), once per organization for all the group's writers that
# succeeded, at the group's end (see Deferred).
WriteListener = Callable[[Connection, int, Sequence[LeadEvent]], None]
_LISTENERS: list[WriteListener] = []
# A connection option: a Deferred that takes what the units of work on the connection leave
# for later, instead of their writing it at their flush (set by a writer group).
DEFERRED_OPTION = "leads_deferred"
# A connection option, set by a writer group beside DEFERRED_OPTION for a writer that only
# appends: the new rows of its units of work go to that Deferred too, unwritten.
APPEND_ONLY_OPTION = "leads_append_only"


@dataclass
class Deferred:
    """What a unit of work writes last: the stored objects of the leads its update()s wrote
    (SQL computed some of their values, so they go in by a statement of their own), and its
    events for the write listeners. A unit of work writes its own at its flush; in a writer
    group each writer's join the group's when it ends without an error, and the group
    writes them all at once before its commit: a statement or two for the group, where
    each writer would have spent its own while the others waited for their turn.

    In a group, the new rows of append-only writers (APPEND_ONLY_OPTION) join it too,
    complete with their place: the group writes them all in one statement (`write_rows`)
    before the next writer that runs SQL of its own takes its savepoint (it may read them:
    a PATCH by email, a monthly count), and at its end. An append-only writer so holds the
    group's connection for no round trip at all: one a writer was measured to cost 0.9-1.0
    ms of the turn, while the others waited."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # new leads, in written order
    objects: list[dict[str, Any]] = field(default_factory=list)  # _SET_LEAD_JSON's, in order
    events: dict[int, list[LeadEvent]] = field(default_factory=dict)  # by organization

    def merge(self, other: Deferred) -> None:
        self.rows += other.rows
        self.objects += other.objects
        for org_id, events in other.events.items():
            self.events.setdefault(org_id, []).extend(events)

    def write_rows(self, conn: Connection) -> None:
        """Insert the new rows held so far (on `conn`, in its open transaction)."""
        rows, self.rows = self.rows, []
        if rows:
            _insert_rows(conn, rows, copy_from=2)

    def write(self, conn: Connection) -> None:
        """On `conn`, in its open transaction; then empty."""
        self.write_rows(conn)
        if self.objects:
            conn.execute(_SET_LEAD_JSON, self.objects)
        for org_id in sorted(self.events):
            for listener in _LISTENERS:
                listener(conn, org_id, self.events[org_id])
        self.objects, self.events = [], {}


def add_write_listener(listener: WriteListener) -> None:
    """Tell `listener` about every unit of work from now on (in every transaction)."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


class LeadWrites:
    """The changes of one organization's leads within one transaction."""

    def __init__(self, conn: Connection, *, org_id: int) -> None:
        self.conn = conn
        self.org_id = org_id
        held = held_position(conn, org_id=org_id)  # a group's, shared by its members
        self._position: int | None = None if held is None else held.position
        self._ordinals = itertools.count() if held is None else held.ordinals  # change_ord
        self._wrote = False
        self._rollups = RollupChanges()
        options = conn.get_execution_options()  # rows are held only where a group takes them
        self._append_only = (
            bool(options.get(APPEND_ONLY_OPTION)) and options.get(DEFERRED_OPTION) is not None
        )
        self._rows: list[dict[str, Any]] = []  # new rows left to the group (append-only)
        self._objects: list[dict[str, Any]] = []  # lead_json of the rows update() wrote
        self._events: list[LeadEvent] = []

    @property
    def position(self) -> int:
        """This write's change position, taken on first use (see the module's doc)."""
        if self._position is None:
            self._position = take_change_position(self.conn, org_id=self.org_id)
        return self._position

    def lock(self) -> None:
        """Take the position now, before locking any lead row: every writer of the
        organization takes its row first and lead rows after, so none can deadlock."""
        _ = self.position

    def insert(self, rows: Iterable[Row]) -> int:
        """Insert new leads; every row gets every column (absent ones as NULL). Rows may
        come prepared (prepared_row): only their place and organization are added."""
        batch = [self._complete(row) for row in rows]
        if not batch:
            return 0
        if self._append_only:
            self._rows += batch  # the group writes them (Deferred.write_rows)
        else:
            _insert_rows(self.conn, batch)
        self._rollups.add(added=batch)
        if _LISTENERS:
            self._events += [
                LeadEvent(r["id"], True, None, r["status"], r[LEAD_JSON_COLUMN]) for r in batch
            ]
            self._tell_early()
        return len(batch)

    def replace(self, changes: Sequence[tuple[Row, Row]]) -> int:
        """Rewrite stored leads in place: each change is (stored row, new row)."""
        if not changes:
            return 0
        position = self.position
        statement = leads.update().where(
            leads.c.org_id == self.org_id, leads.c.id == sa.bindparam("_id")
        )
        params = []
        for _, new in changes:
            full = with_derived_columns(new)
            full[LEAD_JSON_COLUMN] = lead_json(full)
            values = {c: full.get(c) for c in _SET_COLUMNS}
            values[CHANGE_SEQ_COLUMN] = position
            values[CHANGE_ORD_COLUMN] = self._next_ordinal()
            params.append({"_id": new["id"], **values})
        self.conn.execute(statement, params)
        self._rollups.add(removed=[old for old, _ in changes], added=[new for _, new in changes])
        if _LISTENERS:
            self._events += [
                LeadEvent(new["id"], False, old["status"], new["status"], p[LEAD_JSON_COLUMN])
                for (old, new), p in zip(changes, params, strict=True)
            ]
            self._tell_early()
        return len(changes)

    def update(self, matched: Sequence[Row], values: Mapping[str, Any]) -> list[Row]:
        """Apply `values` (column -> value or SQL expression over the row) to the `matched`
        leads (their ids and ROLLUP_COLUMNS as stored, locked by the caller after `lock()`).
        The rollups and the rendered objects follow what the database wrote, read back with
        RETURNING (the objects are written at the flush, by a statement of their own: SQL
        cannot render them; see Deferred)."""
        if not matched:
            return []
        ids = [row["id"] for row in matched]
        written: dict[str, Row] = {}
        objects: dict[str, str] = {}
        for start in range(0, len(ids), UPDATE_CHUNK_ROWS):
            chunk = ids[start : start + UPDATE_CHUNK_ROWS]
            ordinals = sa.case({i: self._next_ordinal() for i in chunk}, value=leads.c.id)
            stamp = {CHANGE_SEQ_COLUMN: self.position, CHANGE_ORD_COLUMN: ordinals}
            for row in self.conn.execute(
                leads.update()
                .where(leads.c.org_id == self.org_id, leads.c.id.in_(chunk))
                .values({**values, **stamp})
                .returning(*_RETURNED)
            ).mappings():
                lead_id = row["id"]
                objects[lead_id] = lead_json(row)
                written[lead_id] = {c: row[c] for c in _KEPT}
                self._objects.append({
                    "_org": self.org_id, "_id": lead_id, "_json": objects[lead_id],
                    "_seq": row[CHANGE_SEQ_COLUMN], "_ord": row[CHANGE_ORD_COLUMN],
                })
            if len(self._objects) >= UPDATE_CHUNK_ROWS:  # many: now, not all kept till flush
                self.conn.execute(_SET_LEAD_JSON, self._objects)
                self._objects = []
        after: list[Row] = [written[i] for i in ids]
        self._rollups.add(removed=matched, added=after)
        if _LISTENERS:
            self._events += [
                LeadEvent(old["id"], False, old["status"], new["status"], objects[old["id"]])
                for old, new in zip(matched, after, strict=True)
            ]
            self._tell_early()
        return after

    def flush(self) -> None:
        """Move the rollups, write the objects update() left and tell the listeners (or
        hand both to a writer group's Deferred); called once, before commit."""
        if not self._wrote:
            return  # nothing was written
        self._rollups.flush(self.conn, org_id=self.org_id)
        deferred = Deferred(
            self._rows, self._objects, {self.org_id: self._events} if self._events else {}
        )
        self._rows, self._objects, self._events = [], [], []
        sink: Deferred | None = self.conn.get_execution_options().get(DEFERRED_OPTION)
        if sink is not None:
            sink.merge(deferred)
        else:
            deferred.write(self.conn)

    def _tell_early(self) -> None:
        """Outside a writer group, hand the listeners a long run of events before the
        flush: each carries its lead's object (about 1 KB), and an import's hundreds of
        thousands would all be held until the end. Within the transaction it is all one;
        a group's writers are API requests, which write a few leads each."""
        if len(self._events) < EVENT_CHUNK:
            return
        if self.conn.get_execution_options().get(DEFERRED_OPTION) is None:
            events, self._events = self._events, []
            Deferred(events={self.org_id: events}).write(self.conn)

    def _next_ordinal(self) -> int:
        self._wrote = True
        return next(self._ordinals)

    def _complete(self, row: Row) -> dict[str, Any]:
        full = row if isinstance(row, PreparedRow) else prepared_row(row)
        full[CHANGE_SEQ_COLUMN] = self.position
        full[CHANGE_ORD_COLUMN] = self._next_ordinal()
        full["org_id"] = self.org_id  # last: a row can never name another organization
        return full


@contextmanager
def lead_writes(conn: Connection, *, org_id: int) -> Iterator[LeadWrites]:
    """A unit of work for `org_id`'s leads on `conn`'s open transaction, flushed when the
    block ends normally (an error leaves it unflushed; the transaction rolls back)."""
    writes = LeadWrites(conn, org_id=org_id)
    yield writes
    writes.flush()


def insert_leads(conn: Connection, *, org_id: int, rows: Iterable[Row]) -> int:
    """Insert new leads for `org_id` as one unit of work (seeding, tests, the demo)."""
    with lead_writes(conn, org_id=org_id) as writes:
        return writes.insert(rows)


def _insert_rows(
    conn: Connection, batch: Sequence[Row], *, copy_from: int = COPY_FROM_ROWS
) -> None:
    """Insert complete rows: on PostgreSQL by COPY from `copy_from` rows on, on SQLite by
    statements of many rows, else one INSERT a row."""
    if len(batch) >= copy_from and conn.dialect.name == "postgresql":
        _copy(conn, batch)
    elif len(batch) > 1 and conn.dialect.name == "sqlite":
        _insert_sqlite(conn, batch)
    else:
        # Plain tuples to the driver: SQLAlchemy's per-row parameter handling for ~50
        # columns cost as much as SQLite's own insert work.
        marker = "%s" if conn.dialect.name == "postgresql" else "?"
        conn.exec_driver_sql(
            _INSERT.format(markers=", ".join([marker] * len(_LEAD_COLUMNS))),
            [_row_values(row) for row in batch],
        )


# SQLite's FTS5 search index (kept by a trigger, migration 0010) flushes its pending terms
# at the end of every statement: one row per statement (executemany) made the index cost
# 8 times what it costs in statements of many rows (100,000 leads: 10.0 s of CPU against
# 1.6 s). 256 rows of every column stay under SQLite's 32,766 parameters.
SQLITE_ROWS_PER_INSERT = 256
_SQLITE_INSERT = f"INSERT INTO {leads.name} ({', '.join(_LEAD_COLUMNS)}) VALUES "
_SQLITE_ROW = "(" + ", ".join(["?"] * len(_LEAD_COLUMNS)) + ")"


def _insert_sqlite(conn: Connection, batch: Sequence[Row]) -> None:
    for start in range(0, len(batch), SQLITE_ROWS_PER_INSERT):
        chunk = batch[start : start + SQLITE_ROWS_PER_INSERT]
        conn.exec_driver_sql(
            _SQLITE_INSERT + ", ".join([_SQLITE_ROW] * len(chunk)),
            tuple(value for row in chunk for value in _row_values(row)),
        )


def _copy(conn: Connection, batch: Sequence[Row]) -> None:
    """COPY on the connection's own psycopg connection, inside its open transaction."""
    with (
        psycopg_connection(conn, what="COPY leads") as raw,
        raw.cursor() as cursor,
        cursor.copy(_COPY_LEADS) as copy,
    ):
        for row in batch:
            copy.write_row(_row_values(row))
