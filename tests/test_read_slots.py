"""Reads run a few at a time per process (api/read_slots.py): the rest wait in turn.

The limiter itself with real threads; then the app's read endpoints, on both databases,
each counted as one read and never more at once than the app allows, under concurrent
requests; writes do not take a slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from leads_api.api.app import create_app
from leads_api.api.read_slots import DEFAULT_READ_THREADS, ReadSlots, read_threads_from_env
from leads_api.store import Store
from leads_api.store.tenants import Organization


def test_reads_beyond_the_slots_wait() -> None:
    slots = ReadSlots(2)

    def work(n: int) -> int:
        time.sleep(0.05)
        return n * 10

    async def main() -> list[int]:
        return list(await asyncio.gather(*(slots.run(lambda n=n: work(n)) for n in range(8))))

    begun = time.monotonic()
    assert asyncio.run(main()) == [n * 10 for n in range(8)]
    assert slots.peak == 2 and slots.ran == 8
    assert time.monotonic() - begun >= 4 * 0.05  # eight reads, two at a time


def test_one_slot_runs_reads_one_at_a_time_in_arrival_order_in_each_event_loop() -> None:
    # With one slot the next read starts only after the one before ended, so the order
    # they start in is the limiter's (two slots' reads start in threads that race).
    slots = ReadSlots(1)
    started: list[int] = []

    def work(n: int) -> None:
        started.append(n)
        time.sleep(0.01)

    async def main() -> None:
        tasks = []
        for n in range(6):
            tasks.append(asyncio.create_task(slots.run(lambda n=n: work(n))))
            await asyncio.sleep(0)  # each queued before the next
        await asyncio.gather(*tasks)

    asyncio.run(main())
    asyncio.run(main())  # a second loop gets a limiter of its own
    assert started == [*range(6), *range(6)]
    assert slots.peak == 1 and slots.ran == 12


@pytest.mark.parametrize(("raw", "size"), [
    (None, DEFAULT_READ_THREADS), ("", DEFAULT_READ_THREADS), ("5", 5), (" 3 ", 3),
    ("0", 1), ("100", 40),
])
def test_the_number_of_read_threads_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, size: int
) -> None:
    if raw is None:
        monkeypatch.delenv("LEADS_READ_THREADS", raising=False)
    else:
        monkeypatch.setenv("LEADS_READ_THREADS", raw)
    assert read_threads_from_env() == size


def test_the_read_endpoints_take_a_slot_each_and_writes_none(
    store: Store, make_org: Callable[..., Organization], make_key: Callable[..., str]
) -> None:
    app = create_app(store, read_threads=1)
    slots: ReadSlots = app.state.read_slots
    key = make_key(make_org())
    with TestClient(app, headers={"X-API-KEY": key}) as client:
        created = client.post("/api/leads", json={"name": "Slot", "email": "slot@example.com"})
        assert created.status_code == 201, created.text
        patched = client.patch("/api/leads", json={"id": created.json()["data"]["id"],
                                                   "status": "won", "value": 10})
        assert patched.status_code == 200, patched.text
        assert slots.ran == 0  # writes keep Starlette's pool
        lead_id = created.json()["data"]["id"]
        reads: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/api/leads", None),
            ("GET", "/api/leads?search=slot", None),
            ("GET", f"/api/leads/{lead_id}", None),
            ("GET", "/api/leads/changes", None),
            ("GET", "/api/check", None),
            ("POST", "/api/stats", {}),
        ]
        for count, (method, path, body) in enumerate(reads, start=1):
            answer = client.request(method, path, json=body)
            assert answer.status_code == 200, (path, answer.text)
            assert slots.ran == count, path

        def read(n: int) -> int:
            method, path, body = reads[n % len(reads)]
            return client.request(method, path, json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(read, range(48))) == {200}
    assert slots.ran == len(reads) + 48
    assert slots.peak == 1
