"""API keys and tenant isolation on the read endpoints (CONTRACT.md section 1), both databases.

A key travels in `X-API-KEY` or `Authorization: Bearer`, never in the query string; a missing,
unknown or revoked key is 401 in the envelope. A key sees, counts and fetches only its own
organization's leads: another organization's lead does not exist for it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from leads_api.store import Store
from leads_api.store.schema import api_keys
from leads_api.store.tenants import Organization, create_key, revoke_key

AddLeads = Callable[..., list[dict[str, Any]]]


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert body["error"]["message"]
    assert response.headers["X-Request-Id"] == body["meta"]["requestId"]


# --- which keys are accepted ---------------------------------------------------------------


def test_x_api_key_header(client: TestClient, add_leads: AddLeads) -> None:
    (row,) = add_leads({"name": "Mine"})
    response = client.get("/api/leads")
    assert response.status_code == 200
    assert [lead["id"] for lead in response.json()["data"]] == [row["id"]]


@pytest.mark.parametrize("template", ["Bearer {}", "bearer {}", "BEARER {}", "Bearer   {}  "])
def test_authorization_bearer(
    anonymous: TestClient, api_key: str, add_leads: AddLeads, template: str
) -> None:
    (row,) = add_leads({"name": "Mine"})
    headers = {"Authorization": template.format(api_key)}
    response = anonymous.get("/api/leads", headers=headers)
    assert response.status_code == 200
    assert [lead["id"] for lead in response.json()["data"]] == [row["id"]]
    assert anonymous.get(f"/api/leads/{row['id']}", headers=headers).status_code == 200


def test_x_api_key_wins_over_authorization(anonymous: TestClient, api_key: str) -> None:
    """Decided where the contract is silent: when both are sent, X-API-KEY is the key."""
    good, bad = api_key, "lak_" + "0" * 40
    response = anonymous.get(
        "/api/leads", headers={"X-API-KEY": good, "Authorization": f"Bearer {bad}"}
    )
    assert response.status_code == 200
    assert_unauthorized(anonymous.get(
        "/api/leads", headers={"X-API-KEY": bad, "Authorization": f"Bearer {good}"}
    ))


def test_a_read_only_key_reads(
    anonymous: TestClient, org: Organization, make_key: Callable[..., str], add_leads: AddLeads
) -> None:
    (row,) = add_leads({"name": "Mine"})
    headers = {"X-API-KEY": make_key(org, read_only=True)}
    assert anonymous.get("/api/leads", headers=headers).json()["meta"]["pagination"]["total"] == 1
    assert anonymous.get(f"/api/leads/{row['id']}", headers=headers).status_code == 200


# --- which are refused ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/leads", "/api/leads/lead_anything", "/api/leads?limit=0", "/api/leads?foo=1",
             "/api/leads/lead_x?foo=1"],
)
def test_no_key_is_401_before_anything_else(anonymous: TestClient, path: str) -> None:
    assert_unauthorized(anonymous.get(path))


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-API-KEY": ""}, id="empty"),
        pytest.param({"X-API-KEY": "   "}, id="blank"),
        pytest.param({"X-API-KEY": "lak_" + "A" * 40}, id="unknown"),
        pytest.param({"X-API-KEY": "not a key at all"}, id="garbage"),
        pytest.param({"X-API-KEY": "x" * 5000}, id="long"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
        pytest.param({"Authorization": "Bearer lak_" + "A" * 40}, id="unknown-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"X-API-KEY-X": "{key}"}, id="other-header"),
    ],
)
def test_missing_or_unknown_keys_are_401(
    anonymous: TestClient, api_key: str, headers: dict[str, str]
) -> None:
    filled = {name: value.format(key=api_key) for name, value in headers.items()}
    assert_unauthorized(anonymous.get("/api/leads", headers=filled))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(str.upper, id="upper"),
        pytest.param(str.lower, id="lower"),
        pytest.param(lambda key: key[:-1], id="shorter"),
        pytest.param(lambda key: key + "0", id="longer"),
        pytest.param(lambda key: f"Token {key}", id="with-a-scheme"),
    ],
)
def test_a_near_miss_of_a_key_is_401(
    anonymous: TestClient, api_key: str, change: Callable[[str], str]
) -> None:
    assert_unauthorized(anonymous.get("/api/leads", headers={"X-API-KEY": change(api_key)}))
    assert_unauthorized(
        anonymous.get("/api/leads", headers={"Authorization": f"Bearer {change(api_key)}"})
    )


def test_a_revoked_key_is_401(store: Store, org: Organization, anonymous: TestClient) -> None:
    with store.write() as conn:
        revoked_id, revoked = create_key(conn, org)
        _, kept = create_key(conn, org)
    assert anonymous.get("/api/leads", headers={"X-API-KEY": revoked}).status_code == 200
    with store.write() as conn:
        revoke_key(conn, revoked_id)
    assert_unauthorized(anonymous.get("/api/leads", headers={"X-API-KEY": revoked}))
    assert_unauthorized(anonymous.get("/api/leads/lead_x", headers={"X-API-KEY": revoked}))
    assert_unauthorized(
        anonymous.get("/api/leads", headers={"Authorization": f"Bearer {revoked}"})
    )
    assert anonymous.get("/api/leads", headers={"X-API-KEY": kept}).status_code == 200


@pytest.mark.parametrize("name", ["api_key", "apiKey", "key", "x-api-key", "X-API-KEY", "token",
                                  "access_token"])
def test_a_key_in_the_query_string_is_not_accepted(
    anonymous: TestClient, client: TestClient, api_key: str, name: str
) -> None:
    assert_unauthorized(anonymous.get(f"/api/leads?{name}={quote(api_key)}"))
    assert_unauthorized(anonymous.get(f"/api/leads/lead_x?{name}={quote(api_key)}"))
    # with a key in the header, the parameter is just an unknown one
    response = client.get(f"/api/leads?{name}={quote(api_key)}")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"parameter": name}


def test_a_401_does_not_echo_the_key(anonymous: TestClient) -> None:
    sent = "lak_SECRETSECRETSECRETSECRET"
    response = anonymous.get("/api/leads", headers={"X-API-KEY": sent})
    assert_unauthorized(response)
    assert sent not in response.text


def test_keys_are_stored_as_sha256_only(store: Store, org: Organization) -> None:
    with store.write() as conn:
        key_id, secret = create_key(conn, org, name="label")
    with store.read() as conn:
        row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
    assert row["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in row.values())
    assert len(row["prefix"]) < len(secret) // 2  # enough to recognise, far from the secret
    random_part = secret.removeprefix("lak_")
    assert len(random_part) * math.log2(62) >= 128  # base62 characters, at least 128 bits


# --- tenant isolation ----------------------------------------------------------------------

# The same leads go into two organizations, so every query below matches leads in both.
MIRRORED: tuple[dict[str, Any], ...] = (
    {"name": "Shared Name", "email": "shared@example.com", "phone": "+1 (234) 567-890",
     "status": "won", "source": "gtm", "value_cents": 500_000, "gclid": "SHARED",
     "utm_source": "google", "label_id": "L", "website": "https://same.io",
     "created_at": 1_772_323_200_000, "qualified_at": 1_772_323_200_000},
    {"name": "Other Shared", "email": "other@example.com", "status": "open", "source": "api",
     "value_cents": None, "created_at": 1_767_225_600_000},
    {"name": "Third", "status": "lost", "source": "import", "value_cents": 1_050,
     "fbc": "fb", "created_at": 1_767_312_000_000},
)
QUERIES = [
    "", "status=won", "status=won,lost", "source=gtm", "value=5000", "value[gte]=1",
    "value[exists]=false", "createdAt=2026-03-01", "createdAt[gte]=2026-01-01",
    "createdAt[lt]=2026-03-01", "updated_after=2026-01-01", "qualifiedAt[exists]=true",
    "gclid[exists]=true", "gclid=SHARED", "fbc[exists]=true", "utm_source=google", "labelId=L",
    "website=https://same.io", "search=shared", "search=SHARED%20NAME", "search=234%20567",
    "search=example.com&status=open", "sort=value:desc", "sort=name&limit=1&page=2",
    "fields=name,value", "status=won&value[gte]=100&createdAt[lte]=2026-03-01",
]


@pytest.fixture
def other_org(make_org: Callable[..., Organization]) -> Organization:
    return make_org()


@pytest.fixture
def other_client(
    app: Any, other_org: Organization, make_key: Callable[..., str]
) -> Iterator[TestClient]:
    with TestClient(app, headers={"X-API-KEY": make_key(other_org)}) as c:
        yield c


@pytest.fixture
def mirrored(
    add_leads: AddLeads, other_org: Organization
) -> tuple[set[str], set[str]]:
    """The ids of the same leads in `org` and in `other_org`."""
    mine = {row["id"] for row in add_leads(*MIRRORED)}
    theirs = {row["id"] for row in add_leads(*MIRRORED, into=other_org)}
    return mine, theirs


@pytest.mark.parametrize("qs", QUERIES)
def test_lists_totals_filters_and_search_see_one_organization(
    client: TestClient, other_client: TestClient, mirrored: tuple[set[str], set[str]], qs: str
) -> None:
    mine, theirs = mirrored
    seen = {}
    for who, c in (("mine", client), ("theirs", other_client)):
        body = c.get(f"/api/leads?{qs}").json()
        seen[who] = ({lead["id"] for lead in body["data"]}, body["meta"]["pagination"]["total"])
    assert seen["mine"][0] <= mine
    assert seen["theirs"][0] <= theirs
    assert seen["mine"][1] == seen["theirs"][1] > 0  # each counts its own copy only
    assert seen["mine"][1] <= len(MIRRORED)


def test_totals_do_not_count_other_organizations(
    client: TestClient, other_org: Organization, add_leads: AddLeads
) -> None:
    add_leads(*({"status": "won"} for _ in range(7)), into=other_org)
    add_leads({"status": "won"})
    for qs in ("", "status=won", "createdAt[gte]=2000-01-01", "value[exists]=false",
               "gclid[exists]=false"):
        assert client.get(f"/api/leads?{qs}").json()["meta"]["pagination"]["total"] == 1, qs


def test_one_lead_of_another_organization_does_not_exist(
    client: TestClient, other_client: TestClient, mirrored: tuple[set[str], set[str]]
) -> None:
    mine, theirs = mirrored
    for lead_id in mine:
        assert client.get(f"/api/leads/{lead_id}").status_code == 200
        assert other_client.get(f"/api/leads/{lead_id}").status_code == 404
    for lead_id in theirs:
        assert client.get(f"/api/leads/{lead_id}?fields=name").status_code == 404
        assert other_client.get(f"/api/leads/{lead_id}").status_code == 200


def test_an_organization_without_leads_sees_none(
    anonymous: TestClient, make_org: Callable[..., Organization], make_key: Callable[..., str],
    mirrored: tuple[set[str], set[str]],
) -> None:
    headers = {"X-API-KEY": make_key(make_org())}
    for qs in QUERIES:
        body = anonymous.get(f"/api/leads?{qs}", headers=headers).json()
        assert (body["data"], body["meta"]["pagination"]["total"]) == ([], 0), qs


@pytest.mark.parametrize("name", ["org_id", "orgId", "organization", "org"])
def test_no_parameter_names_an_organization(
    client: TestClient, other_org: Organization, name: str
) -> None:
    response = client.get(f"/api/leads?{name}={other_org.id}")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "INVALID_FILTER",
        "message": response.json()["error"]["message"],
        "details": {"parameter": name},
    }
