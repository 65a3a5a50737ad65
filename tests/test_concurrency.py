"""Many clients at once against a real server, with one worker and with two worker processes.

Concurrent updates of one lead: no 500s, the final state is one of the acknowledged writes,
and `updatedAt` never goes backwards. Concurrent creates: exactly as many leads as 201s.
Concurrent creates with one Idempotency-Key: exactly one lead, the same answer for all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest

from server import Server, all_leads, running_server, total_leads

pytestmark = pytest.mark.server

T = TypeVar("T")
THREADS = 6
ROUND_TIMEOUT_S = 60.0


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def server(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with running_server(
        database_url, tmp_path_factory.mktemp("server"), workers=request.param
    ) as server:
        yield server


def in_threads(threads: int, work: Callable[[int], T]) -> list[T]:
    """Run work(0..threads-1) at the same moment, each on its own thread; all results."""
    barrier = threading.Barrier(threads, timeout=ROUND_TIMEOUT_S)

    def start_together(thread: int) -> T:
        barrier.wait()
        return work(thread)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(start_together, t) for t in range(threads)]
        return [f.result(timeout=ROUND_TIMEOUT_S) for f in futures]


PATCHES_PER_THREAD = 8
STATUSES = ("qualified", "won", "lost")


def test_concurrent_updates_of_one_lead(server: Server, api_key: str) -> None:
    with server.client(api_key) as http:
        created = http.post("/api/leads", json={"name": "Contended"})
        assert created.status_code == 201, created.text
        lead_id = created.json()["data"]["id"]

    done = threading.Event()
    seen_updated_at: list[str] = []

    def watch() -> None:
        """Read the lead over and over while it is being changed."""
        with server.client(api_key) as http:
            deadline = time.monotonic() + ROUND_TIMEOUT_S
            while not done.is_set() and time.monotonic() < deadline:
                response = http.get(f"/api/leads/{lead_id}", params={"fields": "updatedAt"})
                assert response.status_code == 200, response.text
                seen_updated_at.append(response.json()["data"]["updatedAt"])

    def change(thread: int) -> list[dict[str, Any]]:
        acked = []
        with server.client(api_key) as http:
            for i in range(PATCHES_PER_THREAD):
                body = {
                    "status": STATUSES[(thread + i) % 3],
                    "value": thread * 100 + i,
                    "note": f"thread {thread} write {i}",
                }
                response = http.patch("/api/leads", json={"id": lead_id, **body})
                assert response.status_code == 200, response.text
                assert response.json()["data"]["leadIds"] == [lead_id]
                acked.append(body)
        return acked

    with ThreadPoolExecutor(1) as watcher_pool:
        watcher = watcher_pool.submit(watch)
        try:
            acked = [body for bodies in in_threads(THREADS, change) for body in bodies]
        finally:
            done.set()
        watcher.result(timeout=ROUND_TIMEOUT_S)

    with server.client(api_key) as http:
        lead = http.get(f"/api/leads/{lead_id}").json()["data"]
    final = {"status": lead["status"], "value": lead["value"], "note": lead["note"]}
    assert final in acked
    assert lead["qualifiedAt"] is not None  # some write set `qualified`; it is kept
    assert seen_updated_at, "the watcher saw nothing"
    assert seen_updated_at == sorted(seen_updated_at), "updatedAt went backwards"
    assert lead["updatedAt"] >= seen_updated_at[-1]


CREATES_PER_THREAD = 50
CREATE_THREADS = 4


def test_concurrent_creates_are_all_kept(server: Server, api_key: str) -> None:
    def create(thread: int) -> list[str]:
        ids = []
        with server.client(api_key) as http:
            for i in range(CREATES_PER_THREAD):
                response = http.post("/api/leads", json={"name": f"Lead {thread}-{i}"})
                assert response.status_code == 201, response.text
                ids.append(response.json()["data"]["id"])
        return ids

    ids = [i for chunk in in_threads(CREATE_THREADS, create) for i in chunk]
    assert len(set(ids)) == len(ids) == CREATE_THREADS * CREATES_PER_THREAD
    with server.client(api_key) as http:
        assert total_leads(http) == len(ids)
        assert sorted(lead["id"] for lead in all_leads(http, "id")) == sorted(ids)


IDEMPOTENT_ROUNDS = 4


def test_concurrent_creates_with_one_idempotency_key_create_one_lead(
    server: Server, api_key: str
) -> None:
    for round_ in range(IDEMPOTENT_ROUNDS):
        key = {"Idempotency-Key": f"race-{time.monotonic_ns()}-{round_}"}
        body = {"name": f"Only once {round_}", "email": f"once{round_}@example.com"}

        def create(_thread: int, key: dict[str, str] = key, body: Any = body) -> httpx.Response:
            with server.client(api_key) as http:
                return http.post("/api/leads", json=body, headers=key)

        responses = in_threads(THREADS, create)
        assert [r.status_code for r in responses] == [201] * THREADS, [
            r.text for r in responses
        ]
        assert len({r.json()["data"]["id"] for r in responses}) == 1
        assert len({str(r.json()["data"]) for r in responses}) == 1

        with server.client(api_key) as http:
            other = http.post("/api/leads", json={**body, "name": "Other"}, headers=key)
            assert other.status_code == 409, other.text
            assert other.json()["error"]["code"] == "CONFLICT"

    with server.client(api_key) as http:
        assert total_leads(http) == IDEMPOTENT_ROUNDS
