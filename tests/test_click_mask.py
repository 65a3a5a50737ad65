"""Click-ID presence filters test the `click_mask` the database computes (store/schema.py):
they must select exactly the leads whose click-ID columns are set, whoever wrote them."""

from __future__ import annotations

import dataclasses
import random

import pytest
import sqlalchemy as sa

from conftest import lead_row
from leads_api.fields import CLICK_ID_NAMES, FIELDS_BY_NAME
from leads_api.query import parse_list_query, split_query_string
from leads_api.query.model import ListQuery
from leads_api.store import Store
from leads_api.store.reads import _few_clicked, count_leads, list_leads
from leads_api.store.rollups import rebuild
from leads_api.store.schema import leads
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import insert_leads


def _ids(store: Store, org_id: int, query_string: str) -> list[str]:
    query = parse_list_query(split_query_string(query_string))
    with store.read() as conn:
        page = list_leads(conn, org_id=org_id, query=query)
    ids = [str(row[-1]) for row in page.rows]  # whole leads: (stored object, id)
    while page.more:  # a hundred at a time
        query = dataclasses.replace(query, page=query.page + 1)
        with store.read() as conn:
            page = list_leads(conn, org_id=org_id, query=query)
        ids += [str(row[-1]) for row in page.rows]
    return ids


def _plain_ids(store: Store, org_id: int, where: str) -> list[str]:
    """The same leads by a plain SQL test of the click-ID columns, in the default order."""
    with store.read() as conn:
        return list(conn.execute(sa.text(
            f"SELECT id FROM leads WHERE org_id = :org AND {where} "
            "ORDER BY created_at DESC, id DESC"
        ), {"org": org_id}).scalars())


@pytest.fixture
def clicked(store: Store, org: Organization) -> Organization:
    """200 leads with random click IDs, the last bits included; some written by plain SQL
    that names no mask (as a process of an older version would write them)."""
    rng = random.Random(13)
    rows = []
    for n in range(200):
        row = lead_row(created_at=1_767_225_600_000 + n * 3_600_000)
        for name in CLICK_ID_NAMES:
            row[FIELDS_BY_NAME[name].column] = f"{name}-{n}" if rng.random() < 0.3 else None
        rows.append(row)
    with store.write() as conn:
        insert_leads(conn, org_id=org.id, rows=rows[:150])
    with store.write() as conn:
        conn.execute(leads.insert(), [{**r, "org_id": org.id} for r in rows[150:]])
        rebuild(conn, org_id=org.id)  # the plain inserts moved no rollup
    return org


@pytest.mark.parametrize("name", CLICK_ID_NAMES)
def test_each_click_id_filter_selects_the_leads_with_that_column(
    store: Store, clicked: Organization, name: str
) -> None:
    column = FIELDS_BY_NAME[name].column
    present = _plain_ids(store, clicked.id, f"{column} IS NOT NULL")
    absent = _plain_ids(store, clicked.id, f"{column} IS NULL")
    assert present and absent
    assert _ids(store, clicked.id, f"{name}[exists]=true&limit=100&page=1") == present
    assert _ids(store, clicked.id, f"{name}[exists]=false&limit=100&page=1") == absent


def test_pairs_of_click_id_filters_agree_with_plain_sql(
    store: Store, clicked: Organization
) -> None:
    rng = random.Random(5)
    for _ in range(12):
        one, two = rng.sample(CLICK_ID_NAMES, 2)
        has_one, has_two = rng.random() < 0.5, rng.random() < 0.5
        where = " AND ".join(
            f"{FIELDS_BY_NAME[n].column} IS {'NOT ' if has else ''}NULL"
            for n, has in ((one, has_one), (two, has_two))
        )
        query_string = (f"{one}[exists]={str(has_one).lower()}&"
                        f"{two}[exists]={str(has_two).lower()}&limit=100&page=1")
        assert _ids(store, clicked.id, query_string) == _plain_ids(store, clicked.id, where)


def test_pages_of_few_matches_come_sorted_from_their_masks(
    store: Store, clicked: Organization
) -> None:
    """A rare combination's matches are found by their exact masks and sorted
    (reads._few_clicked); a common one's by walking the created index. Page by page,
    both give the plain SQL's leads in its order."""
    cases = {
        "gclid[exists]=true&ga4cid[exists]=true": "gclid IS NOT NULL AND ga4cid IS NOT NULL",
        "gclid[exists]=false": "gclid IS NULL",
    }
    chosen = {}
    for query_string, where in cases.items():
        expected = _plain_ids(store, clicked.id, where)
        pages = []
        for page in range(1, len(expected) // 4 + 2):
            query = parse_list_query(split_query_string(f"{query_string}&limit=4&page={page}"))
            with store.read() as conn:
                result = list_leads(conn, org_id=clicked.id, query=query)
                size = count_leads(conn, org_id=clicked.id, query=ListQuery())
                chosen[query_string, page] = _few_clicked(query, total=result.total, size=size)
            assert result.total == len(expected)
            pages += [str(row[-1]) for row in result.rows]
        assert pages == expected, query_string
    rare = [c for (q, _), c in chosen.items() if q.startswith("gclid[exists]=true")]
    common = [c for (q, _), c in chosen.items() if q == "gclid[exists]=false"]
    assert any(rare[1:]) and not any(common)  # a few of 200 after page 1; most of them
