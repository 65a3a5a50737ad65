"""Strong ETags on GET answers, and 304 Not Modified while nothing they show changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from api_support import assert_error

AddLeads = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def lead_id(add_leads: AddLeads) -> str:
    return str(add_leads({"name": "Ada", "status": "open"}, {"name": "Bob"})[0]["id"])


@pytest.fixture(params=["/api/leads?status=open", "/api/leads/{id}", "/api/leads/changes"])
def url(request: pytest.FixtureRequest, lead_id: str) -> str:
    return str(request.param).format(id=lead_id)


def test_an_answer_carries_a_strong_etag(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    tag = response.headers["ETag"]
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert client.get(url).headers["ETag"] == tag  # the same answer, the same tag


def test_if_none_match_gives_304_until_a_write(
    client: TestClient, url: str, lead_id: str
) -> None:
    tag = client.get(url).headers["ETag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}'):
        response = client.get(url, headers={"If-None-Match": header})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["ETag"] == tag
        assert response.headers["X-Request-Id"].startswith("req_")
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200

    # Any write of the organization's leads changes it, even one this answer does not show.
    assert client.post("/api/leads", json={"name": "Cy", "note": "elsewhere"}).is_success
    changed = client.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != tag
    assert client.patch("/api/leads", json={"id": lead_id, "note": "n"}).is_success
    assert client.get(url, headers={"If-None-Match": changed.headers["ETag"]}).status_code == 200


def test_the_key_is_checked_before_the_tag(
    client: TestClient, anonymous: TestClient, url: str
) -> None:
    tag = client.get(url).headers["ETag"]
    response = anonymous.get(url, headers={"If-None-Match": tag})
    assert_error(response, 401, "UNAUTHORIZED")
    bad_key = {"If-None-Match": tag, "X-API-KEY": "lak_nope"}
    assert_error(anonymous.get(url, headers=bad_key), 401, "UNAUTHORIZED")


def test_tags_differ_by_query_and_organization(
    client: TestClient, lead_id: str, make_org: Any, client_for: Any
) -> None:
    a = client.get("/api/leads?status=open").headers["ETag"]
    b = client.get("/api/leads?status=won").headers["ETag"]
    assert a != b
    with client_for(make_org()) as other:
        assert other.get("/api/leads?status=open").headers["ETag"] != a
        assert other.get("/api/leads?status=open", headers={"If-None-Match": a}).status_code == 200


def test_errors_and_unknown_leads_carry_no_tag(client: TestClient) -> None:
    response = client.get("/api/leads/lead_nope")
    assert response.status_code == 404 and "ETag" not in response.headers
    response = client.get("/api/leads?status=bad")
    assert response.status_code == 400 and "ETag" not in response.headers
