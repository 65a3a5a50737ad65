"""Whether a SQL statement names one organization for every organization-scoped table it
touches: the rule a sharded PostgreSQL (Citus, distributed by `org_id`) needs of every
statement to route it to one shard (ARCHITECTURE.md, "Past one machine").

A statement is read with sqlglot, with its parameters inlined as literals. Each table it
reads or writes must be pinned to one organization within its own query (a SELECT, UPDATE,
DELETE, or the SELECT of a subquery):

- by an equality of its scope column with a value (`leads.org_id = 7`), in the WHERE or a
  JOIN's ON, at the top level of its ANDs (an OR does not pin); an IN of one value counts;
- or by an equality with a column pinned so (`webhooks.org_id = webhook_events.org_id`
  where `webhook_events.org_id = 7`), also from an enclosing query (a correlated subquery);
- an INSERT pins its rows by the value it writes into the scope column (a literal per row,
  or a column of its SELECT that is pinned); `inserted` collects those values, so that the
  caller can check one execution wrote one organization's rows.

The scope column of each table comes from the schema (`scope_columns`): `organizations.id`,
the `org_id` of every table that has one, and for the tables that belong to a webhook
subscription but carry no `org_id` (its outbox and its delivery log) the subscription's id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import sqlglot
from sqlglot import exp

from leads_api.store.schema import (
    SEARCH_ROWS,
    SQLITE_SEARCH_INDEX_TABLES,
    metadata,
    organizations,
    webhooks,
)

# Tables the rule does not apply to, each with its reason: nothing in them belongs to one
# organization, or they exist on SQLite only (one machine: nothing to shard), like a search
# index of SQLite's own would.
NOT_SCOPED = {
    "alembic_version": "the migration version; one row for the whole database",
    **dict.fromkeys(
        SQLITE_SEARCH_INDEX_TABLES,
        "SQLite's FTS5 search index (migration 0010): rowids of `leads` rows, read only as a "
        "subquery of a statement that scopes `leads` by org_id; SQLite only",
    ),
}

_QUERY = (exp.Select, exp.Update, exp.Delete, exp.Insert)
_VALUE = (exp.Literal, exp.Placeholder, exp.Parameter, exp.Boolean)


# Tables no Table declares, with the column that names their organization: `search_rows`
# (migration 0014), keyed differently on each database.
UNDECLARED = {SEARCH_ROWS: "org_id"}


@cache
def scope_columns() -> dict[str, str]:
    """Each declared table -> the column whose value names one organization."""
    found: dict[str, str] = dict(UNDECLARED)
    for table in metadata.sorted_tables:
        if table.name in NOT_SCOPED:
            continue
        if table is organizations:
            found[table.name] = "id"
        elif "org_id" in table.c:
            found[table.name] = "org_id"
        else:
            owners = [fk.parent.name for fk in table.foreign_keys if fk.column.table is webhooks]
            if len(owners) != 1:
                raise AssertionError(
                    f"table {table.name} has no org_id and belongs to no subscription: say "
                    "in tests/sql_scope.py which column names its organization, or list it "
                    "in NOT_SCOPED with the reason"
                )
            found[table.name] = owners[0]
    return found


@cache
def _owner_keys() -> dict[tuple[str, str], tuple[str, str]]:
    """(table, scope column) -> (owning table, its column), for the tables that belong to a
    subscription: `webhook_outbox.webhook_id = webhooks.id` pins the outbox's rows to the
    organization the subscription's row is pinned to."""
    return {
        (fk.parent.table.name, fk.parent.name): (fk.column.table.name, fk.column.name)
        for table in metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table is webhooks and scope_columns().get(table.name) == fk.parent.name
    }


def _catalog(table: exp.Table) -> bool:
    """A database's own catalog (what the migration check reads), not the service's data."""
    return table.db in ("pg_catalog", "information_schema") or table.name.startswith(
        ("pg_", "sqlite_")  # names both databases keep for their own tables
    )


@cache
def _table_columns(table: str) -> frozenset[str]:
    declared = metadata.tables.get(table)
    return frozenset() if declared is None else frozenset(c.name for c in declared.columns)


@dataclass
class Scope:
    """What one statement does about organizations."""

    unscoped: set[str] = field(default_factory=set)  # tables it touches unpinned
    inserted: dict[str, set[str]] = field(default_factory=dict)  # table -> scope values written
    tables: set[str] = field(default_factory=set)  # the real tables it touches
    unknown: set[str] = field(default_factory=set)  # tables the schema does not declare


def scope_of(statement: str, dialect: str) -> Scope:
    """How `statement` (parameters inlined) scopes the tables it touches."""
    tree = sqlglot.parse_one(statement, read=dialect)
    result = Scope()
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    sources: dict[int, dict[str, str]] = {}  # id(query) -> its own alias -> table
    visible: dict[int, dict[str, str]] = {}  # id(query) -> every alias it may name
    pinned: dict[int, set[tuple[str, str]]] = {}  # id(query) -> (alias, column) pinned
    inserts: list[exp.Insert] = []
    for query in tree.find_all(*_QUERY, bfs=True):  # enclosing queries first
        outer = _owner(query)
        inherit = outer is not None and not isinstance(outer, exp.Insert)
        own = {
            t.alias_or_name: t.name
            for t in query.find_all(exp.Table)
            if _owner(t) is query and _is_source(t) and t.name not in ctes
        }
        sources[id(query)] = own
        visible[id(query)] = {**(visible[id(outer)] if inherit and outer else {}), **own}
        outer_pins = pinned[id(outer)] if inherit and outer is not None else set()
        if isinstance(query, exp.Insert):
            inserts.append(query)
            pinned[id(query)] = set()
            continue
        pinned[id(query)] = _pins(query, own, visible[id(query)], outer_pins)
        for alias, table in own.items():
            _note(result, table)
            column = scope_columns().get(table)
            if column is not None and (alias, column) not in pinned[id(query)]:
                result.unscoped.add(table)
    for insert in inserts:
        _check_insert(insert, result, sources, visible, pinned)
    return result


def _note(result: Scope, table: str) -> None:
    result.tables.add(table)
    if table not in scope_columns() and table not in NOT_SCOPED:
        result.unknown.add(table)


def _is_source(table: exp.Table) -> bool:
    """A table read or written, not an index hint (SQLite's INDEXED BY) or a lock's
    `FOR UPDATE OF` naming a source again."""
    return (
        bool(table.name)
        and table.arg_key != "indexed"
        and not table.find_ancestor(exp.Lock)
        and not _catalog(table)
    )


def _owner(node: exp.Expression) -> exp.Expression | None:
    """The nearest query enclosing `node` (not `node` itself)."""
    parent = node.parent
    while parent is not None and not isinstance(parent, _QUERY):
        parent = parent.parent
    return parent


def _conjuncts(node: exp.Expression | None) -> list[exp.Expression]:
    if node is None:
        return []
    if isinstance(node, (exp.Where, exp.Paren)):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _conditions(query: exp.Expression) -> list[exp.Expression]:
    terms = _conjuncts(query.args.get("where"))
    for join in query.args.get("joins") or []:
        terms += _conjuncts(join.args.get("on"))
    return terms


def _is_value(node: exp.Expression) -> bool:
    while isinstance(node, (exp.Cast, exp.Neg, exp.Paren)):
        node = node.this
    return isinstance(node, _VALUE)


def _resolve(
    column: exp.Column, own: dict[str, str], visible: dict[str, str]
) -> tuple[str, str] | None:
    if column.table:
        return (column.table, column.name) if column.table in visible else None
    having = [alias for alias, table in own.items() if column.name in _table_columns(table)]
    if len(having) == 1:
        return having[0], column.name
    if len(own) == 1:
        return next(iter(own)), column.name
    return None


def _equalities(term: exp.Expression) -> list[tuple[exp.Expression, exp.Expression]]:
    if isinstance(term, exp.EQ):
        return [(term.this, term.expression), (term.expression, term.this)]
    if isinstance(term, exp.In) and not term.args.get("query") and len(term.expressions) == 1:
        return [(term.this, term.expressions[0])]
    return []


def _pins(
    query: exp.Expression,
    own: dict[str, str],
    visible: dict[str, str],
    outer: set[tuple[str, str]],
) -> set[tuple[str, str]]:
    pins = set(outer)
    pairs = [pair for term in _conditions(query) for pair in _equalities(term)]
    changed = True
    while changed:
        changed = False
        for left, right in pairs:
            if not isinstance(left, exp.Column):
                continue
            key = _resolve(left, own, visible)
            if key is None or key in pins:
                continue
            if _is_value(right) or (
                isinstance(right, exp.Column) and _pinned_through(key, right, own, visible, pins)
            ):
                pins.add(key)
                changed = True
    return pins


def _pinned_through(
    key: tuple[str, str],
    other: exp.Column,
    own: dict[str, str],
    visible: dict[str, str],
    pins: set[tuple[str, str]],
) -> bool:
    """Whether `key = other` pins `key`: `other` is pinned, or `key` is the scope column
    that names its row's owner and `other` that owner's row, itself pinned."""
    resolved = _resolve(other, own, visible)
    if resolved is None:
        return False
    if resolved in pins:
        return True
    owner = _owner_keys().get((visible.get(key[0], ""), key[1]))
    if owner is None or (visible.get(resolved[0]), resolved[1]) != owner:
        return False
    return (resolved[0], scope_columns()[owner[0]]) in pins


def _check_insert(
    insert: exp.Insert,
    result: Scope,
    sources: dict[int, dict[str, str]],
    visible: dict[int, dict[str, str]],
    pinned: dict[int, set[tuple[str, str]]],
) -> None:
    target = insert.this
    columns = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else None
    table = target.this.name if isinstance(target, exp.Schema) else target.name
    _note(result, table)
    column = scope_columns().get(table)
    if column is None:
        return
    if columns is None or column not in columns:
        result.unscoped.add(table)
        return
    index = columns.index(column)
    values = result.inserted.setdefault(table, set())
    body = insert.expression
    if isinstance(body, exp.Values):
        for row in body.expressions:
            value = row.expressions[index]
            if _is_value(value):
                values.add(value.sql())
            else:
                result.unscoped.add(table)
        return
    if isinstance(body, exp.Select):
        value = body.expressions[index]
        value = value.this if isinstance(value, exp.Alias) else value
        if _is_value(value):
            values.add(value.sql())
            return
        if isinstance(value, exp.Column):
            # A column of a row of one organization: of a source its SELECT pins.
            key = _resolve(value, sources[id(body)], visible[id(body)])
            table_of = visible[id(body)].get(key[0]) if key is not None else None
            owner_column = scope_columns().get(table_of or "")
            if key is not None and (key[0], owner_column) in pinned[id(body)]:
                values.add(f"the organization its SELECT pins {key[0]} to")
                return
    result.unscoped.add(table)
