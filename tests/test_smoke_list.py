"""The list endpoint's basic shape, on both databases."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from leads_api.fields import FIELD_NAMES


def test_empty_organization_lists_nothing(client: TestClient) -> None:
    response = client.get("/api/leads")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["data"] == []
    assert body["meta"]["pagination"] == {
        "limit": 50, "page": 1, "totalPages": 0, "total": 0, "hasMore": False
    }
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]


def test_full_object_has_every_field_in_order(client: TestClient, add_leads: Any) -> None:
    (row,) = add_leads({"name": "John Doe", "value_cents": 500000, "status": "won"})
    data = client.get("/api/leads").json()["data"]
    assert list(data[0]) == list(FIELD_NAMES)
    assert data[0]["id"] == row["id"]
    assert data[0]["value"] == 5000
    assert data[0]["createdAt"] == "2026-01-01T00:00:00.000Z"
