"""GET /api/leads/changes: every lead, then every later create and change, in the order of
changes, each once at its latest version; bad tokens and refused parameters named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from starlette.testclient import TestClient

from api_support import assert_error
from conftest import BASE_MS, ClientFor
from leads_api.api import create_app
from leads_api.api.answer_cache import AnswerCache
from leads_api.lead import format_timestamp
from leads_api.store import Store
from leads_api.store.tenants import Organization
from leads_api.transfer.formats import Record
from leads_api.transfer.importer import import_records

AddLeads = Callable[..., list[dict[str, Any]]]


def changes(client: TestClient, since: str | None = None, **params: Any) -> dict[str, Any]:
    if since is not None:
        params["since"] = since
    response = client.get("/api/leads/changes", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def follow(client: TestClient, since: str | None = None, **params: Any) -> tuple[list[Any], str]:
    """Every page after `since` until caught up: the leads in order, and the last `next`."""
    seen: list[Any] = []
    for _ in range(1_000):
        body = changes(client, since, **params)
        seen += body["data"]
        since = body["meta"]["changes"]["next"]
        if not body["meta"]["changes"]["hasMore"]:
            assert since is not None
            return seen, since
    raise AssertionError("the feed never caught up")


def test_an_empty_feed(client: TestClient) -> None:
    body = changes(client)
    assert body["data"] == []
    assert list(body["meta"]) == ["changes", "requestId", "timestamp"]
    assert body["meta"]["changes"]["hasMore"] is False
    again = changes(client, body["meta"]["changes"]["next"])
    assert again["data"] == []
    assert again["meta"]["changes"]["next"] == body["meta"]["changes"]["next"]


def test_the_feed_gives_every_lead_then_every_change_once(
    client: TestClient, add_leads: AddLeads
) -> None:
    stored = add_leads(*({"name": f"lead {i}"} for i in range(7)))
    first, since = follow(client, limit=3)
    assert sorted(lead["id"] for lead in first) == sorted(row["id"] for row in stored)
    assert [lead["name"] for lead in first] and all(len(lead) > 40 for lead in first)

    # Nothing new: nothing more, and the same position.
    body = changes(client, since)
    assert body["data"] == [] and body["meta"]["changes"]["next"] == since

    # One lead changed twice and one created between two polls: each comes once, the changed
    # one at its latest version, in the order of their last change.
    target = stored[2]["id"]
    assert client.patch("/api/leads", json={"id": target, "status": "qualified"}).is_success
    created = client.post("/api/leads", json={"name": "newcomer"}).json()["data"]["id"]
    assert client.patch("/api/leads", json={"id": target, "status": "won", "value": 10}).is_success
    later, since = follow(client, since)
    assert [lead["id"] for lead in later] == [created, target]
    assert later[1]["status"] == "won" and later[1]["value"] == 10


def test_an_import_stamping_one_millisecond_pages_through_whole(
    client: TestClient, store: Store, org: Organization
) -> None:
    stamp = "2026-05-05T05:05:05.005Z"
    objects = [{"name": f"imported {i}", "createdAt": stamp, "updatedAt": stamp}
               for i in range(250)]
    report = import_records(
        store, org_name=org.name, records=[Record(i + 1, o) for i, o in enumerate(objects)]
    )
    assert report.committed and report.created == 250
    seen, _ = follow(client, limit=7, fields="id,updatedAt")
    assert len(seen) == 250 == len({lead["id"] for lead in seen})
    assert {lead["updatedAt"] for lead in seen} == {stamp}
    assert all(list(lead) == ["id", "updatedAt"] for lead in seen)


def test_filters_and_search_apply_to_the_lead_as_it_is_now(
    client: TestClient, add_leads: AddLeads
) -> None:
    add_leads({"name": "Ada Smith", "status": "won"}, {"name": "Bob Smith"}, {"name": "Cy"})
    names = {lead["name"] for lead in follow(client, search="smith", status="won")[0]}
    assert names == {"Ada Smith"}
    open_ones = follow(client, **{"status": "open", "createdAt[gte]": "2026-01-01"})[0]
    assert {lead["name"] for lead in open_ones} == {"Bob Smith", "Cy"}


def test_the_feed_is_the_organization_s_own(
    client: TestClient, add_leads: AddLeads, make_org: Any, client_for: ClientFor
) -> None:
    other = make_org()
    add_leads({"name": "theirs"}, into=other)
    add_leads({"name": "mine"})
    assert [lead["name"] for lead in follow(client)[0]] == ["mine"]
    with client_for(other) as theirs:
        their_next = changes(theirs)["meta"]["changes"]["next"]
    response = client.get("/api/leads/changes", params={"since": their_next})
    assert_error(response, 400, "VALIDATION_ERROR", parameter="since")
    assert "another organization" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("sort=createdAt:asc", "sort"),
        ("page=2", "page"),
        ("cursor=abc", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("since=not-a-token", "since"),
        ("since=eyJrIjoibGlzdCJ9", "since"),  # a list cursor's kind, not a feed position
        ("since=eyJrIjoiZmVlZCIsIm8iOjEsInMiOiJ4IiwiaSI6MX0", "since"),  # wrong types
        ("since=%00", "since"),
        ("since=a&since=b", "since"),
    ],
)
def test_refused_parameters_are_named(client: TestClient, query: str, parameter: str) -> None:
    response = client.get(f"/api/leads/changes?{query}")
    assert_error(response, 400, "VALIDATION_ERROR", parameter=parameter)


def test_filters_are_checked_as_in_the_list(client: TestClient) -> None:
    assert_error(client.get("/api/leads/changes?status=nope"), 400, "INVALID_FILTER",
                 parameter="status")
    assert_error(client.get("/api/leads/changes?limit=1000&nosuch=1"), 400, "INVALID_FILTER",
                 parameter="nosuch")


def test_the_key_is_checked_first(anonymous: TestClient) -> None:
    assert_error(anonymous.get("/api/leads/changes?sort=bad"), 401, "UNAUTHORIZED")


def test_a_token_from_the_list_is_not_a_position(client: TestClient, add_leads: AddLeads) -> None:
    add_leads({"name": "a"}, {"name": "b"})
    cursor = client.get("/api/leads?limit=1").json()["meta"]["pagination"]["nextCursor"]
    assert isinstance(cursor, str)
    assert_error(client.get("/api/leads/changes", params={"since": cursor}), 400,
                 "VALIDATION_ERROR", parameter="since")


# --- random interleavings of writes and feed reads ------------------------------------------


class FeedFollower(RuleBasedStateMachine):
    """Writes of every kind interleaved with reads of a page of the feed: whenever the
    follower has caught up, what it holds is exactly the organization's leads."""

    store: Store
    key: str
    org: Organization

    @initialize()
    def start(self) -> None:
        self.client = TestClient(create_app(self.store, AnswerCache(1 << 20)),
                                 headers={"X-API-KEY": self.key})
        self.since: str | None = None
        self.held: dict[str, dict[str, Any]] = {}
        self.ids: list[str] = []
        self.caught_up = False
        self.imports = 0

    @rule(name=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8))
    def create(self, name: str) -> None:
        response = self.client.post("/api/leads", json={"name": name})
        assert response.status_code == 201, response.text
        self.ids.append(response.json()["data"]["id"])
        self.caught_up = False

    @rule(data=st.data(), status=st.sampled_from(["qualified", "won", "lost"]))
    def patch(self, data: st.DataObject, status: str) -> None:
        if not self.ids:
            return
        lead_id = data.draw(st.sampled_from(self.ids))
        response = self.client.patch("/api/leads", json={"id": lead_id, "status": status})
        assert response.status_code == 200, response.text
        self.caught_up = False

    @rule(count=st.integers(1, 30), data=st.data())
    def import_some(self, count: int, data: st.DataObject) -> None:
        self.imports += 1
        stamp = format_timestamp(BASE_MS + self.imports)  # one millisecond for the batch
        again = data.draw(st.lists(st.sampled_from(self.ids), max_size=3, unique=True)) \
            if self.ids else []
        objects: list[dict[str, Any]] = [
            {"name": f"import {self.imports}.{i}", "createdAt": stamp} for i in range(count)
        ]
        objects += [{"id": lead_id, "note": f"reimported {self.imports}"} for lead_id in again]
        report = import_records(self.store, org_name=self.org.name,
                                records=[Record(i + 1, o) for i, o in enumerate(objects)])
        assert report.committed, report.problems
        self.caught_up = False

    @rule(limit=st.integers(1, 20))
    def read_a_page(self, limit: int) -> None:
        body = changes(self.client, self.since, limit=limit)
        for lead in body["data"]:
            self.held[lead["id"]] = lead
        self.since = body["meta"]["changes"]["next"]
        if not body["meta"]["changes"]["hasMore"]:
            self.caught_up = True

    @invariant()
    def holds_exactly_the_leads_when_caught_up(self) -> None:
        if not self.caught_up:
            return
        current = {}
        for page in range(1, 100):
            body = self.client.get(f"/api/leads?limit=100&page={page}").json()
            current.update({lead["id"]: lead for lead in body["data"]})
            if not body["meta"]["pagination"]["hasMore"]:
                break
        assert self.held == current

    def teardown(self) -> None:
        self.client.close()


@pytest.mark.timeout(600)
def test_random_interleavings_never_skip_a_change(
    store: Store, make_org: Callable[..., Organization], make_key: Callable[..., str]
) -> None:
    class Machine(FeedFollower):
        def __init__(self) -> None:
            super().__init__()
            self.store, self.org = store, make_org()  # a fresh organization per example
            self.key = make_key(self.org)

    run_state_machine_as_test(Machine, settings=settings(
        max_examples=15, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    ))
