"""Reading leads: one page with its exact total, or one lead. Scoped to an organization."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from leads_api.fields import LEAD_FIELDS, Field
from leads_api.query.model import DEFAULT_SORT, Keyset, ListQuery, SortKey
from leads_api.store.counts import (
    ORG_TOTAL_PARAM,
    TotalShape,
    bound_total,
    count_leads,
    kept,
    total_shape,
    totals,
)
from leads_api.store.lead_objects import completed
from leads_api.store.schema import CLICK_MASK_COLUMN, leads
from leads_api.store.sql import (
    Binder,
    bound_predicate,
    click_masks,
    columns_for,
    field_values,
    keyset_clause,
    lead_columns,
    only_click_presence,
    order_by,
    predicate_shape,
    search_matches,
    search_rows_answer,
    selected_values,
    sort_columns,
    sort_values,
    where_clause,
    whole_leads,
    with_search_hint,
)
from leads_api.store.tenants import version_seen

__all__ = ["FoundLead", "Page", "count_leads", "get_lead", "iter_leads", "list_leads"]

# From this offset on, the rows skipped are skipped over an index of ids only, and just the
# page's rows are read in full (a deferred join): OFFSET otherwise reads every skipped row.
# A page filtered on anything but its first sort key takes the same road at any offset: its
# filters are then tested on index entries where the index holds their columns
# (store/schema.py), and PostgreSQL, asked for whole rows under a filter it cannot estimate
# (a click-ID bit), would rather scan the table (measured at a million leads: a rare
# click-ID pair's page 3 took 375 ms that way, 23-34 ms by the index of ids). A filter on
# the first sort key only narrows the walk, which then reads just the page's rows anyway:
# there the join would be pure cost.
DEFERRED_JOIN_OFFSET = 1_000


def _ids_first(query: ListQuery) -> bool:
    """Whether the page's ids are found first, over an index, and only its rows read."""
    if query.offset >= DEFERRED_JOIN_OFFSET:
        return True
    walked = query.sort[0].field
    return any(p.field != walked for p in query.predicates)


@dataclass(frozen=True)
class Page:
    fields: tuple[Field, ...]  # the columns of each row, in lead-object order
    rows: list[Sequence[Any]]  # each the `fields`' columns, or (stored object, id) if `whole`
    total: int
    more: bool = False  # leads follow this page (in the query's order)
    next_after: Keyset | None = None  # where the page after this one starts, if `more`
    # PostgreSQL: the organization's data version as the statement that read the rows saw
    # it, the page's last statement (each statement sees a snapshot of its own there); None
    # when no statement read rows, on SQLite, or when another statement followed.
    version: int | None = None

    @property
    def whole(self) -> bool:
        """Whether each row is the lead's stored object (sql.lead_columns)."""
        return whole_leads(self.fields)


def list_leads(conn: Connection, *, org_id: int, query: ListQuery) -> Page:
    """One page of the query: by offset (`page`), or by keyset after a cursor's lead."""
    fields = query.fields or LEAD_FIELDS
    if query.after is not None:
        return _cursor_page(conn, org_id=org_id, query=query, fields=fields)
    if query.search is not None:
        return _searched_page(conn, org_id=org_id, query=query, fields=fields)
    clicked_only = query.sort == DEFAULT_SORT and only_click_presence(query)
    if query.offset < TOTAL_FIRST_OFFSET and not clicked_only:
        return _page_with_total(conn, org_id=org_id, query=query, fields=fields)
    # The total first: the page's plan depends on it (a few click-ID matches, see
    # _few_clicked), or its offset may be past what OFFSET takes.
    total, size = totals(conn, org_id=org_id, query=query, with_size=clicked_only)
    if query.offset >= total:
        return Page(fields, [], total)  # past the end: no need to ask (nor to overflow OFFSET)
    few = size is not None and _few_clicked(query, total=total, size=size)
    statement, params = _page_and_values(query, org_id=org_id, fields=fields,
                                         dialect=conn.dialect.name,
                                         kind=FEW_CLICKED if few else WALKED)
    rows, version = _read(conn, statement, org_id=org_id, fields=fields, params=params)
    return _page(fields, query, rows, total, more=query.offset + len(rows) < total,
                 version=version)


# Offsets from here on are asked for only after the total says they hold a lead: OFFSET is
# a 64-bit integer in both databases, and `page` x `limit` may pass it (query.MAX_PAGE).
TOTAL_FIRST_OFFSET = 2**31


def _page_with_total(
    conn: Connection, *, org_id: int, query: ListQuery, fields: tuple[Field, ...]
) -> Page:
    """The page and its total in one statement: a statement of its own for the total cost
    a statement's work in this process and, on PostgreSQL, a round trip. Measured on
    PostgreSQL at a million leads, list_leads alone over 1,000 fresh URLs, six runs
    alternated, median CPU a call: Q2 1,802 -> 1,562 us, Q1 1,066 -> 991 us (with the
    no-filter total built once; built each time it bought Q1 nothing). A page with no row
    carries no total: it is then 0 on the first page, else counted (a page past the end)."""
    statement, params = _page_and_values(query, org_id=org_id, fields=fields,
                                         dialect=conn.dialect.name)
    rows, version = _read(conn, statement, org_id=org_id, fields=fields, params=params)
    if not rows:
        empty = 0 if query.offset == 0 else count_leads(conn, org_id=org_id, query=query)
        return Page(fields, [], empty)
    counted = int(rows[0][-1])
    rows = [row[:-1] for row in rows]
    return _page(fields, query, rows, counted, more=query.offset + len(rows) < counted,
                 version=version)


def _page_statement(
    where: ColumnElement[bool],
    *,
    org_id: int | BindParameter[int],
    query: ListQuery,
    fields: tuple[Field, ...],
    ids_first: bool | None = None,  # default _ids_first(query)
    limit: int | BindParameter[int] | None = None,  # default the query's
    offset: int | BindParameter[int] | None = None,
) -> sa.Select[Any]:
    limit = query.limit if limit is None else limit
    offset = query.offset if offset is None else offset
    if not (_ids_first(query) if ids_first is None else ids_first):
        return (
            sa.select(*_selected(fields, query))
            .where(where)
            .order_by(*order_by(query))
            .limit(limit)
            .offset(offset)
        )
    page_ids = (
        sa.select(leads.c.id)
        .where(where)
        .order_by(*order_by(query))
        .limit(limit)
        .offset(offset)
        .subquery("page_ids")
    )
    return _rows_of(page_ids, org_id=org_id, query=query, fields=fields)


def _rows_of(
    page_ids: sa.Subquery,
    *,
    org_id: int | BindParameter[int],
    query: ListQuery,
    fields: tuple[Field, ...],
) -> sa.Select[Any]:
    """The rows of the leads a `page_ids` subquery names (its column `id`), in order."""
    return (
        sa.select(*_selected(fields, query))
        .join(page_ids, page_ids.c.id == leads.c.id)
        .where(leads.c.org_id == org_id)
        .order_by(*order_by(query))
    )


_LIMIT, _OFFSET = "_limit", "_offset"  # a shape's page's parameters, with ORG_TOTAL_PARAM
# How a shape's page is found: with its total, in one statement (list_leads' usual page);
# after its total, walking the query's order; after its total, a few click-ID matches
# sorted (_few_clicked).
WITH_TOTAL, WALKED, FEW_CLICKED = "with total", "walked", "few clicked"


def _page_and_values(
    query: ListQuery,
    *,
    org_id: int,
    fields: tuple[Field, ...],
    dialect: str,
    kind: str = WITH_TOTAL,
) -> tuple[sa.Select[Any], dict[str, Any]]:
    """The page (with its total if `kind` is WITH_TOTAL) and, on PostgreSQL, the data
    version seen, as a statement built once per shape (_shaped_page) and the values to run
    it with."""
    bind = Binder()
    predicates = tuple(predicate_shape(p, bind) for p in query.predicates)
    total = total_shape(query, bind) if kind == WITH_TOTAL else None
    shape = (kind, whole_leads(fields), query.sort, _ids_first(query), dialect, predicates,
             total)
    params = {ORG_TOTAL_PARAM: org_id, _LIMIT: query.limit, _OFFSET: query.offset,
              **bind.values}
    build = _shaped_page if kept(query, bind) else _shaped_page.__wrapped__
    return build(*shape), params


@lru_cache(maxsize=1024)  # shapes are many (fields, operators, value counts, sorts); each small
def _shaped_page(
    kind: str,
    whole: bool,
    sort: tuple[SortKey, ...],
    ids_first: bool,
    dialect: str,
    predicates: tuple[Hashable, ...],
    total: TotalShape | None,
) -> sa.Select[Any]:
    """A page of a query's shape (sql.predicate_shape, counts.total_shape) with its total
    and, on PostgreSQL, the data version seen; its organization, limit, offset and values
    parameters (ORG_TOTAL_PARAM, _LIMIT, _OFFSET, sql.Binder's names). Built for each
    request, the statement and its cache key cost a sixth to a third of a fresh page's
    server CPU (at a million leads, on PostgreSQL: 330 us of Q1's, 330-710 us of Q2-Q4's).
    A page of whole leads reads their stored objects, any selection every field's column
    (sql.lead_columns)."""
    fields = LEAD_FIELDS if whole else LEAD_FIELDS[:1]
    org: BindParameter[int] = sa.bindparam(ORG_TOTAL_PARAM, type_=sa.Integer)
    bound = ListQuery(predicates=tuple(map(bound_predicate, predicates)), sort=sort)
    where = where_clause(bound, org_id=org, dialect=dialect)
    limit = sa.bindparam(_LIMIT, type_=sa.Integer)
    offset = sa.bindparam(_OFFSET, type_=sa.Integer)
    if kind == FEW_CLICKED:
        statement = _few_clicked_page(where, org_id=org, query=bound, fields=fields,
                                      dialect=dialect, limit=limit, offset=offset)
    else:
        statement = _page_statement(where, org_id=org, query=bound, fields=fields,
                                    ids_first=ids_first, limit=limit, offset=offset)
    if total is not None:
        counted = bound_total(total, bound, org_id=org, dialect=dialect)
        statement = statement.add_columns(counted.label("_total"))
    if dialect == "postgresql":
        statement = statement.add_columns(version_seen(org))
    return statement


def _versioned(statement: sa.Select[Any], org_id: int, conn: Connection) -> sa.Select[Any]:
    """On PostgreSQL, the statement with the organization's data version as its last
    column (what _read takes as Page.version)."""
    if conn.dialect.name != "postgresql":
        return statement
    return statement.add_columns(version_seen(org_id))


# What finding and sorting one match by its mask costs, in entries of the created index
# walked: a walk passes an entry in about 40 ns (SQLite, a million leads: 600,000 entries in
# 25 ms); a match's seek and its share of the sort were taken as ten of those.
SORT_COST = 10
CLICKS_INDEX = "ix_leads_org_clicks"  # (org, click_mask, created_at, id)


def _few_clicked(query: ListQuery, *, total: int, size: int) -> bool:
    """Whether a default-order page filtered on click IDs alone is cheaper from the `total`
    matches sorted than from the created index walked until the page is found.

    The walk passes about (offset + limit) x size / total entries, `size` the
    organization's leads: few matches of a rare pair of click IDs lie spread over the
    whole organization (at a million leads, page 3 of a 250-lead pair walked all 600,000
    entries). Sorting them all costs total x SORT_COST. For click-only, default-order
    pages (list_leads asks only for those)."""
    return SORT_COST * total * total < (query.offset + query.limit) * size


def _few_clicked_page(
    where: ColumnElement[bool],
    *,
    org_id: BindParameter[int],
    query: ListQuery,
    fields: tuple[Field, ...],
    dialect: str,
    limit: BindParameter[int],
    offset: BindParameter[int],
) -> sa.Select[Any]:
    """The page of `where`'s matches, found by their exact masks (ix_leads_org_clicks) and
    sorted: a set of their own first, so neither planner walks the created index instead."""
    matches_select = sa.select(leads.c.id, leads.c.created_at).where(
        where,
        leads.c[CLICK_MASK_COLUMN].in_(click_masks(query, org_id=org_id).scalar_subquery()),
    ).with_hint(leads, f"INDEXED BY {CLICKS_INDEX}", dialect_name="sqlite")
    matches = matches_select.cte("matches")
    if dialect == "postgresql":
        matches = matches.prefix_with("MATERIALIZED")
    page_ids = (
        sa.select(matches.c.id)
        .order_by(*order_by(query, matches))
        .limit(limit)
        .offset(offset)
        .subquery("page_ids")
    )
    return _rows_of(page_ids, org_id=org_id, query=query, fields=fields)


def _cursor_page(
    conn: Connection, *, org_id: int, query: ListQuery, fields: tuple[Field, ...]
) -> Page:
    """The leads after the cursor's, by keyset over the sort keys and id: the index walk
    starts at the cursor, so a far page costs what the first does."""
    assert query.after is not None
    total = count_leads(conn, org_id=org_id, query=query)
    where = where_clause(query, org_id=org_id, dialect=conn.dialect.name)
    statement = with_search_hint(
        sa.select(*_selected(fields, query))
        .where(where, keyset_clause(query, query.after))
        .order_by(*order_by(query))
        .limit(query.limit + 1),  # one more: whether another page follows
        query,
    )
    rows, version = _read(conn, _versioned(statement, org_id, conn), org_id=org_id,
                          fields=fields)
    return _page(fields, query, rows[: query.limit], total, more=len(rows) > query.limit,
                 version=version)


def _read(
    conn: Connection,
    statement: sa.Select[Any],
    *,
    org_id: int,
    fields: tuple[Field, ...],
    params: dict[str, Any] | None = None,
) -> tuple[list[Sequence[Any]], int | None]:
    """A page's rows (lead_columns(fields), then anything else the statement selects), and
    on PostgreSQL the organization's data version as the statement saw it (Page.version):
    there the statement's last column is that version (_versioned).

    The version rides on the page's own statement: an answer is exact for the version its
    key's lookup saw if no write committed before its last statement, and asking in a
    statement of its own cost a round trip on every fresh answer (measured: 130-160 us of
    server CPU of about 2,400)."""
    with_version = conn.dialect.name == "postgresql"
    rows: list[Sequence[Any]] = list(conn.execute(statement, params).all())
    version = None
    if with_version and rows:
        version = int(rows[0][-1])
        rows = [row[:-1] for row in rows]
    if whole_leads(fields):
        done = completed(conn, org_id=org_id, rows=rows)
        if done is not rows:
            version = None  # a statement of its own read the missing objects
        rows = done
    return rows, version


def _selected(fields: tuple[Field, ...], query: ListQuery) -> list[Any]:
    """The page's columns, then the sort columns under labels of their own (a next cursor
    is made of the last row's; they are dropped from what is rendered)."""
    extras = [c.label(f"_sort_{i}") for i, c in enumerate(sort_columns(query))]
    return [*lead_columns(fields), *extras]


def _page(
    fields: tuple[Field, ...],
    query: ListQuery,
    rows: Sequence[Sequence[Any]],
    total: int,
    *,
    more: bool,
    version: int | None = None,
) -> Page:
    width = len(lead_columns(fields))
    next_after = None
    if more and rows:
        extras = rows[-1][width:]
        next_after = Keyset(sort_values(query, extras), extras[0])
    kept = selected_values(fields)
    return Page(fields, [kept(row) for row in rows], total, more, next_after, version)


def _matches(conn: Connection, *, org_id: int, query: ListQuery) -> sa.FromClause:
    """A search's matches: their ids and the sort's columns."""
    dialect = conn.dialect.name
    narrow = search_rows_answer(query)
    if narrow is not None and query.search is not None:
        # No filter but the search, in an order of columns `search_rows` holds: its narrow
        # rows alone give the matches and their order, and only the page's leads are read.
        found = search_matches(query.search, org_id=org_id, dialect=dialect, columns=narrow)
        if found is not None:
            return _matches_set(found, dialect)
    return _matches_set(
        with_search_hint(
            sa.select(*sort_columns(query)).where(
                where_clause(query, org_id=org_id, dialect=dialect)
            ),
            query,
        ),
        dialect,
    )


def _matches_set(found: Any, dialect: str) -> sa.FromClause:
    if dialect == "postgresql":
        # The matches first, as a set of their own: asked for them sorted, PostgreSQL's
        # planner would walk the organization's index in that order, expecting the LIMIT to
        # stop it early (the window count needs every match, so it never does: 360 ms for
        # `smith` against 56 ms through the trigram index it then leaves unused).
        cte: sa.FromClause = found.cte("matches").prefix_with("MATERIALIZED")
        return cte
    subquery: sa.FromClause = found.subquery("matches")
    return subquery


def _searched_page(
    conn: Connection, *, org_id: int, query: ListQuery, fields: tuple[Field, ...]
) -> Page:
    """A search must read every candidate row to recheck it, for the total as for the page:
    do it once. The matches are sorted as narrow (id, total) rows, with the total counted
    by a window over all of them, and only the page's rows are then read in full."""
    matches = _matches(conn, org_id=org_id, query=query)
    candidates = sa.select(matches.c.id, sa.func.count().over().label("total"))
    ordering = order_by(query, matches)
    page_ids = (
        candidates.order_by(*ordering)
        .limit(query.limit)
        .offset(query.offset)
        .subquery("page_ids")
    )
    statement = (
        sa.select(*_selected(fields, query), page_ids.c.total)
        .join(page_ids, page_ids.c.id == leads.c.id)
        .where(leads.c.org_id == org_id)
        .order_by(*order_by(query))
    )
    rows, version = _read(conn, _versioned(statement, org_id, conn), org_id=org_id,
                          fields=fields)
    if rows:
        total = int(rows[0][-1])
        more = query.offset + len(rows) < total
        return _page(fields, query, [row[:-1] for row in rows], total, more=more,
                     version=version)
    # No row on this page: either nothing matches, or the page is past the end.
    total = 0 if query.page == 1 else count_leads(conn, org_id=org_id, query=query)
    return Page(fields, [], total)


def iter_leads(
    conn: Connection,
    *,
    org_id: int,
    query: ListQuery,
    stored: bool = False,
    batch_size: int = 2_000,
) -> Any:
    """Every matching lead in full, in the query's order, streamed (for export): rows of
    LEAD_FIELDS' columns, or of the stored object alone if `stored` (sql.lead_columns)."""
    statement = with_search_hint(
        sa.select(*(lead_columns(LEAD_FIELDS) if stored else columns_for(LEAD_FIELDS)))
        .where(where_clause(query, org_id=org_id, dialect=conn.dialect.name))
        .order_by(*order_by(query)),
        query,
    )
    result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
        statement
    )
    if not stored:
        yield from result
        return
    for row in result:
        yield row if row[0] is not None else completed(conn, org_id=org_id, rows=[row])[0]


class FoundLead(NamedTuple):
    fields: tuple[Field, ...]  # the row's columns
    row: Sequence[Any]
    version: int | None  # as Page.version: the data version the statement saw (PostgreSQL)


def get_lead(
    conn: Connection, *, org_id: int, lead_id: str, fields: tuple[Field, ...] | None = None
) -> FoundLead | None:
    chosen = fields or LEAD_FIELDS
    # Every field's column, whatever the selection: one statement to compile (lead_columns).
    every_column: list[Any] = columns_for(LEAD_FIELDS)
    statement = sa.select(*every_column).where(
        leads.c.org_id == org_id, leads.c.id == lead_id
    )
    row = conn.execute(_versioned(statement, org_id, conn)).first()
    if row is None:
        return None
    seen: Any = row[-1] if conn.dialect.name == "postgresql" else None
    return FoundLead(chosen, field_values(chosen)(row), None if seen is None else int(seen))
