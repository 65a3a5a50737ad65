"""The count rollups stay equal to a plain COUNT(*), and the count planner agrees with it."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa

from leads_api.query import parse_list_query, split_query_string
from leads_api.sample import LeadSampler
from leads_api.store import Store
from leads_api.store.counts import count_leads, plan_count
from leads_api.store.rollups import ROLLUPS, rebuild
from leads_api.store.schema import leads
from leads_api.store.sql import where_clause
from leads_api.store.tenants import Organization
from leads_api.store.writes import insert_leads

NOW_MS = 1_795_000_000_000  # 2026-11-18


def rollup_snapshot(store: Store, org_id: int) -> dict[str, list[tuple[Any, ...]]]:
    with store.read() as conn:
        return {
            r.table.name: sorted(
                tuple(row)
                for row in conn.execute(
                    sa.select(r.table).where(r.table.c.org_id == org_id, r.table.c.n != 0)
                )
            )
            for r in ROLLUPS
        }


def rebuilt_snapshot(store: Store, org_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """What the rollups should hold, recomputed from the leads table (then rolled back)."""
    with store.engine.connect() as conn:
        transaction = conn.begin()
        rebuild(conn, org_id=org_id)
        snapshot = {
            r.table.name: sorted(
                tuple(row)
                for row in conn.execute(
                    sa.select(r.table).where(r.table.c.org_id == org_id, r.table.c.n != 0)
                )
            )
            for r in ROLLUPS
        }
        transaction.rollback()
    return snapshot


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
]


@pytest.mark.parametrize("query_string", ROLLUP_QUERIES)
def test_planned_total_equals_count_star(
    store: Store, seeded: Organization, query_string: str
) -> None:
    assert planned_count(store, seeded.id, query_string) == plain_count(
        store, seeded.id, query_string
    )


def test_plan_choice() -> None:
    def plan(qs: str) -> Any:
        return plan_count(parse_list_query(split_query_string(qs)))

    assert plan("").uses == set()
    assert plan("createdAt[gte]=2026-01-01").uses == {"day"}
    assert plan("value[gte]=1").uses == {"value"}
    assert plan("gclid[exists]=true").uses == {"clicks"}
    assert plan("search=smith") is None
    assert plan("utm_source=google").uses == {"category"}
    assert plan("utm_source=google&utm_medium=cpc") is None
    assert plan("status=won&gclid[exists]=true") is None
    assert plan("createdAt[exists]=false").empty


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
