"""Webhooks through real `leads-api serve` processes: the server delivers by itself, a
SIGKILL in the middle of a burst loses no acknowledged write's events (and invents none),
two serving processes never deliver one message at once, and `leads-api deliver` can run
delivery apart."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from server import Server, leads_api_command, run_cli, running_server
from webhook_receiver import Receiver, Reply

pytestmark = pytest.mark.server

# Quick polls and retries; a killed server's claims expire after 2 * timeout + 5 s.
DELIVERY_ENV = {
    "LEADS_WEBHOOK_ALLOW_PRIVATE": "1",
    "LEADS_WEBHOOK_TIMEOUT_S": "1",
    "LEADS_WEBHOOK_RETRY_BASE_S": "0.1",
    "LEADS_WEBHOOK_POLL_S": "0.05",
}
WRITERS = 3


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def subscribe(http: httpx.Client, receiver: Receiver) -> str:
    response = http.post("/api/webhooks", json={"url": receiver.url})
    assert response.status_code == 201, response.text
    receiver.secrets.append(response.json()["data"]["secret"])
    webhook_id: str = response.json()["data"]["id"]
    return webhook_id


def create(http: httpx.Client, name: str) -> str:
    response = http.post("/api/leads", json={"name": name})
    assert response.status_code == 201, response.text
    lead_id: str = response.json()["data"]["id"]
    return lead_id


def notes_per_lead(receiver: Receiver) -> dict[str, list[str | None]]:
    """Each lead's notes in the order its first-accepted messages arrived."""
    seen: set[str] = set()
    notes: dict[str, list[str | None]] = {}
    with_lock = receiver.per_lead()
    for lead, messages in with_lock.items():
        for m in messages:
            if m.id not in seen and m.type in ("lead.created", "lead.updated"):
                seen.add(m.id)
                notes.setdefault(lead, []).append(m.body["data"]["note"])
    return notes


def test_serve_delivers_api_writes_and_an_import_in_order(
    database_url: str, api_key: str, org: Any, receiver: Receiver, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path, workers=2, env=DELIVERY_ENV) as server, \
            server.client(api_key) as http:
        subscribe(http, receiver)
        ids = [create(http, f"lead {i}") for i in range(20)]
        for n in range(1, 4):
            for lead in ids:
                assert http.patch("/api/leads", json={"id": lead, "note": f"n{n}"}).is_success
        path = tmp_path / "import.jsonl"
        path.write_bytes(
            b"".join(orjson.dumps({"id": lead, "note": "n4"}) + b"\n" for lead in ids[:10])
            + b"".join(orjson.dumps({"name": f"imported {i}"}) + b"\n" for i in range(100))
        )
        run_cli(database_url, "import", "--org", org.name, str(path))
        expected = 20 * 4 + 10 + 100
        receiver.wait_for(expected, timeout=60)
    notes = notes_per_lead(receiver)
    for lead in ids:
        assert notes[lead] == [None, "n1", "n2", "n3", *(["n4"] if lead in ids[:10] else [])]
    assert receiver.unverified == [] and receiver.overlaps == []


def test_a_sigkill_mid_burst_loses_no_acknowledged_event(
    database_url: str, api_key: str, receiver: Receiver, tmp_path: Path
) -> None:
    server = Server(database_url, tmp_path, env=DELIVERY_ENV).start()
    acked: dict[str, list[str | None]] = {}  # lead -> acknowledged notes, in order
    lock = threading.Lock()
    killed = threading.Event()

    def write(thread: int) -> None:
        with server.client(api_key) as http:
            for i in range(400):
                try:
                    lead = create(http, f"t{thread}-{i}")
                    with lock:
                        acked[lead] = [None]
                    response = http.patch("/api/leads", json={"id": lead, "note": f"n{i}"})
                    assert response.status_code == 200, response.text
                    with lock:
                        acked[lead].append(f"n{i}")
                except httpx.TransportError:
                    assert killed.is_set()
                    return

    receiver.respond = lambda _m: Reply(delay_s=0.02)  # so some are in flight at the kill
    try:
        with server.client(api_key) as http:
            subscribe(http, receiver)
        threads = [threading.Thread(target=write, args=(t,)) for t in range(WRITERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(receiver.distinct()) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)  # delivery is under way when the kill comes
        killed.set()
        server.kill()
        for t in threads:
            t.join(30)
        server.start()
        with lock:
            wanted = sum(len(notes) for notes in acked.values())
        receiver.wait_for(wanted, timeout=60)

        def all_arrived() -> bool:
            notes = notes_per_lead(receiver)
            return all(notes.get(lead, [])[: len(n)] == n for lead, n in acked.items())

        deadline = time.monotonic() + 30
        while not all_arrived() and time.monotonic() < deadline:
            time.sleep(0.05)
        notes = notes_per_lead(receiver)
        for lead, expected in acked.items():  # each acknowledged write's event, in order
            assert notes.get(lead, [])[: len(expected)] == expected, lead
        with server.client(api_key) as http:  # and no event of a write that did not happen
            for lead in notes:
                assert http.get(f"/api/leads/{lead}").status_code == 200
    finally:
        server.stop()
    assert receiver.unverified == []


def test_two_serving_processes_never_deliver_one_message_at_once(
    database_url: str, api_key: str, receiver: Receiver, tmp_path: Path
) -> None:
    first = Server(database_url, tmp_path / "a", env=DELIVERY_ENV)
    second = Server(database_url, tmp_path / "b", env=DELIVERY_ENV)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first.start()
    second.start()
    try:
        with first.client(api_key) as one, second.client(api_key) as two:
            subscribe(one, receiver)
            ids = [create(one if i % 2 else two, f"lead {i}") for i in range(150)]
            for lead in ids:
                assert two.patch("/api/leads", json={"id": lead, "note": "n1"}).is_success
        receiver.wait_for(300, timeout=60)
        time.sleep(0.5)
    finally:
        first.stop()
        second.stop()
    assert receiver.overlaps == []
    assert len(receiver.accepted) == 300  # no failures, so each message exactly once
    assert all(notes == [None, "n1"] for notes in notes_per_lead(receiver).values())


def test_deliver_runs_delivery_apart_from_serve(
    database_url: str, api_key: str, receiver: Receiver, tmp_path: Path
) -> None:
    quiet = {**DELIVERY_ENV, "LEADS_WEBHOOK_DELIVERY": "0"}
    with running_server(database_url, tmp_path, env=quiet) as server, \
            server.client(api_key) as http:
        subscribe(http, receiver)
        ids = [create(http, f"lead {i}") for i in range(5)]
        time.sleep(0.5)
        assert receiver.attempts == []  # this server does not deliver
        with open(tmp_path / "deliver.log", "wb") as log:
            deliverer = subprocess.Popen(
                [*leads_api_command(), "deliver"],
                env={**os.environ, **DELIVERY_ENV, "LEADS_DATABASE_URL": database_url},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            arrived = receiver.wait_for(5, timeout=30)
        finally:
            deliverer.send_signal(signal.SIGTERM)
            code = deliverer.wait(timeout=20)
        assert code == 0, (tmp_path / "deliver.log").read_text()
    assert {m.body["data"]["id"] for m in arrived} == set(ids)
