"""The answer cache never serves an answer the database would not give now: every writer
moves the organization's data version, and cached answers equal uncached ones after random
writes made by another process, concurrent writes, and key changes."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from conftest import lead_row
from leads_api.api.answer_cache import AnswerCache
from leads_api.api.app import create_app
from leads_api.store import Store
from leads_api.store.lead_writes import LeadChange, update_leads
from leads_api.store.rollups import ROLLUP_COLUMNS
from leads_api.store.tenants import Organization, data_version, list_keys, revoke_key
from leads_api.store.unit_of_work import insert_leads, lead_writes
from leads_api.transfer.formats import Record
from leads_api.transfer.importer import import_records
from test_rollups_consistency import random_object, random_patch

QUERIES = (
    "",
    "limit=5",
    "limit=3&page=2",
    "sort=updatedAt:desc&limit=10",
    "status=won,lost&sort=value:desc",
    "search=person1",
    "utm_source=google&fields=id,name,email,status,updatedAt",
    "value[gte]=100&sort=value",
)

MB = 1024 * 1024


# --- the cache on its own -----------------------------------------------------------------


def ask(
    cache: AnswerCache, org_id: int, query: str, version: int, fresh: bytes = b"fresh",
    *, exact: bool = True,
) -> bytes:
    return cache.answer(org_id, query, version, lambda: fresh, lambda: exact)[0]


def test_an_answer_is_served_only_at_its_version() -> None:
    cache = AnswerCache(MB)
    assert ask(cache, 1, "limit=5", 7, b"seven") == b"seven"
    assert ask(cache, 1, "limit=5", 7) == b"seven"
    assert ask(cache, 1, "limit=5", 8, b"eight") == b"eight"  # the data moved on
    assert ask(cache, 2, "limit=5", 8, b"other org") == b"other org"
    assert ask(cache, 1, "limit=6", 8, b"other query") == b"other query"
    assert ask(cache, 1, "limit=5", 8) == b"eight"
    assert ask(cache, 1, "limit=5", 7, b"late") == b"late"  # a slow request, older version
    assert ask(cache, 1, "limit=5", 8) == b"eight"  # did not replace the newer answer
    assert (cache.hits, cache.misses) == (3, 5)


def test_an_answer_computed_while_a_write_committed_is_not_kept() -> None:
    cache = AnswerCache(MB)
    assert ask(cache, 1, "", 3, b"moving", exact=False) == b"moving"
    assert ask(cache, 1, "", 3, b"again") == b"again"


def test_the_cache_stays_within_its_bytes_least_recently_used_first_out() -> None:
    cache = AnswerCache(800)  # entries up to 100 bytes
    for i in range(8):
        ask(cache, 1, f"q{i}", 1, bytes(100))
    assert ask(cache, 1, "q0", 1, b"recomputed") == bytes(100)  # now the most recently used
    ask(cache, 1, "q8", 1, bytes(100))
    assert cache.size_bytes <= 800
    assert ask(cache, 1, "q1", 1, b"recomputed") == b"recomputed"  # the oldest went first
    assert ask(cache, 1, "q0", 1, b"recomputed") == bytes(100)
    ask(cache, 1, "big", 1, bytes(101))  # larger than an eighth: never kept
    assert ask(cache, 1, "big", 1, b"recomputed") == b"recomputed"


def test_concurrent_requests_for_one_answer_compute_it_once() -> None:
    cache = AnswerCache(MB)
    calls: list[int] = []
    started = threading.Event()

    def slow() -> bytes:
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return b"shared"

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.answer, 1, "", 1, slow, lambda: False) for _ in range(8)]
        answers = [f.result() for f in futures]
    assert answers == [(b"shared", False)] * 8  # not exact: no ETag may name it
    assert len(calls) == 1  # shared even though it was not kept (a write came meanwhile)
    assert cache.shared == 7


def test_when_the_computing_request_fails_the_waiting_ones_compute_their_own() -> None:
    cache = AnswerCache(MB)
    entered = threading.Event()
    release = threading.Event()

    def failing() -> bytes:
        entered.set()
        release.wait(5)
        raise RuntimeError("the database went away")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.answer, 1, "", 1, failing, lambda: True)
        assert entered.wait(5)
        second = pool.submit(cache.answer, 1, "", 1, lambda: b"own", lambda: True)
        time.sleep(0.1)
        release.set()
        with pytest.raises(RuntimeError):
            first.result()
        assert second.result() == (b"own", True)


def test_size_zero_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADS_ANSWER_CACHE_MB", "0")
    cache = AnswerCache.from_env()
    assert not cache.enabled
    assert ask(cache, 1, "", 1, b"x") == b"x"
    assert ask(cache, 1, "", 1, b"y") == b"y"
    monkeypatch.setenv("LEADS_ANSWER_CACHE_MB", "2")
    assert AnswerCache.from_env().max_bytes == 2 * MB


# --- every writer moves the version ---------------------------------------------------------


def version(store: Store, org: Organization) -> int:
    with store.read() as conn:
        return data_version(conn, org_id=org.id)


def test_every_writer_moves_the_data_version(
    store: Store, make_org: Any, make_key: Any
) -> None:
    org: Organization = make_org(allow_bulk_updates=True)
    seen = [version(store, org)]

    def moved() -> None:
        seen.append(version(store, org))
        assert seen[-1] > seen[-2]

    row = {**dict.fromkeys(ROLLUP_COLUMNS), **lead_row(email="a@example.com", name="A")}
    with store.write() as conn:
        insert_leads(conn, org_id=org.id, rows=[row])
    moved()
    # A change that moves no count (a name) still changes answers, so it moves the version.
    change = LeadChange(
        match_field="id",
        match_value=row["id"],
        columns={"name": "B"},
        status=None,
        also_qualified=False,
        loss_reason_given=False,
        loss_reason=None,
    )
    with store.write() as conn:
        update_leads(conn, org_id=org.id, change=change, allow_bulk=True)
    moved()
    with store.write() as conn, lead_writes(conn, org_id=org.id) as writes:
        writes.replace([(row, {**row, "name": "C"})])
    moved()
    report = import_records(
        store, org_name=org.name, records=[Record(line=1, obj={"name": "imported"})]
    )
    assert report.committed
    moved()
    with TestClient(create_app(store), headers={"X-API-KEY": make_key(org)}) as client:
        assert client.post("/api/leads", json={"name": "posted"}).status_code == 201
        moved()
        won = {"id": row["id"], "status": "won"}
        assert client.patch("/api/leads", json=won).status_code == 200
        moved()


def test_a_refused_write_moves_nothing(store: Store, org: Organization, api_key: str) -> None:
    before = version(store, org)
    with TestClient(create_app(store), headers={"X-API-KEY": api_key}) as client:
        missing = {"id": "lead_nosuchlead0000", "status": "won"}
        assert client.patch("/api/leads", json=missing).status_code == 404
        assert client.post("/api/leads", json={"status": "nope"}).status_code == 400
    assert version(store, org) == before


# --- cached answers equal uncached ones ---------------------------------------------------


@contextmanager
def clients(store: Store, key: str) -> Iterator[tuple[TestClient, TestClient, TestClient]]:
    """Three processes' worth of app on one database: one caching reader, one uncached
    witness, one writer with a cache of its own."""
    reader = create_app(store, AnswerCache(8 * MB))
    witness = create_app(store, AnswerCache(0))
    writer = create_app(store, AnswerCache(8 * MB))
    headers = {"X-API-KEY": key}
    with (
        TestClient(reader, headers=headers) as r,
        TestClient(witness, headers=headers) as w,
        TestClient(writer, headers=headers) as x,
    ):
        yield r, w, x


def create_body(rng: random.Random) -> dict[str, Any]:
    obj = random_object(rng)
    body = {k: obj[k] for k in ("email", "utm_source", "gclid", "labelId")}
    return {**body, "name": rng.choice(["Ann Smith", "Bo Jones", None])}


def comparable(response: Any) -> tuple[Any, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    return body["data"], body["meta"]["pagination"]


def assert_same_answers(reader: TestClient, witness: TestClient) -> None:
    for query in QUERIES:
        assert comparable(reader.get(f"/api/leads?{query}")) == comparable(
            witness.get(f"/api/leads?{query}")
        ), query


def test_cached_answers_follow_writes_made_elsewhere(
    store: Store, make_org: Any, make_key: Any
) -> None:
    org: Organization = make_org(allow_bulk_updates=True)
    rng = random.Random(4)
    with clients(store, make_key(org)) as (reader, witness, writer):
        cache: AnswerCache = reader.app.state.answer_cache  # type: ignore[attr-defined]
        ids: list[str] = []
        for step in range(40):
            choice = rng.random()
            if choice < 0.4 or not ids:
                response = writer.post("/api/leads", json=create_body(rng))
                assert response.status_code == 201, response.text
                ids.append(response.json()["data"]["id"])
            elif choice < 0.8:
                response = writer.patch("/api/leads", json=random_patch(rng, ids))
                assert response.status_code in (200, 404), response.text
            else:
                objects = [random_object(rng, rng.choice(ids)), random_object(rng)]
                report = import_records(
                    store,
                    org_name=org.name,
                    records=[Record(line=i + 1, obj=o) for i, o in enumerate(objects)],
                )
                assert report.committed, report.problems
            if step % 4 == 0:
                assert_same_answers(reader, witness)
            assert_same_answers(reader, witness)  # the second time from the cache
        assert cache.hits >= 10 * len(QUERIES)  # at least every repeated read hit


def test_cached_answers_after_concurrent_reads_and_writes(
    store: Store, make_org: Any, make_key: Any
) -> None:
    """Readers fill the cache while writers commit; once the writers stop, every cached
    answer must be the current one (none may be kept under a version it does not match)."""
    org: Organization = make_org(allow_bulk_updates=True)
    rng = random.Random(9)
    with clients(store, make_key(org)) as (reader, witness, writer):
        ids = [
            writer.post("/api/leads", json=create_body(rng)).json()["data"]["id"]
            for _ in range(10)
        ]
        patches = [random_patch(rng, ids) for _ in range(30)]
        creates = [create_body(rng) for _ in range(10)]

        def work(i: int) -> None:
            if i % 2 == 0:
                for query in QUERIES:
                    assert reader.get(f"/api/leads?{query}").status_code == 200
            elif i % 4 == 1:
                assert writer.patch("/api/leads", json=patches[i % 30]).status_code in (200, 404)
            else:
                assert writer.post("/api/leads", json=creates[i % 10]).status_code == 201

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(work, range(60)))
        assert_same_answers(reader, witness)


def test_a_hit_has_its_own_request_id_and_checks_the_key_every_time(
    store: Store, make_org: Any, make_key: Any, add_leads: Any
) -> None:
    org: Organization = make_org()
    other: Organization = make_org()
    add_leads(lead_row(name="mine"), into=org)
    add_leads(lead_row(name="theirs"), into=other)
    app = create_app(store, AnswerCache(MB))
    key = make_key(org)
    with TestClient(app, headers={"X-API-KEY": key}) as client:
        first, second = client.get("/api/leads"), client.get("/api/leads")
        assert app.state.answer_cache.hits == 1
        assert first.json()["data"] == second.json()["data"]
        assert first.json()["meta"]["requestId"] != second.json()["meta"]["requestId"]
        assert second.headers["x-request-id"] == second.json()["meta"]["requestId"]
        assert set(second.json()["meta"]) == {"pagination", "requestId", "timestamp"}
        with TestClient(app, headers={"X-API-KEY": make_key(other)}) as theirs:
            assert [d["name"] for d in theirs.get("/api/leads").json()["data"]] == ["theirs"]
        with store.write() as conn:
            [key_id] = [k.id for k in list_keys(conn, org) if key.startswith(k.prefix)]
            revoke_key(conn, key_id)
        assert client.get("/api/leads").status_code == 401


# --- a write that commits while an answer is computed --------------------------------------


@contextmanager
def write_committed_before(store: Store, org: Organization, marker: str) -> Iterator[list[str]]:
    """While inside, the first statement on `store`'s engine whose SQL contains `marker`
    waits for a new lead of `org` to be committed on another connection first; yields the
    texts of the statements that triggered (at most one)."""
    fired: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if fired or marker not in statement or conn.engine is not store.engine:
            return
        fired.append(statement)
        with store.write(org_id=org.id) as writing:
            insert_leads(writing, org_id=org.id, rows=[lead_row(name="late")])

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield fired
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/api/leads?limit=5", "ORDER BY"),  # before the page's statement, after the count
        ("/api/leads?status=open&sort=value&limit=5", "ORDER BY"),
        ("/api/leads?search=early", "ORDER BY"),
        ("/api/leads/{id}", "FROM leads"),
    ],
)
def test_an_answer_is_exact_only_if_no_write_committed_before_its_last_statement(
    store: Store, org: Organization, api_key: str, add_leads: Any, path: str, marker: str
) -> None:
    """PostgreSQL: each statement may see a newer snapshot, so an answer whose statements
    ran across a commit is the version's of none: it has no ETag and is not kept, and the
    next request gets the new data. SQLite: the whole answer is the key lookup's snapshot,
    exact for its version, the write unseen."""
    (first,) = add_leads(lead_row(name="early", status="open", value=5))
    path = path.replace("{id}", first["id"])
    headers = {"X-API-KEY": api_key}
    with (
        TestClient(create_app(store, AnswerCache(8 * MB)), headers=headers) as client,
        TestClient(create_app(store, AnswerCache(0)), headers=headers) as witness,
    ):
        with write_committed_before(store, org, marker) as fired:
            during = client.get(path)
        assert fired, "no statement met the marker: the write was not made"
        assert during.status_code == 200, during.text
        after, now = client.get(path), witness.get(path)
        assert after.json()["data"] == now.json()["data"]  # no inexact answer was kept
        assert after.headers["ETag"] == now.headers["ETag"]
        if store.dialect == "sqlite":
            assert during.headers["ETag"] != now.headers["ETag"]  # the older version's
            assert "late" not in during.text
        else:
            assert "ETag" not in during.headers
        if "limit=5" in path:
            assert "late" in now.text
