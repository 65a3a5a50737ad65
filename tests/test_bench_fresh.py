"""The benchmark's fresh-question lists (bench/fresh.py): distinct, the same for a seed, and
each URL's straightforward SQL giving the API's total and page ids, on both databases."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's bench/

from bench import fresh
from bench.generate import NOW_MS, SPAN_DAYS

from leads_api.lead import new_lead_id
from leads_api.sample import LeadSampler
from leads_api.store import Store
from leads_api.store.tenants import Organization

SHAPES = list(fresh.MAKERS)


@pytest.mark.parametrize("shape", SHAPES)
def test_urls_are_distinct_and_the_same_for_a_seed(shape: str) -> None:
    urls = fresh.fresh_urls(shape, 1, 2_000, 600_000)
    assert len(urls) == 2_000
    assert len({q.path for q in urls}) == 2_000
    assert [q.path for q in fresh.fresh_urls(shape, 1, 2_000, 600_000)] == [q.path for q in urls]
    other = {q.path for q in fresh.fresh_urls(shape, 2, 2_000, 600_000)}
    assert other != {q.path for q in urls}


def test_a_small_organization_has_fewer_pages_and_they_are_all_distinct() -> None:
    urls = fresh.fresh_urls("Q1-small", 1, 5_000, 200)
    assert 0 < len(urls) < 5_000
    assert len({q.path for q in urls}) == len(urls)
    assert all((q.page - 1) * q.limit < 200 for q in urls)


def test_the_mixed_list_takes_turns_and_keeps_every_url() -> None:
    lists = [fresh.fresh_urls(s, 1, 30, 600_000) for s in ("Q1", "Q6", "Q9")]
    mixed = fresh.interleave(lists)
    assert [q.name for q in mixed[:6]] == ["Q1", "Q6", "Q9"] * 2
    assert sorted(q.path for q in mixed) == sorted(q.path for part in lists for q in part)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_url_answers_what_its_sql_says(
    shape: str, store: Store, org: Organization, client: TestClient,
    add_leads: Callable[..., list[dict[str, Any]]],
) -> None:
    leads = list(LeadSampler(seed=7).leads(400, now_ms=NOW_MS, span_days=SPAN_DAYS))
    add_leads(*({**lead, "id": new_lead_id()} for lead in leads))  # ids unique per test
    dialect = store.engine.dialect.name
    for query in fresh.fresh_urls(shape, 3, 25, 400):
        body = client.get(query.path).json()
        with store.engine.connect() as conn:
            total = conn.execute(sa.text(query.count_sql(org.id))).scalar_one()
            ids = [r[0] for r in conn.execute(sa.text(query.page_sql(dialect, org.id)))]
        assert body["meta"]["pagination"]["total"] == total, query.path
        assert [lead["id"] for lead in body["data"]] == ids, query.path
