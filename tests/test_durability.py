"""Nothing acknowledged is lost: writes that got their 201/200 survive a SIGKILL of the server.

Client threads stream writes at a real server; the server is killed mid-stream (in-flight
requests included), restarted on the same database, and every acknowledged write is read
back. Writes that were in flight may or may not have happened, but never by halves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import Server, all_leads

pytestmark = pytest.mark.server

WRITER_THREADS = 3
ACKS_BEFORE_KILL = 40
MAX_WRITES_PER_THREAD = 500
STREAM_TIMEOUT_S = 30.0


class WriteStream:
    """Threads that send writes until the server dies, recording what was acknowledged.

    `send(http, thread, i)` makes one request and returns (key, outcome) to record when the
    server acknowledged it, or raises AssertionError for an answer that is not allowed.
    """

    def __init__(
        self,
        server: Server,
        api_key: str,
        send: Callable[[httpx.Client, int, int], tuple[str, Any]],
    ) -> None:
        self.server = server
        self.api_key = api_key
        self.send = send
        self.acked: dict[str, Any] = {}
        self.attempted = 0
        self.killed = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(WRITER_THREADS)
        self._futures = [self._pool.submit(self._run, t) for t in range(WRITER_THREADS)]

    def _run(self, thread: int) -> None:
        deadline = time.monotonic() + STREAM_TIMEOUT_S
        with self.server.client(self.api_key) as http:
            for i in range(MAX_WRITES_PER_THREAD):
                if self.killed.is_set() or time.monotonic() > deadline:
                    return
                with self._lock:
                    self.attempted += 1
                try:
                    key, outcome = self.send(http, thread, i)
                except httpx.TransportError:
                    if self.killed.is_set():
                        return  # the kill cut this request: its outcome is unknown
                    raise
                with self._lock:
                    self.acked[key] = outcome

    def acks(self) -> int:
        with self._lock:
            return len(self.acked)

    def kill_server_after(self, acks: int) -> None:
        deadline = time.monotonic() + STREAM_TIMEOUT_S
        while self.acks() < acks and time.monotonic() < deadline:
            for future in self._futures:
                if future.done():
                    future.result()  # a writer that failed: show why
            time.sleep(0.005)
        assert self.acks() >= acks, f"only {self.acks()} writes acknowledged"
        self.killed.set()
        self.server.kill()
        for future in self._futures:
            future.result(timeout=STREAM_TIMEOUT_S)
        self._pool.shutdown()


def test_acknowledged_creates_survive_a_kill(
    database_url: str, api_key: str, tmp_path: Path
) -> None:
    def create(http: httpx.Client, thread: int, i: int) -> tuple[str, Any]:
        body = {"name": f"Durable {thread}-{i}", "email": f"d{thread}.{i}@example.com"}
        response = http.post("/api/leads", json=body)
        assert response.status_code == 201, response.text
        return response.json()["data"]["id"], body

    server = Server(database_url, tmp_path).start()
    try:
        stream = WriteStream(server, api_key, create)
        stream.kill_server_after(ACKS_BEFORE_KILL)
        server.start()
        with server.client(api_key) as http:
            kept = {lead["id"]: lead for lead in all_leads(http, "name,email")}
            one_id, one_body = next(iter(stream.acked.items()))
            assert http.get(f"/api/leads/{one_id}").json()["data"]["name"] == one_body["name"]
        for lead_id, body in stream.acked.items():
            assert lead_id in kept, f"acknowledged lead {lead_id} lost"
            assert (kept[lead_id]["name"], kept[lead_id]["email"]) == (body["name"], body["email"])
        assert len(stream.acked) <= len(kept) <= stream.attempted
    finally:
        server.stop()


def utc_now_text() -> str:
    """Now, in the API's timestamp format (which sorts as text)."""
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


STATUSES = ("qualified", "won", "lost")
PATCHED_LEADS = WRITER_THREADS * 60


def test_acknowledged_updates_survive_a_kill(
    database_url: str, api_key: str, add_leads: Any, tmp_path: Path
) -> None:
    rows = add_leads(*({"name": f"Patch target {n}"} for n in range(PATCHED_LEADS)))
    ids = [row["id"] for row in rows]

    def change(n: int) -> dict[str, Any]:
        return {"status": STATUSES[n % 3], "value": n + 0.5, "note": f"change {n}"}

    def update(http: httpx.Client, thread: int, i: int) -> tuple[str, Any]:
        n = thread + WRITER_THREADS * i  # each lead is changed once, by one thread
        if n >= PATCHED_LEADS:
            raise AssertionError("ran out of leads before the kill")
        response = http.patch("/api/leads", json={"id": ids[n], **change(n)})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["leadIds"] == [ids[n]]
        return ids[n], change(n)

    started = utc_now_text()
    server = Server(database_url, tmp_path).start()
    try:
        stream = WriteStream(server, api_key, update)
        stream.kill_server_after(ACKS_BEFORE_KILL)
        server.start()
        with server.client(api_key) as http:
            stored = {
                lead["id"]: lead
                for lead in all_leads(http, "status,value,note,updatedAt,qualifiedAt")
            }
        assert len(stored) == PATCHED_LEADS
        for n, lead_id in enumerate(ids):
            lead = stored[lead_id]
            state = {"status": lead["status"], "value": lead["value"], "note": lead["note"]}
            if lead_id in stream.acked:
                assert state == stream.acked[lead_id], f"acknowledged update of {n} lost"
                assert lead["updatedAt"] >= started
                assert (lead["qualifiedAt"] is not None) == (state["status"] == "qualified")
            else:  # never sent, or cut by the kill: all of the change or none of it
                untouched = {"status": "open", "value": None, "note": None}
                assert state in (untouched, change(n)), f"lead {n} half-updated: {state}"
    finally:
        server.stop()
