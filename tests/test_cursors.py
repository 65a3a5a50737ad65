"""Cursor pagination on GET /api/leads: nextCursor continues the very query by keyset, each
lead once, whatever is written meanwhile; cursors refuse what contradicts them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from api_support import assert_error
from conftest import BASE_MS, ClientFor

AddLeads = Callable[..., list[dict[str, Any]]]
MINUTE = 60_000


def get(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/leads", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def walk(client: TestClient, first: dict[str, Any], **each: Any) -> list[dict[str, Any]]:
    """Every lead from the first page on, by nextCursor (bounded)."""
    seen = list(first["data"])
    cursor = first["meta"]["pagination"]["nextCursor"]
    for _ in range(1_000):
        if cursor is None:
            return seen
        body = get(client, cursor=cursor, **each)
        pagination = body["meta"]["pagination"]
        assert pagination["page"] is None
        assert pagination["hasMore"] == (pagination["nextCursor"] is not None)
        seen += body["data"]
        cursor = pagination["nextCursor"]
    raise AssertionError("the walk never ended")


@pytest.fixture
def mixed(add_leads: AddLeads) -> list[dict[str, Any]]:
    """Leads with ties and nulls in every sortable column."""
    names = ["alice", "Bob", None, "émile", "bob", None, "Zed", "alice"]
    return add_leads(*(
        {
            "name": names[i % len(names)],
            "email": None if i % 3 == 0 else f"p{i % 5}@example.com",
            "value_cents": None if i % 4 == 0 else (i % 6) * 10_000,
            "status": ("open", "won", "lost", "qualified")[i % 4],
            "created_at": BASE_MS + (i % 7) * MINUTE,
            "updated_at": BASE_MS + (i % 5) * MINUTE,
            "qualified_at": None if i % 2 else BASE_MS + (i % 3) * MINUTE,
        }
        for i in range(37)
    ))


@pytest.mark.parametrize(
    "sort",
    [
        None,
        "createdAt:asc",
        "value:desc",
        "value:asc,createdAt:desc",
        "name,email:desc",
        "email:desc",
        "status,value:desc,name",
        "qualifiedAt:desc",
        "updatedAt:asc",
        "expiresAt",
    ],
)
def test_a_cursor_walk_equals_the_whole_list(
    client: TestClient, mixed: list[dict[str, Any]], sort: str | None
) -> None:
    params = {} if sort is None else {"sort": sort}
    whole = get(client, limit=100, **params)["data"]
    assert len(whole) == len(mixed)
    first = get(client, limit=4, **params)
    assert [lead["id"] for lead in walk(client, first)] == [lead["id"] for lead in whole]


def test_filters_search_and_fields_travel_in_the_cursor(
    client: TestClient, mixed: list[dict[str, Any]]
) -> None:
    query = {"status": "won,lost", "search": "example.com", "fields": "name,status",
             "sort": "name"}
    whole = get(client, limit=100, **query)["data"]
    first = get(client, limit=3, **query)
    walked = walk(client, first)
    assert walked == whole and len(whole) > 3
    assert all(set(lead) == {"id", "name", "status"} for lead in walked)
    # The same parameters sent again beside the cursor are fine (a poller repeating its URL).
    cursor = first["meta"]["pagination"]["nextCursor"]
    again = get(client, cursor=cursor, limit=3, **query)
    assert again["data"] == whole[3:6]


def test_the_page_size_may_change_and_totals_stay_exact(
    client: TestClient, mixed: list[dict[str, Any]]
) -> None:
    whole = get(client, limit=100, status="won")["data"]
    first = get(client, limit=2, status="won")
    second = get(client, cursor=first["meta"]["pagination"]["nextCursor"], limit=5)
    assert second["data"] == whole[2:7]
    pagination = second["meta"]["pagination"]
    assert pagination["total"] == len(whole)
    assert pagination["limit"] == 5 and pagination["totalPages"] == -(-len(whole) // 5)
    # Without limit, a cursor keeps the page size it was made with.
    third = get(client, cursor=pagination["nextCursor"])
    assert third["meta"]["pagination"]["limit"] == 5


def test_the_last_page_has_no_next_cursor(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"name": "a"}, {"name": "b"}, {"name": "c"})
    assert get(client, limit=3)["meta"]["pagination"]["nextCursor"] is None
    assert get(client, limit=2, page=2)["meta"]["pagination"]["nextCursor"] is None
    assert get(client, limit=2, page=5)["meta"]["pagination"]["nextCursor"] is None
    last = get(client, cursor=get(client, limit=2)["meta"]["pagination"]["nextCursor"])
    assert len(last["data"]) == 1
    assert last["meta"]["pagination"] == {"limit": 2, "page": None, "totalPages": 2,
                                          "total": 3, "hasMore": False, "nextCursor": None}


def test_a_page_number_s_next_cursor_continues_from_that_page(
    client: TestClient, mixed: list[dict[str, Any]]
) -> None:
    whole = get(client, limit=100, sort="value:desc")["data"]
    third = get(client, limit=5, page=3, sort="value:desc")
    assert third["data"] == whole[10:15]
    assert walk(client, third) == whole[10:]


def test_writes_during_a_walk_never_skip_nor_repeat_an_unchanged_lead(
    client: TestClient, add_leads: AddLeads
) -> None:
    stored = add_leads(*({"name": f"n{i}", "created_at": BASE_MS + i * MINUTE}
                         for i in range(40)))
    first = get(client, limit=6, sort="createdAt:asc")
    seen = list(first["data"])
    cursor = first["meta"]["pagination"]["nextCursor"]
    for step in range(100):
        # Meanwhile: new leads (anywhere in the order), and changes that keep createdAt.
        add_leads({"name": f"new {step}", "created_at": BASE_MS + (step * 7 % 40) * MINUTE})
        target = stored[(step * 13) % 40]["id"]
        assert client.patch("/api/leads", json={"id": target, "status": "won"}).is_success
        if cursor is None:
            break
        body = get(client, cursor=cursor)
        seen += body["data"]
        cursor = body["meta"]["pagination"]["nextCursor"]
    seen_ids = [lead["id"] for lead in seen]
    for row in stored:
        assert seen_ids.count(row["id"]) == 1


@pytest.mark.parametrize(
    ("extra", "parameter"),
    [
        ({"page": "2"}, "page"),
        ({"status": "open"}, "status"),  # the cursor's query has status=won
        ({"sort": "value"}, "sort"),
        ({"search": "x"}, "search"),
        ({"fields": "name"}, "fields"),
        ({"limit": "101"}, "limit"),
    ],
)
def test_what_contradicts_a_cursor_is_refused(
    client: TestClient, mixed: list[dict[str, Any]], extra: dict[str, str], parameter: str
) -> None:
    cursor = get(client, limit=2, status="won")["meta"]["pagination"]["nextCursor"]
    response = client.get("/api/leads", params={"cursor": cursor, **extra})
    assert_error(response, 400, "VALIDATION_ERROR", parameter=parameter)


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "eyJrIjoiZmVlZCJ9",  # {"k":"feed"}: a feed position, not a cursor
        "bm90IGpzb24",  # "not json"
        "e30",  # {}
        "eyJrIjoibGlzdCIsIm8iOjEsInEiOltdLCJsIjo1MCwidiI6WyJ4Il0sImkiOiJsZWFkXzEifQ",
        "a" * 20_000,
    ],
)
def test_a_malformed_cursor_is_named(client: TestClient, token: str) -> None:
    assert_error(client.get("/api/leads", params={"cursor": token}), 400, "VALIDATION_ERROR",
                 parameter="cursor")


def test_a_forged_cursor_with_bad_values_is_named(client: TestClient, org: Any) -> None:
    """A cursor whose keyset does not fit its sort (a string for createdAt) is refused, not
    run: tokens are checked whole."""
    from leads_api.query.model import Keyset
    from leads_api.query.tokens import Cursor, encode_cursor

    for values in (("2026",), (1, 2), (None,), (True,)):
        token = encode_cursor(Cursor((), 50, Keyset(values, "lead_x")), org_id=org.id)
        assert_error(client.get("/api/leads", params={"cursor": token}), 400,
                     "VALIDATION_ERROR", parameter="cursor")
    token = encode_cursor(Cursor((("page", "2"),), 50, Keyset((1,), "lead_x")), org_id=org.id)
    assert_error(client.get("/api/leads", params={"cursor": token}), 400, "VALIDATION_ERROR",
                 parameter="cursor")


def test_another_organization_s_cursor_is_refused(
    client: TestClient, add_leads: AddLeads, make_org: Any, client_for: ClientFor
) -> None:
    other = make_org()
    add_leads({"name": "a"}, {"name": "b"}, into=other)
    with client_for(other) as theirs:
        cursor = get(theirs, limit=1)["meta"]["pagination"]["nextCursor"]
    error = assert_error(client.get("/api/leads", params={"cursor": cursor}), 400,
                         "VALIDATION_ERROR", parameter="cursor")
    assert "another organization" in error["message"]


def test_a_cursor_far_down_a_large_list(client: TestClient, add_leads: AddLeads) -> None:
    add_leads(*({"created_at": BASE_MS + i} for i in range(1_500)))
    first = get(client, limit=100)
    ids = [lead["id"] for lead in walk(client, first)]
    assert len(ids) == 1_500 == len(set(ids))
