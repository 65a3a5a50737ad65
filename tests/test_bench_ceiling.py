"""The benchmark's ceiling route (api/ceiling.py): absent unless LEADS_BENCH_CEILING names an
organization; then a fixed page 1 of its leads, without a key, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from leads_api.api.app import create_app
from leads_api.api.ceiling import CEILING_ENV, CEILING_PATH
from leads_api.store import Store
from leads_api.store.tenants import Organization


def test_absent_by_default(anonymous: TestClient) -> None:
    response = anonymous.get(CEILING_PATH)
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_serves_page_one_of_the_organization_encoded_once(
    store: Store, org: Organization, client: TestClient,
    add_leads: Callable[..., list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_leads(*({"name": f"Lead {i}"} for i in range(60)))
    listed = client.get("/api/leads?limit=50").json()
    monkeypatch.setenv(CEILING_ENV, org.name)
    with TestClient(create_app(store)) as bench:
        first = bench.get(CEILING_PATH)
        add_leads({"name": "After startup"})  # the page was encoded when the app started
        second = bench.get(CEILING_PATH)
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["data"] == listed["data"]
        assert len(body["data"]) == 50
        assert body["meta"]["pagination"] == listed["meta"]["pagination"]
        assert body["meta"]["requestId"] == response.headers["X-Request-Id"]
    assert first.json()["meta"]["requestId"] != second.json()["meta"]["requestId"]
