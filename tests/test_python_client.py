"""The Python client (clients/python, `leads_api_client`) against a real `leads-api serve`
process on a loopback port, on both databases: every method, cursor walks and the change
feed while others write, typed errors, idempotent creates, and retries. Retries meet a
loopback proxy in front of the real server that answers 503 or drops connections on cue
(see flaky_proxy.py), since the database itself is never taken away from a shared server.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import itertools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flaky_proxy import BAD_GATEWAY, DROP, DROP_AFTER, PASS, UNAVAILABLE, flaky_proxy
from leads_api.store.tenants import Organization
from leads_api_client import (
    BadRequestError,
    Change,
    ClientError,
    ConflictError,
    ForbiddenError,
    InvalidDateError,
    InvalidFilterError,
    LeadsApiError,
    LeadsClient,
    LeadsConnectionError,
    NotFoundError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
    UnauthorizedError,
    ValidationError,
)
from server import Server, free_port, running_server

pytestmark = pytest.mark.server

REQUEST_ID = re.compile(r"req_[0-9a-f]{12}")
FAST = RetryPolicy(backoff_base=0.02, backoff_max=0.1)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(database_url, tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture
def leads(server: Server, api_key: str) -> Iterator[LeadsClient]:
    """The client, as a key of a fresh organization (`org`)."""
    with LeadsClient(server.base_url, api_key, retry=FAST) as client:
        yield client


@pytest.fixture
def client_of(
    server: Server, make_key: Callable[..., str]
) -> Iterator[Callable[..., LeadsClient]]:
    opened: list[LeadsClient] = []

    def open_client(org: Organization, *, read_only: bool = False) -> LeadsClient:
        client = LeadsClient(server.base_url, make_key(org, read_only=read_only), retry=FAST)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def create_named(leads: LeadsClient, names: list[str]) -> list[str]:
    return [leads.create_lead(name=name, email=f"{name.lower()}@example.com").id
            for name in names]


def assert_api_error(
    error: LeadsApiError, cls: type[LeadsApiError], status: int, code: str
) -> None:
    assert type(error) is cls
    assert (error.status, error.code) == (status, code)
    assert error.message
    assert error.request_id is not None and REQUEST_ID.fullmatch(error.request_id)
    assert error.request_id in str(error) and code in str(error)


# --- the distribution ---------------------------------------------------------------------


def test_the_distribution_depends_on_httpx_only() -> None:
    requires = importlib.metadata.requires("leads-api-client") or []
    assert [re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0] for r in requires] == ["httpx"]


@pytest.mark.parametrize("module", ["errors", "query", "retry", "client", "results"])
def test_the_examples_in_the_client_run(module: str) -> None:
    tested = importlib.import_module(f"leads_api_client.{module}")
    failed, _attempted = doctest.testmod(tested, optionflags=doctest.ELLIPSIS)
    assert failed == 0


# --- check, create, get -------------------------------------------------------------------


def test_check_accepts_the_key_and_names_a_bad_one(server: Server, leads: LeadsClient) -> None:
    assert leads.check() is None
    with LeadsClient(server.base_url, "lak_not_a_key", retry=FAST) as stranger:
        with pytest.raises(UnauthorizedError) as caught:
            stranger.check()
        assert_api_error(caught.value, UnauthorizedError, 401, "UNAUTHORIZED")
        assert isinstance(caught.value, ClientError)
        with pytest.raises(UnauthorizedError):
            list(stranger.iter_leads())


def test_create_then_get_a_lead(leads: LeadsClient) -> None:
    created = leads.create_lead(
        name="Ada Lovelace", email="ada@example.com", custom={"plan": "enterprise"},
        gclid="Cj0-demo", ad_storage="granted",
    )
    assert created.id.startswith("lead_")
    assert (created.message, created.replayed) == ("Lead added", False)
    lead = leads.get_lead(created.id)
    assert lead["id"] == created.id
    assert (lead["name"], lead["email"], lead["gclid"]) == ("Ada Lovelace", "ada@example.com",
                                                            "Cj0-demo")
    assert (lead["custom"], lead["ad_storage"]) == ('{"plan":"enterprise"}', True)
    assert (lead["status"], lead["source"]) == ("open", "api")
    assert leads.get_lead(created.id, fields=["status", "name"]) == {
        "id": created.id, "name": "Ada Lovelace", "status": "open"
    }
    # A mapping and keywords combine (keywords win).
    other = leads.create_lead({"name": "Grace", "rdt_cid": "r1"}, name="Grace Hopper")
    assert leads.get_lead(other.id, fields="name,rdt_cid") == {
        "id": other.id, "name": "Grace Hopper", "rdt_cid": "r1"
    }


def test_an_unknown_lead_is_not_found(leads: LeadsClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        leads.get_lead("lead_doesnotexist0000000")
    assert_api_error(caught.value, NotFoundError, 404, "NOT_FOUND")
    with pytest.raises(NotFoundError):  # escaped into one path segment, not another route
        leads.get_lead("../check")


def test_a_bad_create_names_the_field(leads: LeadsClient) -> None:
    with pytest.raises(ValidationError) as caught:
        leads.create_lead(name="Ada", favourite_colour="blue")
    assert_api_error(caught.value, ValidationError, 400, "VALIDATION_ERROR")
    assert caught.value.details == {"field": "favourite_colour"}
    assert isinstance(caught.value, BadRequestError)


def test_an_idempotency_key_replays_the_first_answer(leads: LeadsClient) -> None:
    first = leads.create_lead(name="Once", idempotency_key="contact-form-1001")
    again = leads.create_lead(name="Once", idempotency_key="contact-form-1001")
    assert (again.id, again.replayed, first.replayed) == (first.id, True, False)
    with pytest.raises(ConflictError) as caught:
        leads.create_lead(name="Someone else", idempotency_key="contact-form-1001")
    assert_api_error(caught.value, ConflictError, 409, "CONFLICT")
    # Without a key of its own each call is a new lead (its own generated key).
    a, b = leads.create_lead(name="Twin"), leads.create_lead(name="Twin")
    assert a.id != b.id and a.idempotency_key != b.idempotency_key
    assert leads.list_leads(limit=1).total == 3


# --- update, stats ------------------------------------------------------------------------


def test_update_leads(leads: LeadsClient) -> None:
    (lead_id,) = create_named(leads, ["Ada"])
    updated = leads.update_leads(id=lead_id, status="won", value=5000, alsoQualified=True)
    assert (updated.lead_id, updated.lead_ids, updated.leads_updated) == (lead_id, [lead_id], 1)
    assert updated.message == "Lead updated successfully"
    lead = leads.get_lead(lead_id)
    assert (lead["status"], lead["value"]) == ("won", 5000)
    assert lead["qualifiedAt"] is not None
    leads.update_leads({"email": "ADA@example.com"}, note="Signed")
    assert leads.get_lead(lead_id, fields="note")["note"] == "Signed"

    with pytest.raises(ValidationError) as nothing_to_change:
        leads.update_leads(id=lead_id)
    assert_api_error(nothing_to_change.value, ValidationError, 400, "VALIDATION_ERROR")
    with pytest.raises(NotFoundError):
        leads.update_leads(id="lead_doesnotexist0000000", status="won")


def test_update_of_several_leads_needs_bulk_updates(
    leads: LeadsClient, make_org: Callable[..., Organization],
    client_of: Callable[..., LeadsClient],
) -> None:
    leads.create_lead(name="One", email="same@example.com")
    leads.create_lead(name="Two", email="same@example.com")
    with pytest.raises(ConflictError) as caught:
        leads.update_leads(email="same@example.com", status="lost")
    assert_api_error(caught.value, ConflictError, 409, "CONFLICT")

    bulk = client_of(make_org(allow_bulk_updates=True))
    ids = [bulk.create_lead(name=n, email="same@example.com").id for n in ("One", "Two")]
    updated = bulk.update_leads(email="same@example.com", status="lost")
    assert (updated.leads_updated, updated.lead_ids) == (2, ids)


def test_stats(leads: LeadsClient) -> None:
    won, _open = create_named(leads, ["Won", "Open"])
    leads.update_leads(id=won, status="won", value=120.5)
    current = leads.stats()
    assert current["leads"]["total"] == 2
    assert current["leads"]["byStatus"] == {"open": 1, "qualified": 0, "won": 1, "lost": 0}
    assert current["conversion"]["totalValue"] == 120.5
    today = datetime.now(UTC).date()
    custom = leads.stats("custom", start_date=today - timedelta(days=1), end_date=today)
    assert custom["leads"]["total"] == 2
    assert custom["usage"]["periodStart"] == f"{today - timedelta(days=1)}T00:00:00.000Z"
    assert leads.stats("custom", start_date="2001-01-01", end_date="2001-01-31")[
        "leads"]["total"] == 0
    with pytest.raises(BadRequestError) as caught:
        leads.stats("custom")
    assert caught.value.details
    with pytest.raises(InvalidDateError):
        leads.stats("custom", start_date="2026-02-30", end_date="2026-03-01")


def test_a_read_only_key_reads_but_cannot_write(
    leads: LeadsClient, org: Organization, client_of: Callable[..., LeadsClient]
) -> None:
    (lead_id,) = create_named(leads, ["Ada"])
    reader = client_of(org, read_only=True)
    with pytest.raises(ForbiddenError) as caught:
        reader.create_lead(name="Not allowed")
    assert_api_error(caught.value, ForbiddenError, 403, "FORBIDDEN")
    with pytest.raises(ForbiddenError):
        reader.update_leads(id=lead_id, status="won")
    reader.check()
    assert reader.stats()["leads"]["total"] == 1
    assert [lead["id"] for lead in reader.iter_leads()] == [lead_id]
    assert reader.get_lead(lead_id)["status"] == "open"


# --- reading lists by cursor --------------------------------------------------------------

NAMES = [f"Lead {i:02d}" for i in range(23)]


def test_iter_leads_walks_every_page_by_cursor(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url) as recorder, LeadsClient(recorder.base_url, api_key) as leads:
        ids = create_named(leads, NAMES)
        recorder.seen.clear()
        walked = list(leads.iter_leads(limit=5, sort="name:asc", fields=["name"]))
        assert walked == [{"id": i, "name": n} for i, n in zip(ids, NAMES, strict=True)]
        paths = [seen.path for seen in recorder.seen]
    assert len(paths) == 5  # 23 leads, 5 a page
    first = httpx.URL(paths[0]).params
    assert (first["sort"], first["fields"], first["limit"]) == ("name:asc", "name", "5")
    assert "cursor" not in first
    for path in paths[1:]:
        params = httpx.URL(path).params
        assert sorted(params.keys()) == ["cursor", "limit"] and params["limit"] == "5"


def test_a_cursor_walk_sees_each_unchanged_lead_once_while_others_write(
    leads: LeadsClient,
) -> None:
    ids = create_named(leads, NAMES)
    walked: list[str] = []
    for n, lead in enumerate(leads.iter_leads(limit=4, sort="name:asc", fields="name")):
        walked.append(lead["id"])
        if n % 4 == 1:
            # Leads that sort before the walk's position shift every later offset page;
            # a status change moves no sort key.
            leads.create_lead(name=f"A new lead {n:02d}")
            leads.update_leads(id=ids[n], status="qualified")
    assert walked == ids


def test_list_leads_is_one_page_with_its_cursor(leads: LeadsClient) -> None:
    create_named(leads, NAMES[:7])
    page = leads.list_leads(limit=3, sort="name:desc", fields="name")
    assert [lead["name"] for lead in page.leads] == ["Lead 06", "Lead 05", "Lead 04"]
    assert (page.total, page.pagination["totalPages"], page.pagination["page"]) == (7, 3, 1)
    assert isinstance(page.next_cursor, str)
    assert page.request_id is not None and REQUEST_ID.fullmatch(page.request_id)
    following = leads.list_leads(cursor=page.next_cursor, limit=3)
    assert [lead["name"] for lead in following.leads] == ["Lead 03", "Lead 02", "Lead 01"]
    assert following.pagination["page"] is None and following.total == 7
    last = leads.list_leads(limit=3, page=3)
    assert last.next_cursor is None and len(last.leads) == 1


def test_filters_dates_and_operators_as_keywords(leads: LeadsClient) -> None:
    ids = create_named(leads, ["Ann", "Bob", "Cy"])
    leads.update_leads(id=ids[0], status="won", value=100)
    leads.update_leads(id=ids[1], status="won", value=10)
    today = datetime.now(UTC).date()
    found = leads.iter_leads(status=["won", "lost"], value__gte=50, createdAt__gte=today,
                             createdAt__lt=datetime.now(UTC) + timedelta(minutes=5),
                             gclid__exists=False, fields="name")
    assert [lead["name"] for lead in found] == ["Ann"]
    assert [lead["name"] for lead in leads.iter_leads(**{"value[lt]": 50})] == ["Bob"]
    assert [lead["id"] for lead in leads.iter_leads(search="cy@example")] == [ids[2]]


def test_bad_list_queries_are_typed_errors_naming_the_parameter(leads: LeadsClient) -> None:
    cases: list[tuple[dict[str, Any], type[LeadsApiError], str, str]] = [
        ({"status": "foo"}, InvalidFilterError, "INVALID_FILTER", "status"),
        ({"colour": "blue"}, InvalidFilterError, "INVALID_FILTER", "colour"),
        ({"sort": "nope:asc"}, ValidationError, "VALIDATION_ERROR", "sort"),
        ({"fields": "name,nope"}, ValidationError, "VALIDATION_ERROR", "fields"),
        ({"createdAt__gte": "2026-02-30"}, InvalidDateError, "INVALID_DATE", "createdAt"),
        ({"limit": 101}, ValidationError, "VALIDATION_ERROR", "limit"),
    ]
    for query, cls, code, parameter in cases:
        with pytest.raises(cls) as caught:
            list(leads.iter_leads(**query))
        assert_api_error(caught.value, cls, 400, code)
        assert caught.value.details.get("parameter", "").startswith(parameter), query
    with pytest.raises(ValidationError) as caught:
        leads.list_leads(cursor="not-a-cursor")
    assert caught.value.details == {"parameter": "cursor"}


# --- the change feed ----------------------------------------------------------------------


def changed_ids(changes: list[Change]) -> list[str]:
    return [change.lead["id"] for change in changes]


def test_iter_changes_from_the_beginning_and_resuming_from_every_token(
    leads: LeadsClient,
) -> None:
    ids = create_named(leads, [f"Feed {i:02d}" for i in range(12)])
    changes = list(leads.iter_changes(limit=5))
    assert changed_ids(changes) == ids  # oldest change first, each once

    # The token of a page's last lead is its `next`; the others resume at the page's start.
    tokens = [change.token for change in changes]
    assert tokens[:4] == [None] * 4 and tokens[4] is not None
    assert tokens[5:9] == [tokens[4]] * 4 and tokens[9] not in (None, tokens[4])
    assert tokens[10] == tokens[9] and tokens[11] not in (None, tokens[9])
    # Resuming from a lead's token repeats its page up to it (fewer than `limit` leads),
    # then everything after it: nothing is skipped.
    last_of_page = {4, 9, 11}
    for handled, token in enumerate(tokens):
        resume_at = handled + 1 if handled in last_of_page else handled - handled % 5
        resumed = changed_ids(list(leads.iter_changes(since=token, limit=5)))
        assert resumed == ids[resume_at:], handled
        assert handled + 1 - resume_at < 5
    caught_up = tokens[-1]
    assert list(leads.iter_changes(since=caught_up)) == []

    # Later changes come after that token, once each, at their latest version.
    leads.update_leads(id=ids[3], status="qualified")
    new = leads.create_lead(name="Feed new").id
    leads.update_leads(id=ids[3], status="won", value=700)
    later = list(leads.iter_changes(since=caught_up))
    assert changed_ids(later) == [new, ids[3]]
    assert (later[1].lead["status"], later[1].lead["value"]) == ("won", 700)
    assert later[-1].token is not None
    assert list(leads.iter_changes(since=later[-1].token)) == []


def test_list_changes_pages_and_filters(leads: LeadsClient) -> None:
    ids = create_named(leads, ["Ann", "Bob", "Cy"])
    leads.update_leads(id=ids[0], status="won")
    first = leads.list_changes(limit=2)
    assert (changed_ids_of(first.leads), first.has_more) == ([ids[1], ids[2]], True)
    rest = leads.list_changes(first.next, limit=2)
    assert (changed_ids_of(rest.leads), rest.has_more) == ([ids[0]], False)
    empty = leads.list_changes(rest.next)
    assert (empty.leads, empty.next, empty.has_more) == ([], rest.next, False)
    won = list(leads.iter_changes(status="won", fields=["status"]))
    assert [change.lead for change in won] == [{"id": ids[0], "status": "won"}]


def test_a_consumer_that_stops_and_resumes_misses_nothing_while_others_write(
    server: Server, api_key: str, leads: LeadsClient
) -> None:
    """A sync that stops after a few leads at random, keeps the token of the last lead it
    handled and resumes from it, while another client creates and PATCHes: once the
    writes end and it catches up, it holds every lead at its latest version."""
    ids = create_named(leads, [f"Sync {i:02d}" for i in range(30)])
    chance = random.Random(9)
    done = threading.Event()

    def write() -> None:
        pick = random.Random(7)
        with LeadsClient(server.base_url, api_key) as writer:
            try:
                for n in range(80):
                    if n % 4 == 0:
                        ids.append(writer.create_lead(name=f"Sync new {n:02d}").id)
                    else:
                        writer.update_leads(id=pick.choice(ids), value=n,
                                            status=pick.choice(["qualified", "won", "lost"]))
            finally:
                done.set()

    held: dict[str, dict[str, Any]] = {}
    token: str | None = None
    writer = threading.Thread(target=write)
    writer.start()
    try:
        while True:
            finished = done.is_set()
            stop_after = chance.randint(1, 12)
            for handled, (lead, lead_token) in enumerate(
                leads.iter_changes(since=token, limit=7), start=1
            ):
                held[lead["id"]] = lead
                token = lead_token if lead_token is not None else token
                if handled == stop_after and not finished:
                    break
            if finished:
                break
    finally:
        writer.join(timeout=60)
    current = {lead["id"]: lead for lead in leads.iter_leads()}
    assert len(current) == 50
    assert held == current


def test_a_caught_up_poll_is_asked_again_conditionally(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url) as recorder, LeadsClient(recorder.base_url, api_key) as leads:
        (lead_id,) = create_named(leads, ["Ada"])
        token = list(leads.iter_changes())[-1].token
        assert token is not None
        recorder.answered.clear()
        quiet = leads.list_changes(token)
        again = leads.list_changes(token)
        assert list(leads.iter_changes(since=token)) == []
        assert [status for _path, status in recorder.answered] == [200, 304, 304]
        assert (again.leads, again.next, again.has_more) == ([], quiet.next, False)
        assert again.request_id is not None and again.request_id != quiet.request_id

        leads.update_leads(id=lead_id, status="won")
        recorder.answered.clear()
        changed = leads.list_changes(token)
        assert [(lead["id"], lead["status"]) for lead in changed.leads] == [(lead_id, "won")]
        assert [status for path, status in recorder.answered if "changes" in path] == [200]


def changed_ids_of(found: list[dict[str, Any]]) -> list[str]:
    return [lead["id"] for lead in found]


def test_a_bad_or_foreign_feed_token_names_since(
    leads: LeadsClient, make_org: Callable[..., Organization],
    client_of: Callable[..., LeadsClient],
) -> None:
    with pytest.raises(ValidationError) as caught:
        list(leads.iter_changes(since="not-a-token"))
    assert_api_error(caught.value, ValidationError, 400, "VALIDATION_ERROR")
    assert caught.value.details == {"parameter": "since"}

    other = client_of(make_org())
    other.create_lead(name="Theirs")
    foreign = other.list_changes().next
    with pytest.raises(ValidationError) as foreign_caught:
        leads.list_changes(foreign)
    assert foreign_caught.value.details == {"parameter": "since"}
    with pytest.raises(ValidationError) as sorted_caught:
        leads.list_changes(sort="name:asc")
    assert sorted_caught.value.details == {"parameter": "sort"}


# --- retries ------------------------------------------------------------------------------


def test_503_is_retried_after_its_retry_after(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url, [UNAVAILABLE, UNAVAILABLE], retry_after="1") as proxy, \
            LeadsClient(proxy.base_url, api_key) as leads:
        created = leads.create_lead(name="Patient")
        assert proxy.actions() == [UNAVAILABLE, UNAVAILABLE, PASS]
        times = [seen.at for seen in proxy.seen]
        assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))
        assert len({seen.idempotency_key for seen in proxy.seen}) == 1
    with LeadsClient(server.base_url, api_key) as direct:
        assert [lead["id"] for lead in direct.iter_leads()] == [created.id]


def test_503_is_raised_once_the_attempts_are_spent(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url, [UNAVAILABLE] * 5, retry_after="1") as proxy, \
            LeadsClient(proxy.base_url, api_key, retry=RetryPolicy(max_attempts=2)) as leads:
        with pytest.raises(ServiceUnavailableError) as caught:
            leads.check()
        assert proxy.actions() == [UNAVAILABLE] * 2
    assert_api_error(caught.value, ServiceUnavailableError, 503, "SERVICE_UNAVAILABLE")
    assert isinstance(caught.value, ServerError)
    assert caught.value.retry_after == 1.0


def test_a_retry_after_beyond_the_limit_is_raised_at_once(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url, [UNAVAILABLE], retry_after="120") as proxy, \
            LeadsClient(proxy.base_url, api_key) as leads:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as caught:
            leads.get_lead("lead_doesnotexist0000000")
        assert time.monotonic() - started < 1.0
        assert proxy.actions() == [UNAVAILABLE]
    assert caught.value.retry_after == 120.0
    with flaky_proxy(server.base_url, [UNAVAILABLE]) as proxy, \
            LeadsClient(proxy.base_url, api_key, retry=RetryPolicy(max_attempts=1)) as once:
        with pytest.raises(ServiceUnavailableError):
            once.stats()
        assert proxy.actions() == [UNAVAILABLE]


def test_a_load_balancers_502_is_retried_and_then_a_server_error(
    server: Server, api_key: str
) -> None:
    with flaky_proxy(server.base_url, [BAD_GATEWAY]) as proxy, \
            LeadsClient(proxy.base_url, api_key, retry=FAST) as leads:
        assert leads.list_leads().total == 0
        assert proxy.actions() == [BAD_GATEWAY, PASS]
    with flaky_proxy(server.base_url, [BAD_GATEWAY] * 3) as proxy, \
            LeadsClient(proxy.base_url, api_key, retry=RetryPolicy(
                max_attempts=2, backoff_base=0.01)) as leads:
        with pytest.raises(ServerError) as caught:
            leads.check()
        assert proxy.actions() == [BAD_GATEWAY] * 2
    assert type(caught.value) is ServerError  # no envelope: the class of its status family
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (
        502, "HTTP_502", None)
    assert "502 Bad Gateway" in caught.value.message


def test_dropped_connections_are_retried(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url, [DROP, DROP]) as proxy, \
            LeadsClient(proxy.base_url, api_key, retry=FAST) as leads:
        assert leads.list_leads().total == 0
        assert proxy.actions() == [DROP, DROP, PASS]


def test_a_create_whose_answer_was_lost_is_not_made_twice(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url, [DROP_AFTER, DROP_AFTER]) as proxy, \
            LeadsClient(proxy.base_url, api_key, retry=FAST) as leads:
        created = leads.create_lead(name="Exactly once", email="once@example.com")
        assert created.replayed  # the server made it on the first try; the retry is a replay
        assert proxy.actions() == [DROP_AFTER, DROP_AFTER, PASS]
        assert {seen.idempotency_key for seen in proxy.seen} == {created.idempotency_key}
    with LeadsClient(server.base_url, api_key) as direct:
        assert [lead["id"] for lead in direct.iter_leads()] == [created.id]


def test_an_update_whose_answer_was_lost_is_retried(server: Server, api_key: str) -> None:
    with LeadsClient(server.base_url, api_key) as direct:
        (lead_id,) = create_named(direct, ["Ada"])
        with flaky_proxy(server.base_url, [DROP_AFTER]) as proxy, \
                LeadsClient(proxy.base_url, api_key, retry=FAST) as leads:
            updated = leads.update_leads(id=lead_id, status="won", value=99.5)
            assert updated.lead_ids == [lead_id]
            assert proxy.actions() == [DROP_AFTER, PASS]
        lead = direct.get_lead(lead_id, fields="status,value")
        assert (lead["status"], lead["value"]) == ("won", 99.5)


def test_no_answer_at_all_is_a_connection_error(server: Server, api_key: str) -> None:
    with flaky_proxy(server.base_url, [DROP] * 10) as proxy, \
            LeadsClient(proxy.base_url, api_key, retry=RetryPolicy(
                max_attempts=3, backoff_base=0.01)) as leads:
        with pytest.raises(LeadsConnectionError) as dropped:
            leads.check()
        assert proxy.actions() == [DROP] * 3
    assert (dropped.value.status, dropped.value.code, dropped.value.request_id) == (
        None, "CONNECTION_ERROR", None)
    assert isinstance(dropped.value.__cause__, httpx.RemoteProtocolError)
    assert "3 times" in str(dropped.value)

    nowhere = f"http://127.0.0.1:{free_port()}"
    with LeadsClient(nowhere, api_key, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)) \
            as leads, pytest.raises(LeadsConnectionError) as refused:
        leads.check()
    assert isinstance(refused.value.__cause__, httpx.ConnectError)


def test_the_client_closes_its_connections(server: Server, api_key: str) -> None:
    with LeadsClient(server.base_url, api_key) as leads:
        leads.check()
    with pytest.raises(RuntimeError):
        leads.check()


def test_the_readme_examples_run(server: Server, api_key: str, tmp_path: Path) -> None:
    """The README's "With the Python client" blocks, as written there, in order."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    part = re.split(r"\n##+ ", readme.split("\n### With the Python client\n", 1)[1])[0]
    blocks = re.findall(r"```python\n(.*?)```", part, flags=re.DOTALL)
    assert len(blocks) == 2
    with LeadsClient(server.base_url, api_key) as leads:
        ids = create_named(leads, ["Readme 1", "Readme 2"])
    for block in blocks:
        code = (block.replace('"http://127.0.0.1:8000"', repr(server.base_url))
                .replace('os.environ["LEADS_API_KEY"]', repr(api_key))
                .replace('"feed-token.txt"', repr(str(tmp_path / "feed-token.txt"))))
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    saved = (tmp_path / "feed-token.txt").read_text()
    with LeadsClient(server.base_url, api_key) as leads:
        assert list(leads.iter_changes(since=saved)) == []  # the sync caught up
        ada = [lead for lead in leads.iter_leads() if lead["name"] == "Ada Lovelace"]
        assert [(lead["status"], lead["value"]) for lead in ada] == [("won", 5000)]
        assert {lead["id"] for lead in leads.iter_leads()} == {*ids, ada[0]["id"]}
