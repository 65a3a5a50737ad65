"""GET /api/leads/{id} over HTTP, on both databases (CONTRACT.md section 4, "One lead")."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from leads_api.fields import FIELD_NAMES
from leads_api.store.tenants import Organization

AddLeads = Callable[..., list[dict[str, Any]]]
REQUEST_ID = re.compile(r"req_[0-9a-f]{12}")


@pytest.fixture
def lead(add_leads: AddLeads) -> dict[str, Any]:
    (row,) = add_leads({
        "name": "Ann Example", "email": "ann@example.com", "phone": "+31 6 1234 5678",
        "status": "won", "value_cents": 500_000, "gclid": "G-1", "ad_storage": True,
        "ad_user_data": False, "custom": '{"a": 1}',
    })
    return row


def test_one_lead_is_the_full_object(
    client: TestClient, lead: dict[str, Any], add_leads: AddLeads
) -> None:
    add_leads({"name": "Someone else"})
    response = client.get(f"/api/leads/{lead['id']}")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["success", "data", "meta"]
    assert body["success"] is True
    assert list(body["meta"]) == ["requestId", "timestamp"]  # no pagination
    assert REQUEST_ID.fullmatch(body["meta"]["requestId"])
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]
    data = body["data"]
    assert list(data) == list(FIELD_NAMES)
    assert data["id"] == lead["id"]
    assert (data["name"], data["value"], data["status"], data["gclid"]) == (
        "Ann Example", 5000, "won", "G-1"
    )
    assert (data["ad_storage"], data["ad_user_data"], data["analytics_storage"]) == (
        True, False, None
    )
    assert data["custom"] == '{"a": 1}'


def test_one_lead_equals_its_list_entry(client: TestClient, lead: dict[str, Any]) -> None:
    (listed,) = client.get("/api/leads").json()["data"]
    assert client.get(f"/api/leads/{lead['id']}").json()["data"] == listed


@pytest.mark.parametrize(
    ("qs", "keys"),
    [
        ("fields=name", ["id", "name"]),
        ("fields=value,%20email%20", ["id", "email", "value"]),
        ("fields=id", ["id"]),
        ("fields=", list(FIELD_NAMES)),
        ("fields=,", list(FIELD_NAMES)),
        ("fields=&fields=status", ["id", "status"]),
        ("fields=" + ",".join(reversed(FIELD_NAMES)), list(FIELD_NAMES)),
    ],
)
def test_fields(client: TestClient, lead: dict[str, Any], qs: str, keys: list[str]) -> None:
    full = client.get(f"/api/leads/{lead['id']}").json()["data"]
    response = client.get(f"/api/leads/{lead['id']}?{qs}")
    assert response.status_code == 200
    assert response.json()["data"] == {key: full[key] for key in keys}
    assert list(response.json()["data"]) == keys


def assert_not_found(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 404
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "NOT_FOUND"
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]
    return body


def test_unknown_id_is_404(client: TestClient, lead: dict[str, Any]) -> None:
    body = assert_not_found(client, "/api/leads/lead_doesNotExist0000000")
    assert "lead_doesNotExist0000000" in body["error"]["message"]
    assert body["error"]["details"]["parameter"] == "id"


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda i: i.upper(), id="upper"),
        pytest.param(lambda i: i.lower(), id="lower"),
        pytest.param(lambda i: i + " ", id="trailing-space"),
        pytest.param(lambda i: " " + i, id="leading-space"),
        pytest.param(lambda i: i[:-1], id="prefix"),
        pytest.param(lambda i: i + "x", id="longer"),
        pytest.param(lambda i: i + "%00", id="nul"),
        pytest.param(lambda i: "%25", id="percent"),
        pytest.param(lambda i: "_" * len(i), id="underscores"),
        pytest.param(lambda i: "lead_", id="bare-prefix"),
        pytest.param(lambda i: quote("ünïcödé") + "%F0%9F%98%80", id="unicode"),
        pytest.param(lambda i: "%FF%FE", id="not-utf8"),
        pytest.param(lambda i: "x" * 10_000, id="very-long"),
        pytest.param(lambda i: "' OR '1'='1", id="quote"),
    ],
)
def test_ids_that_are_not_exactly_a_lead_are_404(
    client: TestClient, lead: dict[str, Any], transform: Callable[[str], str]
) -> None:
    candidate = transform(lead["id"])
    if candidate in (lead["id"],):
        pytest.skip("the transform left the id unchanged")
    assert_not_found(client, f"/api/leads/{candidate}")


def test_another_organization_s_lead_is_404(
    client: TestClient, add_leads: AddLeads, make_org: Callable[..., Organization]
) -> None:
    other = make_org()
    (theirs,) = add_leads({"name": "Not yours"}, into=other)
    body = assert_not_found(client, f"/api/leads/{theirs['id']}")
    assert "Not yours" not in str(body)
    body_unknown = assert_not_found(client, "/api/leads/lead_0000000000000000000")
    assert body["error"]["details"].keys() == body_unknown["error"]["details"].keys()


@pytest.mark.parametrize(
    ("qs", "code", "parameter"),
    [
        ("status=won", "INVALID_FILTER", "status"),
        ("foo=", "INVALID_FILTER", "foo"),
        ("limit=10", "INVALID_FILTER", "limit"),
        ("sort=name", "INVALID_FILTER", "sort"),
        ("api_key=x", "INVALID_FILTER", "api_key"),
        ("fields=nope", "VALIDATION_ERROR", "fields"),
        ("fields=name&fields=email", "VALIDATION_ERROR", "fields"),
        ("fields=name%00", "VALIDATION_ERROR", "fields"),
    ],
)
def test_anything_but_fields_is_400(
    client: TestClient, lead: dict[str, Any], qs: str, code: str, parameter: str
) -> None:
    response = client.get(f"/api/leads/{lead['id']}?{qs}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["details"]) == (code, {"parameter": parameter})
    assert parameter in error["message"]
    assert response.headers["X-Request-Id"] == response.json()["meta"]["requestId"]


def test_bad_query_on_an_unknown_id_is_still_400(client: TestClient) -> None:
    response = client.get("/api/leads/lead_unknown?foo=1")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_FILTER"


def test_wrong_method_is_405(client: TestClient, lead: dict[str, Any]) -> None:
    response = client.delete(f"/api/leads/{lead['id']}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert client.get(f"/api/leads/{lead['id']}").status_code == 200  # still there
