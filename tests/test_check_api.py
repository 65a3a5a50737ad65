"""GET and POST /api/check (CONTRACT.md section 7), on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from leads_api.store import Store
from leads_api.store.tenants import Organization, create_key, revoke_key

METHODS = ["GET", "POST"]


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]


@pytest.mark.parametrize("method", METHODS)
def test_a_valid_key_is_just_success(client: TestClient, method: str) -> None:
    response = client.request(method, "/api/check")
    assert response.status_code == 200
    assert response.json() == {"success": True}


@pytest.mark.parametrize("method", METHODS)
def test_bearer_works_too(anonymous: TestClient, api_key: str, method: str) -> None:
    response = anonymous.request(
        method, "/api/check", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.json() == {"success": True}


@pytest.mark.parametrize("method", METHODS)
def test_a_read_only_key_is_valid(
    anonymous: TestClient, org: Organization, make_key: Callable[..., str], method: str
) -> None:
    key = make_key(org, read_only=True)
    response = anonymous.request(method, "/api/check", headers={"X-API-KEY": key})
    assert response.json() == {"success": True}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-KEY": ""}, {"X-API-KEY": "lak_unknown"}, {"Authorization": "Bearer "},
     {"Authorization": "Basic bGFrOng="}],
)
def test_no_or_unknown_key_is_401(
    anonymous: TestClient, method: str, headers: dict[str, str]
) -> None:
    assert_unauthorized(anonymous.request(method, "/api/check", headers=headers))


@pytest.mark.parametrize("method", METHODS)
def test_a_key_in_the_query_string_is_not_accepted(
    anonymous: TestClient, api_key: str, method: str
) -> None:
    for name in ("api_key", "apiKey", "key", "X-API-KEY"):
        assert_unauthorized(anonymous.request(method, f"/api/check?{name}={api_key}"))


@pytest.mark.parametrize("method", METHODS)
def test_a_revoked_key_is_401(
    anonymous: TestClient, store: Store, org: Organization, method: str
) -> None:
    with store.write() as conn:
        key_id, secret = create_key(conn, org)
    headers = {"X-API-KEY": secret}
    assert anonymous.request(method, "/api/check", headers=headers).status_code == 200
    with store.write() as conn:
        revoke_key(conn, key_id)
    assert_unauthorized(anonymous.request(method, "/api/check", headers=headers))


def test_post_ignores_its_body(client: TestClient) -> None:
    response = client.post("/api/check", content=b"not json", headers={"Content-Type": "text/x"})
    assert response.json() == {"success": True}
