"""Exact totals that stay cheap as an organization grows.

A total is answered from a rollup (store/rollups.py) whenever the query's predicates fall
on its group columns, else by COUNT(*) over the leads table:

- only `status` / `source` equality             -> lead_counts (a sum over <= 24 rows)
- those plus `createdAt` ranges                  -> lead_counts_by_day
- those plus `value` ranges or `value[exists]`  -> lead_counts_by_value
- only click-ID `[exists]` filters               -> lead_counts_by_clicks (bitmask)
- status/source plus one of utm_source, utm_medium, utm_campaign, labelId, website
  (equality or `[exists]`)                       -> lead_counts_by_<that field>

A range rarely falls on bucket edges, so it is split: the whole buckets inside it are
summed from the rollup and the partial buckets at its two ends are counted on the leads
table through its (org, column) index — at most two buckets' worth of rows. Everything is
one SQL statement, so the total stays exact within the reading transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from leads_api.fields import CATEGORY_NAMES, CLICK_ID_NAMES, FIELDS_BY_NAME, Field
from leads_api.query.model import Exists, IntRanges, ListQuery, TextIn
from leads_api.store.rollups import (
    DAY_MS,
    NO_VALUE_BUCKET,
    VALUE_BUCKET_CENTS,
)
from leads_api.store.schema import (
    category_rollups,
    lead_counts,
    lead_counts_by_clicks,
    lead_counts_by_day,
    lead_counts_by_value,
    leads,
)
from leads_api.store.sql import where_clause, with_search_hint

NEG_INF = -(2**64)
POS_INF = 2**64
Span = tuple[int, int]  # half-open [lo, hi), with NEG_INF / POS_INF for unbounded
MAX_SPANS = 20  # each span adds up to three subqueries to the statement

_CLICK_BITS = {name: 1 << i for i, name in enumerate(CLICK_ID_NAMES)}


@dataclass
class CountPlan:
    """What a query's total needs, when a rollup can give it."""

    statuses: frozenset[str] | None = None  # None: any
    sources: frozenset[str] | None = None
    created: list[Span] | None = None  # disjoint spans of createdAt (ms)
    values: list[Span] | None = None  # disjoint spans of value (cents); never matches null
    value_null: bool = False  # value[exists]=false: only leads without a value
    category: str | None = None  # the one category field filtered on
    category_values: frozenset[str] | None = None  # equality: any of these
    category_present: bool | None = None  # [exists]
    clicks_required: int = 0
    clicks_forbidden: int = 0
    empty: bool = False  # the predicates contradict each other: the total is 0
    uses: set[str] = field(default_factory=set)


def count_leads(conn: Connection, *, org_id: int, query: ListQuery) -> int:
    """The exact number of the organization's leads matching the query's filters and search."""
    plan = plan_count(query)
    if plan is None:
        statement = with_search_hint(
            sa.select(sa.func.count())
            .select_from(leads)
            .where(where_clause(query, org_id=org_id, dialect=conn.dialect.name)),
            query,
        )
    elif plan.empty:
        return 0
    else:
        statement = sa.select(_rollup_total(plan, org_id=org_id))
    return int(conn.execute(statement).scalar_one() or 0)


def plan_count(query: ListQuery) -> CountPlan | None:
    """Which rollup answers this query's total exactly, or None for a plain COUNT(*)."""
    if query.search is not None:
        return None
    plan = CountPlan()
    for p in query.predicates:
        name = p.field.name
        if isinstance(p, TextIn) and name in ("status", "source"):
            values = frozenset(p.values)
            if name == "status":
                plan.statuses = values if plan.statuses is None else plan.statuses & values
            else:
                plan.sources = values if plan.sources is None else plan.sources & values
        elif isinstance(p, Exists) and not p.field.nullable:
            plan.empty |= not p.present  # createdAt[exists]=false: nothing
        elif isinstance(p, IntRanges) and name == "createdAt":
            plan.created = _intersect(plan.created, _union(p.ranges))
            plan.uses.add("day")
        elif isinstance(p, IntRanges) and name == "value":
            plan.values = _intersect(plan.values, _union(p.ranges))
            plan.uses.add("value")
        elif isinstance(p, Exists) and name == "value":
            if p.present:
                plan.values = _intersect(plan.values, [(NEG_INF, POS_INF)])
            else:
                plan.value_null = True
            plan.uses.add("value")
        elif name in CATEGORY_NAMES and plan.category in (None, name):
            plan.category = name
            plan.uses.add("category")
            if isinstance(p, TextIn):
                values = frozenset(p.values)
                current = plan.category_values
                plan.category_values = values if current is None else current & values
            elif isinstance(p, Exists):
                if plan.category_present is not None and plan.category_present != p.present:
                    plan.empty = True
                plan.category_present = p.present
            else:
                return None
        elif isinstance(p, Exists) and name in _CLICK_BITS:
            if p.present:
                plan.clicks_required |= _CLICK_BITS[name]
            else:
                plan.clicks_forbidden |= _CLICK_BITS[name]
            plan.uses.add("clicks")
        else:
            return None
    if len(plan.uses) > 1:
        return None
    if len(plan.created or ()) > MAX_SPANS or len(plan.values or ()) > MAX_SPANS:
        return None  # a long list of dates or values: one COUNT(*) beats hundreds of parts
    if "clicks" in plan.uses and (plan.statuses is not None or plan.sources is not None):
        return None
    if plan.value_null and plan.values is not None:
        plan.empty = True  # value[exists]=false with a value range: nothing
    if plan.clicks_required & plan.clicks_forbidden:
        plan.empty = True
    if plan.category_values is not None and (
        plan.category_present is False or not plan.category_values
    ):
        plan.empty = True  # field=x with field[exists]=false, or two disjoint lists
    if plan.statuses == frozenset() or plan.sources == frozenset():
        plan.empty = True
    if (plan.created is not None and not plan.created) or (
        plan.values is not None and not plan.values
    ):
        plan.empty = True
    return plan


# --- building the one statement ------------------------------------------------------------


def _rollup_total(plan: CountPlan, *, org_id: int) -> ColumnElement[int]:
    if "clicks" in plan.uses:
        return _sum(lead_counts_by_clicks, org_id, _click_conditions(plan))
    if "category" in plan.uses:
        assert plan.category is not None
        table = category_rollups[plan.category]
        conditions = _groups(plan, table)
        if plan.category_values is not None:
            values = sorted(plan.category_values)
            conditions += [table.c.present.is_(True), table.c.value.in_(values)]
        elif plan.category_present is not None:
            conditions.append(table.c.present.is_(plan.category_present))
        return _sum(table, org_id, conditions)
    if "day" in plan.uses:
        assert plan.created is not None
        return _bucketed(
            plan, org_id, lead_counts_by_day, "day", FIELDS_BY_NAME["createdAt"], DAY_MS,
            plan.created, min_bucket=None,
        )
    if "value" in plan.uses:
        if plan.value_null:
            table = lead_counts_by_value
            return _sum(table, org_id, [table.c.bucket == NO_VALUE_BUCKET, *_groups(plan, table)])
        assert plan.values is not None
        return _bucketed(
            plan, org_id, lead_counts_by_value, "bucket", FIELDS_BY_NAME["value"],
            VALUE_BUCKET_CENTS, plan.values, min_bucket=0,
        )
    return _sum(lead_counts, org_id, _groups(plan, lead_counts))


def _bucketed(
    plan: CountPlan,
    org_id: int,
    table: sa.Table,
    bucket_column: str,
    lead_field: Field,
    width: int,
    spans: Iterable[Span],
    *,
    min_bucket: int | None,
) -> ColumnElement[int]:
    parts: list[ColumnElement[int]] = []
    bucket = table.c[bucket_column]
    column = leads.c[lead_field.column]
    for lo, hi in spans:
        first = None if lo == NEG_INF else -(-lo // width)  # first bucket wholly inside
        end = None if hi == POS_INF else hi // width  # first bucket not wholly inside
        if first is not None and end is not None and first >= end:
            parts.append(_count_leads_between(plan, org_id, column, lo, hi))
            continue
        conditions = _groups(plan, table)
        if first is not None:
            conditions.append(bucket >= first)
        elif min_bucket is not None:
            conditions.append(bucket >= min_bucket)
        if end is not None:
            conditions.append(bucket < end)
        parts.append(_sum(table, org_id, conditions))
        if first is not None and lo < first * width:
            parts.append(_count_leads_between(plan, org_id, column, lo, first * width))
        if end is not None and end * width < hi:
            parts.append(_count_leads_between(plan, org_id, column, end * width, hi))
    if not parts:
        return sa.literal(0)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _sum(table: sa.Table, org_id: int, conditions: list[ColumnElement[bool]]) -> ColumnElement[int]:
    return (
        sa.select(sa.func.coalesce(sa.func.sum(table.c.n), 0))
        .where(table.c.org_id == org_id, *conditions)
        .scalar_subquery()
    )


def _count_leads_between(
    plan: CountPlan, org_id: int, column: sa.Column[object], lo: int, hi: int
) -> ColumnElement[int]:
    conditions = [leads.c.org_id == org_id, *_groups(plan, leads)]
    if lo != NEG_INF:
        conditions.append(column >= lo)
    if hi != POS_INF:
        conditions.append(column < hi)
    return sa.select(sa.func.count()).select_from(leads).where(*conditions).scalar_subquery()


def _groups(plan: CountPlan, table: sa.Table) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if plan.statuses is not None:
        conditions.append(table.c.status.in_(sorted(plan.statuses)))
    if plan.sources is not None:
        conditions.append(table.c.source.in_(sorted(plan.sources)))
    return conditions


def _click_conditions(plan: CountPlan) -> list[ColumnElement[bool]]:
    mask = lead_counts_by_clicks.c.mask
    conditions: list[ColumnElement[bool]] = []
    if plan.clicks_required:
        conditions.append(mask.op("&")(plan.clicks_required) == plan.clicks_required)
    if plan.clicks_forbidden:
        conditions.append(mask.op("&")(plan.clicks_forbidden) == 0)
    return conditions


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
