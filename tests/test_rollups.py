"""The count rollups stay equal to a plain COUNT(*), and the count planner agrees with it;
a page built once per shape answers each query's own values."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from conftest import insert_old_leads, lead_row, upgrade_to
from leads_api.fields import FIELDS_BY_NAME, LEAD_FIELDS
from leads_api.query import parse_list_query, split_query_string
from leads_api.sample import LeadSampler
from leads_api.store import Store
from leads_api.store.counts import MAX_KEPT_TERMS, count_leads, plan_count
from leads_api.store.reads import _page_and_values, _shaped_page, list_leads
from leads_api.store.rollups import ROLLUPS, rebuild
from leads_api.store.schema import leads
from leads_api.store.sql import order_by, where_clause
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import insert_leads

NOW_MS = 1_795_000_000_000  # 2026-11-18


def rollup_snapshot(store: Store, org_id: int) -> dict[str, list[tuple[Any, ...]]]:
    with store.read() as conn:
        return {
            r.table.name: sorted(
                _plain(row)
                for row in conn.execute(
                    sa.select(r.table).where(r.table.c.org_id == org_id, r.table.c.n != 0)
                )
            )
            for r in ROLLUPS
        }


# What each rollup must hold, written independently of the service's key functions: one
# plain GROUP BY per table, in SQL both databases run alike (integer division truncates;
# createdAt and value are never negative).
_CLICKS = ("gclid", "ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid", "twclid",
           "rdt_cid", "sccid", "li_fat_id", "dclid", "wbraid", "gbraid", "epik")
_MASK = " + ".join(
    f"CASE WHEN {column} IS NOT NULL THEN {1 << i} ELSE 0 END" for i, column in enumerate(_CLICKS)
)
GROUP_BY_SQL = {
    "lead_counts": "SELECT org_id, status, source, COUNT(*) FROM leads WHERE org_id = :org "
    "GROUP BY org_id, status, source",
    "lead_counts_by_day": "SELECT org_id, created_at / 86400000, status, source, COUNT(*) "
    "FROM leads WHERE org_id = :org GROUP BY org_id, created_at / 86400000, status, source",
    "lead_counts_by_updated_day": "SELECT org_id, updated_at / 86400000, COUNT(*) FROM leads "
    "WHERE org_id = :org GROUP BY org_id, updated_at / 86400000",
    "lead_counts_by_value": "SELECT org_id, CASE WHEN value_cents IS NULL THEN -1 "
    "ELSE value_cents / 10000 END AS b, status, source, COUNT(*) FROM leads "
    "WHERE org_id = :org GROUP BY org_id, b, status, source",
    "lead_counts_by_clicks": f"SELECT org_id, {_MASK} AS m, COUNT(*) FROM leads "
    "WHERE org_id = :org GROUP BY org_id, m",
    **{
        f"lead_counts_by_{column}": f"SELECT org_id, {column} IS NOT NULL AS p, "
        f"COALESCE({column}, '') AS v, status, source, COUNT(*) FROM leads "
        "WHERE org_id = :org GROUP BY org_id, p, v, status, source"
        for column in ("utm_source", "utm_medium", "utm_campaign", "label_id", "website")
    },
}


def rebuilt_snapshot(store: Store, org_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """What the rollups should hold, counted from the leads table by plain GROUP BYs."""
    assert set(GROUP_BY_SQL) == {r.table.name for r in ROLLUPS}, "a rollup without its GROUP BY"
    with store.read() as conn:
        return {
            table: sorted(_plain(row) for row in conn.execute(sa.text(sql), {"org": org_id}))
            for table, sql in GROUP_BY_SQL.items()
        }


def _plain(row: Any) -> tuple[Any, ...]:
    """A row with booleans as 0/1, as SQLite gives `x IS NOT NULL`."""
    return tuple(int(v) if isinstance(v, bool) else v for v in row)


def plain_count(store: Store, org_id: int, query_string: str) -> int:
    query = parse_list_query(split_query_string(query_string))
    with store.read() as conn:
        statement = sa.select(sa.func.count()).select_from(leads).where(
            where_clause(query, org_id=org_id, dialect=conn.dialect.name)
        )
        return int(conn.execute(statement).scalar_one())


def planned_count(store: Store, org_id: int, query_string: str) -> int:
    query = parse_list_query(split_query_string(query_string))
    with store.read() as conn:
        return count_leads(conn, org_id=org_id, query=query)


@pytest.fixture
def seeded(store: Store, org: Organization) -> Organization:
    with store.write() as conn:
        sampler = LeadSampler(7_000 + org.id)
        rows = list(sampler.leads(700, now_ms=NOW_MS, span_days=400))
        for i, row in enumerate(rows):  # the click IDs Octanist added: the mask's last bits
            row["dclid"] = f"dc-{i}" if i % 7 == 0 else None
            row["epik"] = f"ep-{i}" if i % 11 == 0 else None
        insert_leads(conn, org_id=org.id, rows=rows)
    return org


def test_inserts_keep_every_rollup_exact(store: Store, seeded: Organization) -> None:
    assert rollup_snapshot(store, seeded.id) == rebuilt_snapshot(store, seeded.id)


# Queries whose totals come from a rollup, with their ranges falling on and off bucket edges.
ROLLUP_QUERIES = [
    "",
    "status=won,lost",
    "status=open&source=gtm,api",
    "status=won&status=lost&source=inbound",
    "createdAt[gte]=2026-01-01&createdAt[lte]=2026-03-01",
    "createdAt[gt]=2026-01-01T10:30:00Z&createdAt[lt]=2026-02-01T08:00:00.5Z&status=won",
    "createdAt=2026-05-05,2026-05-06,2026-05-05",
    "createdAt[gte]=2026-03-01&createdAt[gte]=2026-02-01&createdAt[lt]=2026-03-15",
    "createdAt[lte]=2026-02-10",
    "createdAt[gte]=2026-10-01T12:00:00+02:00",
    "createdAt[exists]=true&source=gtm",
    "createdAt[exists]=false",
    "updated_after=2026-03-01T06:30:00.250Z",
    "updated_after=2020-01-01T00:00:00Z",
    "updatedAt[gte]=2026-01-01&updatedAt[lt]=2026-02-15T12:00:00Z",
    "updated_after=2026-01-01T00:00:00Z&status=won",  # not in that rollup: COUNT(*)
    "updatedAt[lte]=2026-06-01",
    "updatedAt[gt]=2026-05-05T10:00:00Z&updatedAt[lt]=2026-05-05T11:00:00Z",  # within a day
    "value[gte]=100&value[lt]=1000",
    "value[gt]=99.99&value[lte]=1234.56&status=won",
    "value=5000,250.5",
    "value[exists]=true",
    "value[exists]=false&status=open",
    "value[exists]=false&value[gte]=1",
    "value[lt]=-1",
    "value[gte]=-5",
    "gclid[exists]=true&fbc[exists]=false",
    "msclkid[exists]=true",
    "ttclid[exists]=true&ttclid[exists]=false",
    "epik[exists]=false&gclid[exists]=true",
    "dclid[exists]=true",
    "utm_source=google&source=gtm",
    "utm_source=google,facebook&utm_source=bing&status=won",
    "utm_campaign=campaign_001&utm_campaign=campaign_002",
    "utm_medium[exists]=false&source=api",
    "labelId[exists]=true&labelId=label_03",
    "labelId[exists]=false&labelId=label_03",
    "website=https://acme.io&status=open,won",
    "website[exists]=true&website[exists]=false",
    "utm_source=google&utm_medium=cpc",  # two category fields: COUNT(*)
    "status=won&gclid[exists]=true",  # not a rollup: falls back to COUNT(*)
    "createdAt=" + ",".join(f"2026-03-{d:02d}" for d in range(1, 31, 2)),  # 15 spans
    "value=" + ",".join(str(v) for v in range(100, 3000, 100)),  # 29 spans: COUNT(*)
    "createdAt[gte]=2026-01-01&value[gte]=100",  # two bucketed fields: COUNT(*)
    # a partial bucket's far edge past 64 bits (an open edge: no stored value lies there)
    "value[gte]=92233720368547758",
    "value[lt]=-92233720368547758",
    "value[gt]=92233720368547758.06&status=won",
]


@pytest.mark.parametrize("query_string", ROLLUP_QUERIES)
def test_planned_total_equals_count_star(
    store: Store, seeded: Organization, query_string: str
) -> None:
    assert planned_count(store, seeded.id, query_string) == plain_count(
        store, seeded.id, query_string
    )


def test_plan_choice() -> None:
    def table(qs: str) -> str | None:
        plan = plan_count(parse_list_query(split_query_string(qs)))
        return None if plan is None or plan.rollup is None else plan.rollup.table.name

    assert table("") == "lead_counts"
    assert table("status=won&source=api") == "lead_counts"
    assert table("createdAt[gte]=2026-01-01") == "lead_counts_by_day"
    assert table("value[gte]=1") == "lead_counts_by_value"
    assert table("updated_after=2026-01-01T00:00:00Z") == "lead_counts_by_updated_day"
    assert table("updatedAt[gte]=2026-01-01&createdAt[gte]=2025-01-01") is None
    assert table("updated_after=2026-01-01T00:00:00Z&status=won") is None
    assert table("gclid[exists]=true") == "lead_counts_by_clicks"
    assert table("search=smith") is None
    assert table("utm_source=google&status=won") == "lead_counts_by_utm_source"
    assert table("utm_source=google&utm_medium=cpc") is None
    assert table("status=won&gclid[exists]=true") is None
    empty = plan_count(parse_list_query(split_query_string("createdAt[exists]=false")))
    assert empty is not None and empty.empty


def test_an_upgrade_counts_the_stored_leads_by_the_day_they_changed(unmigrated: Engine) -> None:
    """Migration 0012 backfills lead_counts_by_updated_day from the leads already stored."""
    upgrade_to(unmigrated, "0011")
    day = 86_400_000
    rows = [
        lead_row(created_at=NOW_MS - 40 * day, updated_at=NOW_MS - (n % 4) * day - n,
                 status=("open", "won")[n % 2], source=("api", "gtm", "csv")[n % 3])
        for n in range(23)
    ]
    org_id = insert_old_leads(unmigrated, rows)
    upgrade_to(unmigrated, "head")
    store = Store(unmigrated)
    snapshot = rollup_snapshot(store, org_id)["lead_counts_by_updated_day"]
    assert sum(row[-1] for row in snapshot) == len(rows) and len(snapshot) == 4  # days
    assert snapshot == rebuilt_snapshot(store, org_id)["lead_counts_by_updated_day"]
    since = "updated_after=" + _instant(NOW_MS - 2 * day - 5)
    assert planned_count(store, org_id, since) == plain_count(store, org_id, since) > 0


def _instant(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_rebuild_repairs_a_drifted_rollup(store: Store, seeded: Organization) -> None:
    with store.write() as conn:
        drift = sa.text("UPDATE lead_counts SET n = n + 5 WHERE org_id = :o")
        conn.execute(drift, {"o": seeded.id})
    assert rollup_snapshot(store, seeded.id) != rebuilt_snapshot(store, seeded.id)
    with store.write() as conn:
        rebuild(conn, org_id=seeded.id)
    assert rollup_snapshot(store, seeded.id) == rebuilt_snapshot(store, seeded.id)


def test_random_writes_keep_rollups_and_totals_exact(
    store: Store, seeded: Organization, make_org: Any
) -> None:
    """Random inserts into two organizations, then every rollup query against COUNT(*)."""
    other = make_org()
    rng = random.Random(11)
    sampler = LeadSampler(12_000 + other.id)
    for _ in range(5):
        with store.write() as conn:
            for target in (seeded, other):
                rows = list(sampler.leads(rng.randrange(1, 60), now_ms=NOW_MS, span_days=400))
                insert_leads(conn, org_id=target.id, rows=rows)
    for target in (seeded, other):
        assert rollup_snapshot(store, target.id) == rebuilt_snapshot(store, target.id)
        for query_string in ROLLUP_QUERIES:
            assert planned_count(store, target.id, query_string) == plain_count(
                store, target.id, query_string
            ), query_string


# Pairs of queries of one shape: the same fields, operators and number of values, their
# ranges cut by bucket edges alike; only their values differ (reads._page_and_values).
SAME_SHAPE = [
    ("status=won,lost&sort=value", "status=open,qualified&sort=value"),
    ("createdAt[gte]=2026-01-01&createdAt[lte]=2026-03-01",
     "createdAt[gte]=2026-04-01&createdAt[lte]=2026-04-20"),
    ("value[gt]=150.01&value[lte]=12345.67&status=won",
     "value[gt]=2050.25&value[lte]=45000.50&status=lost"),
    ("utm_source=google&source=gtm&page=2&limit=7", "utm_source=bing&source=api&page=1&limit=9"),
    ("updated_after=2026-03-01T06:30:00.250Z", "updated_after=2026-01-01T07:00:00Z"),
    ("labelId=label_03&gclid[exists]=true", "labelId=label_01&gclid[exists]=true"),
]


def plain_page(store: Store, org_id: int, query_string: str) -> tuple[int, list[str]]:
    """The total and the page's ids, by a statement built for this query alone."""
    query = parse_list_query(split_query_string(query_string))
    with store.read() as conn:
        where = where_clause(query, org_id=org_id, dialect=conn.dialect.name)
        ids = conn.execute(
            sa.select(leads.c.id).where(where).order_by(*order_by(query))
            .limit(query.limit).offset(query.offset)
        ).scalars().all()
    return plain_count(store, org_id, query_string), list(ids)


def listed_page(store: Store, org_id: int, query_string: str) -> tuple[int, list[str]]:
    query = parse_list_query(split_query_string(query_string))
    with store.read() as conn:
        page = list_leads(conn, org_id=org_id,
                          query=replace(query, fields=(FIELDS_BY_NAME["id"],)))
    return page.total, [row[0] for row in page.rows]


@pytest.mark.parametrize("pair", SAME_SHAPE, ids=[a for a, _ in SAME_SHAPE])
def test_a_page_of_one_shape_is_built_once_and_answers_each_values_own(
    store: Store, seeded: Organization, pair: tuple[str, str]
) -> None:
    same_shape(store, seeded, pair)


def test_values_of_one_shape_are_told_apart(store: Store, seeded: Organization) -> None:
    """Ranges of one value each (`value=`, a POINT of the bound predicate)."""
    with store.read() as conn:
        cents = conn.execute(
            sa.select(leads.c.value_cents).where(leads.c.org_id == seeded.id,
                                                  leads.c.value_cents.is_not(None))
            .order_by(leads.c.value_cents).limit(4)
        ).scalars().all()
    money = [f"{c // 100}.{c % 100:02d}" for c in cents]
    same_shape(store, seeded, (f"value={money[0]},{money[1]}&sort=value:desc",
                               f"value={money[2]},{money[3]}&sort=value:desc"))


def same_shape(store: Store, seeded: Organization, pair: tuple[str, str]) -> None:
    statements = []
    for query_string in pair:
        query = parse_list_query(split_query_string(query_string))
        statement, _ = _page_and_values(query, org_id=seeded.id, fields=LEAD_FIELDS,
                                        dialect=store.engine.dialect.name)
        statements.append(statement)
        listed = listed_page(store, seeded.id, query_string)
        assert listed == plain_page(store, seeded.id, query_string)
        assert listed[0] > 0, "a pair whose answers cannot tell values apart"
    assert statements[0] is statements[1]
    assert plain_page(store, seeded.id, pair[0]) != plain_page(store, seeded.id, pair[1])


def test_ranges_cut_differently_by_bucket_edges_are_shapes_of_their_own(
    store: Store, seeded: Organization
) -> None:
    def statement(query_string: str) -> Any:
        query = parse_list_query(split_query_string(query_string))
        return _page_and_values(query, org_id=seeded.id, fields=LEAD_FIELDS,
                                dialect=store.engine.dialect.name)[0]

    cut = ["value[gte]=100&value[lt]=1000", "value[gte]=150&value[lt]=1000",
           "value[gte]=150&value[lt]=160", "value[gte]=100"]
    assert len({id(statement(qs)) for qs in cut}) == len(cut)
    for query_string in cut:
        assert listed_page(store, seeded.id, query_string) == plain_page(
            store, seeded.id, query_string)


def test_a_shape_with_many_values_is_built_for_its_request_alone(
    store: Store, seeded: Organization
) -> None:
    labels = ",".join(f"label_{i:02d}" for i in range(MAX_KEPT_TERMS + 6))
    # [exists] filters name no value: they count as terms of their own
    presence = "&".join(f"{c}[exists]={('true', 'false')[i % 2]}" for i, c in enumerate(
        [*_CLICKS, "value", "utm_source", "labelId"] * 4))
    kept = _shaped_page.cache_info().currsize
    for query_string in (f"labelId={labels}", f"labelId={labels}&status=won", presence,
                         presence + "&page=2"):
        assert listed_page(store, seeded.id, query_string) == plain_page(
            store, seeded.id, query_string)
    assert _shaped_page.cache_info().currsize == kept


@pytest.mark.parametrize("query_string", [q for q in ROLLUP_QUERIES if "search" not in q])
def test_a_page_built_once_per_shape_has_the_planned_total(
    store: Store, seeded: Organization, query_string: str
) -> None:
    assert listed_page(store, seeded.id, query_string) == plain_page(
        store, seeded.id, query_string)


def test_a_shapes_text_values_leave_the_count_tables_indexes_usable() -> None:
    """On PostgreSQL the leads' text columns are COLLATE "C"; a text value typed like them
    would carry the collation into the count tables' conditions, which their indexes (of
    the default collation) cannot answer."""
    query = parse_list_query(split_query_string("utm_source=google&source=gtm,api"))
    statement, _ = _page_and_values(query, org_id=1, fields=LEAD_FIELDS, dialect="postgresql")
    sql = str(statement.compile(dialect=postgresql.dialect()))
    assert "lead_counts_by_utm_source" in sql
    assert "COLLATE" not in sql
