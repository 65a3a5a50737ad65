"""Writers under contention: every acknowledged write kept, a failing writer undoing only its
own changes (on SQLite consecutive writers share one commit), and on SQLite writers of one
process served in arrival order, never waiting for readers, and within the busy timeout."""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from leads_api.errors import ServiceUnavailable
from leads_api.store import Store, create_engine
from leads_api.store.tenants import create_organization, list_organizations


class Refused(Exception):
    """A writer's own failure, after it wrote."""


def names_with(store: Store, prefix: str) -> set[str]:
    with store.read() as conn:
        return {o.name for o in list_organizations(conn) if o.name.startswith(prefix)}


def test_concurrent_writers_keep_every_acknowledged_write_and_only_those(store: Store) -> None:
    prefix = f"w-{secrets.token_hex(4)}-"

    def write(i: int) -> str | None:
        name = f"{prefix}{i}"
        try:
            with store.write() as conn:
                create_organization(conn, name)
                if i % 3 == 0:
                    raise Refused(name)  # after writing: its organization must not stay
        except Refused:
            return None
        return name

    with ThreadPoolExecutor(16) as pool:
        acknowledged = {n for n in pool.map(write, range(240)) if n is not None}
    assert len(acknowledged) == 160
    assert names_with(store, prefix) == acknowledged


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    engine = create_engine(sqlite_url)
    store = Store(engine)
    yield store
    store.dispose()


def test_sqlite_writers_of_one_process_go_in_arrival_order(sqlite_store: Store) -> None:
    prefix = f"o-{secrets.token_hex(4)}-"
    order: list[int] = []
    release = threading.Event()
    first_in = threading.Event()

    def first() -> None:
        with sqlite_store.write() as conn:
            first_in.set()
            release.wait(10)
            create_organization(conn, f"{prefix}first")

    def later(i: int) -> None:
        with sqlite_store.write() as conn:
            order.append(i)
            create_organization(conn, f"{prefix}{i}")

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert first_in.wait(10)
    for i in range(8):
        threads.append(threading.Thread(target=later, args=(i,)))
        threads[-1].start()
        time.sleep(0.05)  # each arrives after the one before has begun to wait
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == list(range(8))
    assert len(names_with(sqlite_store, prefix)) == 9


def test_a_sqlite_write_does_not_wait_for_readers(sqlite_store: Store) -> None:
    """Forty reads held open (every read connection the pool allows) do not delay a write."""
    with ExitStack() as reads:
        for _ in range(40):
            reads.enter_context(sqlite_store.read())
        started = time.monotonic()
        with sqlite_store.write() as conn:
            create_organization(conn, f"r-{secrets.token_hex(4)}")
        assert time.monotonic() - started < 1.0


def test_sqlite_writers_give_up_within_the_busy_timeout(
    sqlite_store: Store, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program holds SQLite's write lock: each queued writer gets a 503 within the
    busy timeout of its own arrival, not one timeout per writer ahead of it."""
    busy_s = 0.4
    monkeypatch.setenv("LEADS_SQLITE_BUSY_TIMEOUT_MS", str(int(busy_s * 1000)))
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        def write(i: int) -> tuple[str, float]:
            started = time.monotonic()
            try:
                with sqlite_store.write() as conn:
                    create_organization(conn, f"b-{secrets.token_hex(4)}")
            except ServiceUnavailable:
                return "503", time.monotonic() - started
            return "written", time.monotonic() - started

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(write, range(6)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [outcome for outcome, _ in outcomes] == ["503"] * 6
    assert max(seconds for _, seconds in outcomes) < busy_s + 0.5, outcomes
    with sqlite_store.write() as conn:  # and the lock is free for the next writer
        create_organization(conn, f"after-{secrets.token_hex(4)}")
