"""Delivery, against a real receiver on loopback that verifies every signature with the
`standardwebhooks` package: everything arrives, per lead in order, through failures,
timeouts, 429s and refused connections; 410 disables; final failures mark the
subscription failing; two deliverers never send one message at once."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from cli_support import Cli
from leads_api.store import Store, create_engine
from leads_api.store.tenants import Organization
from webhook_receiver import Received, Receiver, Reply
from webhook_support import (
    FAST,
    create_lead,
    delivering,
    eventually,
    outbox_rows,
    patch_lead,
    subscribe,
)

STATUS_PATH = ("qualified", "won")


@pytest.fixture(autouse=True)
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADS_WEBHOOK_ALLOW_PRIVATE", "1")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def burst(client: TestClient, leads: int, patches: int) -> dict[str, list[str]]:
    """Create `leads`, then PATCH each `patches` times (note n1, n2, ...; the status moves
    on the first two): the expected message types per lead, in order."""
    expected: dict[str, list[str]] = {}
    ids = [create_lead(client) for _ in range(leads)]
    for lead in ids:
        expected[lead] = ["lead.created"]
    for n in range(1, patches + 1):
        for lead in ids:
            status = STATUS_PATH[n - 1] if n <= len(STATUS_PATH) else None
            patch_lead(client, lead, note=f"n{n}", **({"status": status} if status else {}))
            expected[lead] += ["lead.updated"] + (["lead.status_changed"] if status else [])
    return expected


def assert_in_order(receiver: Receiver, expected: dict[str, list[str]]) -> None:
    """Every expected message arrived once it was accepted, and each lead's in order."""
    per_lead = receiver.per_lead()
    for lead, types in expected.items():
        arrived = _first_acceptances(per_lead.get(lead, []))
        assert [m.type for m in arrived] == types, lead
        notes = [m.body["data"]["note"] for m in arrived if m.type == "lead.updated"]
        assert notes == [f"n{i}" for i in range(1, len(notes) + 1)], lead
    assert receiver.unverified == []


def _first_acceptances(messages: list[Received]) -> list[Received]:
    seen: set[str] = set()
    first = []
    for m in messages:
        if m.id not in seen:
            seen.add(m.id)
            first.append(m)
    return first


def total(expected: dict[str, list[str]]) -> int:
    return sum(len(types) for types in expected.values())


def test_a_burst_arrives_complete_signed_and_in_order(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)
    with delivering(store):
        expected = burst(client, leads=20, patches=4)
        receiver.wait_for(total(expected))
    assert_in_order(receiver, expected)
    assert len(receiver.accepted) == total(expected)  # nothing failed, so nothing twice
    assert outbox_rows(store, hook["id"]) == []
    last = receiver.per_lead()
    for lead, messages in last.items():
        assert messages[-1].body["data"] == client.get(f"/api/leads/{lead}").json()["data"]
    log = client.get(f"/api/webhooks/{hook['id']}/deliveries?limit=100").json()["data"]
    assert len(log) == 100 and {d["outcome"] for d in log} == {"delivered"}


def test_an_import_arrives_with_the_api_writes(
    client: TestClient, store: Store, org: Organization, receiver: Receiver, cli: Cli,
    tmp_path: Path,
) -> None:
    subscribe(client, receiver, events=["lead.created", "lead.status_changed"])
    with delivering(store):
        lead = create_lead(client)
        path = tmp_path / "leads.jsonl"
        lines = [{"id": lead, "status": "lost"}, *({"name": f"n{i}"} for i in range(300))]
        path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        cli.ok("import", "--org", org.name, path)
        patch_lead(client, lead, status="won")
        arrived = receiver.wait_for(303)
    mine = [m for m in arrived if m.body["data"]["id"] == lead]
    assert [(m.type, m.body["data"]["status"]) for m in mine] == [
        ("lead.created", "open"), ("lead.status_changed", "lost"), ("lead.status_changed", "won")
    ]
    assert sum(m.type == "lead.created" for m in arrived) == 301


def test_everything_arrives_after_a_failing_receiver_recovers(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    """500s, 429 with Retry-After, answers slower than the timeout: then all is well."""
    subscribe(client, receiver)
    failures = itertools.cycle([
        Reply(status=500),
        Reply(status=429, headers={"Retry-After": "1"}),
        Reply(status=503),
        Reply(delay_s=FAST.timeout_s + 0.5),  # a timeout
        Reply(status=502),
    ])
    lock = threading.Lock()
    recovered = threading.Event()

    def flaky(_message: Received) -> Reply:
        if recovered.is_set():
            return Reply()
        with lock:
            return next(failures)

    receiver.respond = flaky
    with delivering(store):
        expected = burst(client, leads=6, patches=3)
        eventually(lambda: len(receiver.attempts) >= 20, what="20 failed attempts")
        recovered.set()
        receiver.wait_for(total(expected), timeout=30)
    assert_in_order(receiver, expected)
    assert len(receiver.attempts) >= total(expected) + 20  # it did fail, and was retried


def test_a_receiver_that_refuses_connections_gets_everything_once_it_listens(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)
    receiver.stop()
    with delivering(store):
        expected = burst(client, leads=5, patches=2)

        def errors_logged() -> bool:
            log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"]
            return any(d["error"] and "Connect" in d["error"] for d in log)

        eventually(errors_logged, what="a refused connection in the log")
        log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"]
        assert log[0]["outcome"] == "retrying" and log[0]["nextRetryAt"] is not None
        receiver.start()  # the same port again
        receiver.wait_for(total(expected), timeout=30)
    assert_in_order(receiver, expected)


def test_410_gone_disables_the_subscription_and_drops_its_messages(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)
    receiver.respond = lambda _m: Reply(status=410)
    with delivering(store):
        lead = create_lead(client)
        path = f"/api/webhooks/{hook['id']}"
        eventually(lambda: client.get(path).json()["data"]["enabled"] is False, what="disabled")
        patch_lead(client, lead, note="after")  # a disabled subscription gets no more
        time.sleep(0.3)
    assert outbox_rows(store, hook["id"]) == []
    assert [d["outcome"] for d in client.get(path + "/deliveries").json()["data"]] == ["gone"]
    assert len(receiver.attempts) == 1


def test_a_final_failure_marks_the_subscription_failing_until_a_delivery(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)
    path = f"/api/webhooks/{hook['id']}"
    receiver.respond = lambda _m: Reply(status=404)
    with delivering(store):
        create_lead(client)
        eventually(lambda: client.get(path).json()["data"]["failing"] is True, what="failing")
        assert outbox_rows(store, hook["id"]) == []  # a final failure is not retried
        receiver.respond = lambda _m: Reply()
        create_lead(client)
        eventually(lambda: client.get(path).json()["data"]["failing"] is False, what="cleared")
    outcomes = [d["outcome"] for d in client.get(path + "/deliveries").json()["data"]]
    assert outcomes == ["delivered", "failed"]


def test_retries_stop_after_the_retry_window(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)
    path = f"/api/webhooks/{hook['id']}"
    receiver.respond = lambda _m: Reply(status=500)
    with delivering(store, replace(FAST, retry_window_s=0.5)):
        create_lead(client)
        eventually(lambda: client.get(path).json()["data"]["failing"] is True, what="failing")
    log = client.get(path + "/deliveries").json()["data"]
    assert log[0]["outcome"] == "failed" and log[0]["nextRetryAt"] is None
    assert {d["outcome"] for d in log[1:]} == {"retrying"} and len(log) >= 2
    assert [d["attempt"] for d in reversed(log)] == list(range(1, len(log) + 1))
    assert outbox_rows(store, hook["id"]) == []


def test_two_deliverers_never_send_one_message_at_once(
    client: TestClient, store: Store, receiver: Receiver, database_url: str
) -> None:
    subscribe(client, receiver)
    receiver.respond = lambda _m: Reply(delay_s=0.002)  # long enough to overlap if claimed twice
    other = Store(create_engine(database_url))
    try:
        with delivering(store) as one, delivering(other) as two:
            expected = burst(client, leads=60, patches=3)
            receiver.wait_for(total(expected), timeout=60)
            time.sleep(0.3)  # anything sent twice would arrive by now
    finally:
        other.dispose()
    print("attempts by each deliverer:", one.attempted, two.attempted)
    assert one.attempted > 0 and two.attempted > 0, "both took part"
    assert receiver.overlaps == []
    assert len(receiver.accepted) == total(expected)
    assert_in_order(receiver, expected)


def test_a_slow_receiver_delays_only_its_own_subscription(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    slow = Receiver().start()
    try:
        slow.respond = lambda _m: Reply(delay_s=0.5)
        subscribe(client, slow)
        subscribe(client, receiver)
        with delivering(store):
            started = time.monotonic()
            ids = [create_lead(client) for _ in range(10)]
            for lead in ids:
                patch_lead(client, lead, note="n1")  # each lead's second message waits
            receiver.wait_for(20, timeout=10)
            fast_done = time.monotonic() - started
            assert len(slow.distinct()) < 20
            slow.wait_for(20, timeout=30)
    finally:
        slow.stop()
    assert fast_done < 3.0


def test_delivery_checks_the_address_again(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)  # allowed when subscribing (the test's environment)
    with delivering(store, allow_private=False):
        create_lead(client)

        def refused() -> bool:
            log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"]
            return bool(log) and "loopback" in (log[0]["error"] or "")

        eventually(refused, what="a refused delivery")
    assert receiver.attempts == []
