"""Exact totals that stay cheap as an organization grows.

A total is answered from the first rollup (store/rollups.py, ROLLUPS) whose dimensions
answer every predicate of the query, else by COUNT(*) over the leads table (a search, two
bucketed fields, a filter no rollup keeps). The planner knows no rollup by name: it loops
over the declarations and asks each dimension which predicates it answers.

A range rarely falls on bucket edges, so it is split: the whole buckets inside it are
summed from the rollup and the partial buckets at its two ends are counted on the leads
table through its (org, column) index, with the query's other predicates — at most two
buckets' worth of rows. Everything is one SQL statement, so the total stays exact within
the reading transaction.

>>> from leads_api.query import parse_list_query, split_query_string
>>> def plan(qs): return plan_count(parse_list_query(split_query_string(qs)))
>>> plan("status=won").rollup.table.name, plan("createdAt[gte]=2026-01-01").rollup.table.name
('lead_counts', 'lead_counts_by_day')
>>> plan("search=smith") is None, plan("createdAt[exists]=false").empty
(True, True)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from leads_api.query.model import Exists, IntRanges, ListQuery, Predicate
from leads_api.store.rollups import ROLLUPS, Buckets, Dimension, Rollup
from leads_api.store.schema import lead_counts, leads
from leads_api.store.sql import (
    Binder,
    bound_predicate,
    predicate_clause,
    predicate_shape,
    where_clause,
    with_search_hint,
)

NEG_INF = -(2**64)
POS_INF = 2**64
Span = tuple[int, int]  # half-open [lo, hi), with NEG_INF / POS_INF for unbounded
MAX_SPANS = 20  # each span adds up to three subqueries to the statement

Assignment = tuple[tuple[Dimension, tuple[Predicate, ...]], ...]


@dataclass(frozen=True)
class CountPlan:
    """The rollup that answers a query's total, and which of its dimensions answers which
    predicates; or `empty` when the predicates contradict each other (the total is 0)."""

    rollup: Rollup | None
    assignment: Assignment = ()
    empty: bool = False


# The organization's size (its leads without a filter) as a column of another statement
# (a click-only page's total, which its plan weighs against it); its one parameter is the
# organization, the parameter of every statement built once per shape.
ORG_TOTAL_PARAM = "org_id"
ORG_TOTAL_COLUMN = (
    sa.select(sa.func.coalesce(sa.func.sum(lead_counts.c.n), 0))
    .where(lead_counts.c.org_id == sa.bindparam(ORG_TOTAL_PARAM))
    .scalar_subquery()
)


def count_leads(conn: Connection, *, org_id: int, query: ListQuery) -> int:
    """The exact number of the organization's leads matching the query's filters and search:
    a search's by COUNT(*), any other's by the statement of its shape (totals)."""
    if query.search is None:
        return totals(conn, org_id=org_id, query=query)[0]
    statement = with_search_hint(
        sa.select(sa.func.count())
        .select_from(leads)
        .where(where_clause(query, org_id=org_id, dialect=conn.dialect.name)),
        query,
    )
    return int(conn.execute(statement).scalar_one())


# What a plan's bucketed dimension asks of its rollup, from the values of its predicates:
# nothing (no such predicate), ZERO (no lead can match), NO_VALUE (the leads without a
# value), or parts: whole buckets summed and edges counted on the leads table.
ZERO, NO_VALUE = "zero", "no value"
SUM, EDGE = "sum", "edge"
# (SUM, first bucket, end bucket) or (EDGE, lo, hi), None unbounded; the bounds are values
# or, in a statement built once per shape (reads._page_and_values), parameters.
Part = tuple[str, Any, Any]
BucketForm = None | str | tuple[Part, ...]


# The total in a statement built once per shape (reads._page_and_values, sql.Binder): a
# shape's total is COUNTED (a COUNT(*) of the page's matches), NOTHING, or the position of
# its rollup in ROLLUPS and its bucket form with parameters' names for its bounds.
COUNTED, NOTHING = "counted", "nothing"
TotalShape = str | tuple[int, BucketForm]


def total_shape(query: ListQuery, bind: Binder) -> TotalShape:
    """The query's total apart from its values, which `bind` names (bound_total builds it).
    Not for a search."""
    assert query.search is None
    plan = plan_count(query)
    if plan is None:
        return COUNTED
    if plan.empty:
        return NOTHING
    assert plan.rollup is not None
    form = _bucket_form(plan)
    if isinstance(form, tuple):
        form = tuple((kind, bind.name(lo), bind.name(hi)) for kind, lo, hi in form)
    return ROLLUPS.index(plan.rollup), form


def bound_total(
    shape: TotalShape, query: ListQuery, *, org_id: BindParameter[int], dialect: str
) -> ColumnElement[int]:
    """The total of a total_shape, as an expression of parameters: `query` is the page's,
    its predicates those of sql.bound_predicate."""
    if shape == COUNTED:
        where = where_clause(query, org_id=org_id, dialect=dialect)
        return sa.select(sa.func.count()).select_from(leads).where(where).scalar_subquery()
    if shape == NOTHING:
        return sa.literal(0)
    assert isinstance(shape, tuple)
    at, form = shape
    predicates = _counted(query.predicates)
    assert predicates is not None
    assignment = _assign(ROLLUPS[at], predicates)
    assert assignment is not None
    if isinstance(form, tuple):
        form = tuple((kind, _bucket_param(lo), _bucket_param(hi)) for kind, lo, hi in form)
    return _rollup_total(CountPlan(ROLLUPS[at], assignment), org_id=org_id, bucketed=form)


def _bucket_param(name: str | None) -> BindParameter[int] | None:
    return None if name is None else sa.bindparam(name, type_=sa.BigInteger)


# A shape with more terms than this (predicates, ranges and values) is built for its
# request alone: the statements kept stay small, however many filters a hostile client
# sends (a request line of 8 KiB holds about 450 `[exists]` filters: 2.7 MB of statement).
MAX_KEPT_TERMS = 64


def kept(query: ListQuery, bind: Binder) -> bool:
    """Whether the statement of the query's shape (its values named by `bind`) is kept."""
    terms = len(bind.values)
    for p in query.predicates:
        terms += len(p.ranges) if isinstance(p, IntRanges) else 1
    return terms <= MAX_KEPT_TERMS


def totals(
    conn: Connection, *, org_id: int, query: ListQuery, with_size: bool = False
) -> tuple[int, int | None]:
    """The query's total (not a search's) and, if `with_size`, the organization's size (its
    no-filter total), in one statement built once per shape (as reads._shaped_page)."""
    bind = Binder()
    shape = (tuple(predicate_shape(p, bind) for p in query.predicates),
             total_shape(query, bind), conn.dialect.name, with_size)
    if shape[1] == NOTHING and not with_size:
        return 0, None
    build = _shaped_totals if kept(query, bind) else _shaped_totals.__wrapped__
    row = conn.execute(build(*shape), {ORG_TOTAL_PARAM: org_id, **bind.values}).one()
    return int(row[0]), int(row[1]) if with_size else None


@lru_cache(maxsize=512)
def _shaped_totals(
    predicates: tuple[Hashable, ...], total: TotalShape, dialect: str, with_size: bool
) -> sa.Select[Any]:
    org: BindParameter[int] = sa.bindparam(ORG_TOTAL_PARAM, type_=sa.Integer)
    bound = ListQuery(predicates=tuple(map(bound_predicate, predicates)))
    counted = bound_total(total, bound, org_id=org, dialect=dialect)
    return sa.select(counted, ORG_TOTAL_COLUMN) if with_size else sa.select(counted)


def plan_count(query: ListQuery) -> CountPlan | None:
    """Which rollup answers this query's total exactly, or None for a plain COUNT(*)."""
    if query.search is not None:
        return None
    predicates = _counted(query.predicates)
    if predicates is None:
        return CountPlan(None, empty=True)  # createdAt[exists]=false: nothing
    for rollup in ROLLUPS:
        assignment = _assign(rollup, predicates)
        if assignment is None:
            continue
        for dimension, assigned in assignment:
            if isinstance(dimension, Buckets) and assigned:
                spans, _ = _spans(assigned)
                if spans is not None and len(spans) > MAX_SPANS:
                    return None  # a long list of dates or values: one COUNT(*) beats it
                if spans == []:
                    return CountPlan(rollup, assignment, empty=True)
        return CountPlan(rollup, assignment)
    return None


def _counted(predicates: Iterable[Predicate]) -> list[Predicate] | None:
    """The predicates a rollup must answer: not createdAt[exists]=true (every lead has
    one); None if one is createdAt[exists]=false (no lead matches)."""
    counted: list[Predicate] = []
    for p in predicates:
        if isinstance(p, Exists) and not p.field.nullable:
            if not p.present:
                return None
            continue
        counted.append(p)
    return counted


def _assign(rollup: Rollup, predicates: list[Predicate]) -> Assignment | None:
    """Each predicate to the first of the rollup's dimensions that answers it, or None when
    one is answered by none of them."""
    assigned: list[list[Predicate]] = [[] for _ in rollup.dimensions]
    for p in predicates:
        for i, dimension in enumerate(rollup.dimensions):
            if dimension.answers(p):
                assigned[i].append(p)
                break
        else:
            return None
    return tuple(
        (dimension, tuple(ps)) for dimension, ps in zip(rollup.dimensions, assigned, strict=True)
    )


# --- building the one statement ------------------------------------------------------------


def _rollup_total(
    plan: CountPlan, *, org_id: int | BindParameter[int], bucketed: BucketForm
) -> ColumnElement[int]:
    """The plan's sum over its rollup, `bucketed` saying what its bucketed dimension's
    predicates ask (_bucket_form, taken from the query's values)."""
    assert plan.rollup is not None
    table = plan.rollup.table
    conditions: list[ColumnElement[bool]] = []
    on_leads: list[ColumnElement[bool]] = []  # the same predicates, for counting edges
    dimension: Buckets | None = None
    for each, assigned in plan.assignment:
        if not assigned:
            continue
        if isinstance(each, Buckets):
            dimension = each
            continue
        conditions += each.conditions(table, list(assigned))
        on_leads += [predicate_clause(p) for p in assigned]
    if dimension is None or bucketed is None:
        return _sum(table, org_id, conditions)
    if bucketed == ZERO:
        return sa.literal(0)  # value[exists]=false with a value range: nothing
    if isinstance(bucketed, str):  # NO_VALUE
        return _sum(table, org_id, [*conditions, table.c[dimension.group_column]
                                    == dimension.null_bucket])
    return _bucketed(
        table, org_id, dimension, bucketed, conditions, on_leads,
        min_bucket=None if dimension.null_bucket is None else 0,
    )


def _bucket_form(plan: CountPlan) -> BucketForm:
    for dimension, assigned in plan.assignment:
        if not (isinstance(dimension, Buckets) and assigned):
            continue
        spans, no_value = _spans(assigned)
        if no_value:
            return NO_VALUE if spans is None else ZERO
        assert spans is not None
        return _parts(spans, dimension.width)
    return None


def _parts(spans: Iterable[Span], width: int) -> tuple[Part, ...]:
    """The whole buckets each span covers (summed from the rollup) and its partial buckets
    at either end (counted on the leads table), a span within one bucket all edge."""
    parts: list[Part] = []
    for lo, hi in spans:
        first = None if lo == NEG_INF else -(-lo // width)  # first bucket wholly inside
        end = None if hi == POS_INF else hi // width  # first bucket not wholly inside
        if first is not None and end is not None and first >= end:
            parts.append((EDGE, lo, hi))
            continue
        parts.append((SUM, first, end))
        if first is not None and lo < first * width:
            parts.append((EDGE, lo, _stored(first * width)))
        if end is not None and end * width < hi:
            parts.append((EDGE, _stored(end * width), hi))
    return tuple(parts)


INT64 = range(-(2**63), 2**63)  # what the columns hold, in both databases


def _stored(bound: int) -> int | None:
    """An edge's bound, or None (open) past what a column can hold: a range near the 64-bit
    limits (`value[gte]=92233720368547758`) has its partial bucket's far edge beyond it,
    which neither database takes as a parameter, and no stored value lies there."""
    return bound if bound in INT64 else None


def _spans(predicates: Iterable[Predicate]) -> tuple[list[Span] | None, bool]:
    """A bucketed field's predicates as (disjoint spans or None for any, only-no-value)."""
    spans: list[Span] | None = None
    no_value = False
    for p in predicates:
        if isinstance(p, IntRanges):
            spans = _intersect(spans, _union(p.ranges))
        elif isinstance(p, Exists) and p.present:
            spans = _intersect(spans, [(NEG_INF, POS_INF)])
        else:
            no_value = True
    return spans, no_value


def _bucketed(
    table: sa.Table,
    org_id: int | BindParameter[int],
    dimension: Buckets,
    parts: Iterable[Part],
    conditions: list[ColumnElement[bool]],
    on_leads: list[ColumnElement[bool]],
    *,
    min_bucket: int | None,
) -> ColumnElement[int]:
    terms: list[ColumnElement[int]] = []
    bucket = table.c[dimension.group_column]
    column = leads.c[dimension.lead_column]
    for kind, lo, hi in parts:
        if kind == EDGE:
            terms.append(_count_leads_between(org_id, column, lo, hi, on_leads))
            continue
        inside = list(conditions)
        if lo is not None:
            inside.append(bucket >= lo)
        elif min_bucket is not None:
            inside.append(bucket >= min_bucket)
        if hi is not None:
            inside.append(bucket < hi)
        terms.append(_sum(table, org_id, inside))
    if not terms:
        return sa.literal(0)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _sum(
    table: sa.Table, org_id: int | BindParameter[int], conditions: list[ColumnElement[bool]]
) -> ColumnElement[int]:
    return (
        sa.select(sa.func.coalesce(sa.func.sum(table.c.n), 0))
        .where(table.c.org_id == org_id, *conditions)
        .scalar_subquery()
    )


def _count_leads_between(
    org_id: int | BindParameter[int],
    column: sa.Column[object],
    lo: Any,  # a value, a parameter, or None (unbounded)
    hi: Any,
    on_leads: list[ColumnElement[bool]],
) -> ColumnElement[int]:
    conditions = [leads.c.org_id == org_id, *on_leads]
    if lo is not None:
        conditions.append(column >= lo)
    if hi is not None:
        conditions.append(column < hi)
    return sa.select(sa.func.count()).select_from(leads).where(*conditions).scalar_subquery()


# --- spans ---------------------------------------------------------------------------------


def _union(ranges: Iterable[tuple[int | None, int | None]]) -> list[Span]:
    """Half-open ranges (None = unbounded) -> sorted, disjoint, merged spans."""
    spans = sorted(
        (NEG_INF if lo is None else lo, POS_INF if hi is None else hi) for lo, hi in ranges
    )
    merged: list[Span] = []
    for lo, hi in spans:
        if lo >= hi:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _intersect(current: list[Span] | None, new: list[Span]) -> list[Span]:
    if current is None:
        return new
    out: list[Span] = []
    for a_lo, a_hi in current:
        for b_lo, b_hi in new:
            lo, hi = max(a_lo, b_lo), min(a_hi, b_hi)
            if lo < hi:
                out.append((lo, hi))
    return _union(out)
