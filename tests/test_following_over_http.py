"""The poller experiment of the change-feed issue, over HTTP against `serve --workers 2`:
while writers PATCH, create, bulk-PATCH and import hundreds of leads stamped with one
millisecond, one reader follows the change feed and another walks cursors. The feed reader
ends up holding exactly the organization's leads, and the cursor walk saw every lead whose
sort keys never changed exactly once."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import BASE_MS
from leads_api.store import Store
from leads_api.store.unit_of_work import insert_leads
from server import run_cli, running_server

pytestmark = pytest.mark.server

SEEDED = 400
WRITES = 120
IMPORTED = 300
SHARED_EMAILS = [f"shared{i}@example.com" for i in range(5)]
DEADLINE_S = 240.0


def seed(store: Store, org_id: int) -> list[dict[str, Any]]:
    rows = [
        {
            "id": f"lead_seed{i:015d}",
            "name": f"seeded {i}",
            "email": SHARED_EMAILS[i // 10 % 5] if i % 10 == 0 else f"person{i}@example.com",
            "status": "open",
            "source": "api",
            "created_at": BASE_MS + i * 1000,
            "updated_at": BASE_MS + i * 1000,
            "expires_at": BASE_MS + i * 1000 + 90 * 86_400_000,
        }
        for i in range(SEEDED)
    ]
    with store.write() as conn:
        insert_leads(conn, org_id=org_id, rows=rows)
    return rows


class Feed(threading.Thread):
    """Follows the change feed, keeping each lead's latest version."""

    def __init__(self, http: httpx.Client, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.http, self.stop = http, stop
        self.held: dict[str, dict[str, Any]] = {}
        self.since: str | None = None
        self.error: BaseException | None = None

    def poll(self) -> bool:
        """One page; whether the feed has caught up."""
        params: dict[str, Any] = {"limit": 37}
        if self.since is not None:
            params["since"] = self.since
        response = self.http.get("/api/leads/changes", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        for lead in body["data"]:
            self.held[lead["id"]] = lead
        self.since = body["meta"]["changes"]["next"]
        return not body["meta"]["changes"]["hasMore"]

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.poll():
                    time.sleep(0.01)
        except BaseException as error:  # reported by the test
            self.error = error


class Walk(threading.Thread):
    """Walks `sort=updatedAt:asc` by cursor once, from the first page to the last."""

    def __init__(self, http: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.http = http
        self.seen: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            params: dict[str, Any] = {"sort": "updatedAt:asc", "limit": 25, "fields": "id"}
            while True:
                response = self.http.get("/api/leads", params=params)
                assert response.status_code == 200, response.text
                body = response.json()
                self.seen += [lead["id"] for lead in body["data"]]
                cursor = body["meta"]["pagination"]["nextCursor"]
                if cursor is None:
                    return
                params = {"cursor": cursor}
                time.sleep(0.02)  # slower than the writers: they overtake it many times
        except BaseException as error:
            self.error = error


def test_followers_miss_nothing_while_everything_is_written(
    store: Store, database_url: str, make_org: Any, make_key: Any, tmp_path: Path
) -> None:
    org = make_org(allow_bulk_updates=True)
    key = make_key(org)
    seeded = seed(store, org.id)
    by_email: dict[str, list[str]] = {}
    for row in seeded:
        by_email.setdefault(row["email"], []).append(row["id"])
    stamp = "2026-03-03T03:03:03.003Z"
    import_file = tmp_path / "burst.jsonl"
    import_file.write_text("".join(
        json.dumps({"name": f"imported {i}", "createdAt": stamp, "updatedAt": stamp}) + "\n"
        for i in range(IMPORTED)
    ))

    with running_server(database_url, tmp_path, workers=2) as server:
        writer_http, feed_http, walk_http = (server.client(key) for _ in range(3))
        stop = threading.Event()
        feed, walk = Feed(feed_http, stop), Walk(walk_http)
        feed.start()
        walk.start()
        rng = random.Random(9)
        changed: set[str] = set()  # leads whose updatedAt moved: the walk may see them twice
        created: list[str] = []
        importer = threading.Thread(
            target=run_cli, args=(database_url, "import", "--org", org.name, str(import_file)),
            daemon=True,
        )
        try:
            for step in range(WRITES):
                if step == WRITES // 3:
                    importer.start()
                choice = rng.random()
                if choice < 0.45:
                    lead_id = rng.choice(seeded)["id"]
                    body = {"id": lead_id, "status": rng.choice(["qualified", "won", "lost"])}
                    response = writer_http.patch("/api/leads", json=body)
                    assert response.status_code == 200, response.text
                    changed.add(lead_id)
                elif choice < 0.75:
                    response = writer_http.post("/api/leads", json={"name": f"new {step}"})
                    assert response.status_code == 201, response.text
                    created.append(response.json()["data"]["id"])
                else:
                    email = rng.choice(SHARED_EMAILS)
                    response = writer_http.patch(
                        "/api/leads", json={"email": email, "note": f"bulk {step}"}
                    )
                    assert response.status_code == 200, response.text
                    assert response.json()["data"]["leadsUpdated"] == len(by_email[email])
                    changed.update(by_email[email])
            importer.join(DEADLINE_S)
            walk.join(DEADLINE_S)
            assert not importer.is_alive() and not walk.is_alive()
        finally:
            stop.set()
            feed.join(DEADLINE_S)
        assert feed.error is None, feed.error
        assert walk.error is None, walk.error

        # Caught up after the last write: the feed holds exactly the organization's leads.
        deadline = time.monotonic() + DEADLINE_S
        while not feed.poll():
            assert time.monotonic() < deadline
        current: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {"limit": 100, "sort": "createdAt:asc"}
        while True:
            body = writer_http.get("/api/leads", params=params).json()
            current.update({lead["id"]: lead for lead in body["data"]})
            if body["meta"]["pagination"]["nextCursor"] is None:
                break
            params = {"cursor": body["meta"]["pagination"]["nextCursor"]}
        assert len(current) == SEEDED + len(created) + IMPORTED
        assert feed.held == current

        counts = Counter(walk.seen)
        unchanged = [row["id"] for row in seeded if row["id"] not in changed]
        assert unchanged, "every seeded lead was changed: the walk checks nothing"
        assert [lead_id for lead_id in unchanged if counts[lead_id] != 1] == []
        for client in (writer_http, feed_http, walk_http):
            client.close()
