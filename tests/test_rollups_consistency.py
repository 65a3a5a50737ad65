"""The count rollups after a random mix of imports, creates, updates and concurrent requests
still equal a plain COUNT(*), and every total the API gives agrees with one."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.testclient import TestClient

from leads_api.fields import SOURCES
from leads_api.store import Store
from leads_api.store.tenants import Organization
from leads_api.transfer.formats import Record
from leads_api.transfer.importer import import_records
from test_rollups import ROLLUP_QUERIES, plain_count, rebuilt_snapshot, rollup_snapshot

STATUSES = ("open", "qualified", "won", "lost")
UTM = ("google", "facebook", None)
EMAILS = [f"person{i}@example.com" for i in range(12)]  # shared: PATCH by email hits several


def random_object(rng: random.Random, lead_id: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "email": rng.choice(EMAILS),
        "status": rng.choice(STATUSES),
        "source": rng.choice(SOURCES),
        "value": rng.choice([None, 0, 99.5, 100, 1234.56, 5000]),
        "utm_source": rng.choice(UTM),
        "labelId": rng.choice(["label_01", None]),
        "gclid": rng.choice(["g-1", None]),
        "fbc": rng.choice(["f-1", None]),
        "epik": rng.choice(["e-1", None]),  # the last bit of the click-ID mask
        "wbraid": rng.choice(["w-1", None, None]),
        "createdAt": f"2026-0{rng.randrange(1, 4)}-{rng.randrange(1, 28):02d}"
        f"T{rng.randrange(24):02d}:00:00.000Z",
    }
    if lead_id is not None:
        obj["id"] = lead_id
    return obj


def random_patch(rng: random.Random, ids: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = (
        {"id": rng.choice(ids)} if rng.random() < 0.6 else {"email": rng.choice(EMAILS)}
    )
    body["status"] = rng.choice(["qualified", "won", "lost"])
    if rng.random() < 0.5:
        body["value"] = rng.choice([0, 250, "99.99", 10_000])
    return body


def test_random_writes_keep_totals_exact(
    store: Store, app: Any, make_org: Any, make_key: Any
) -> None:
    org: Organization = make_org(allow_bulk_updates=True)
    key = make_key(org)
    rng = random.Random(2026)
    ids: list[str] = []

    def import_batch(count: int, *, reimport: bool) -> None:
        objects = [random_object(rng) for _ in range(count)]
        if reimport and ids:
            objects += [random_object(rng, lead_id) for lead_id in rng.sample(ids, 5)]
        report = import_records(
            store,
            org_name=org.name,
            records=[Record(line=i + 1, obj=o) for i, o in enumerate(objects)],
        )
        assert report.committed, report.problems

    def patch(client: TestClient, body: dict[str, Any]) -> None:
        response = client.patch("/api/leads", json=body)
        assert response.status_code in (200, 404), response.text

    with TestClient(app, headers={"X-API-KEY": key}) as client:
        import_batch(40, reimport=False)
        ids.extend(d["id"] for d in client.get("/api/leads?limit=100").json()["data"])
        for _ in range(30):
            choice = rng.random()
            if choice < 0.3:
                body = {k: v for k, v in random_object(rng).items()
                        if k in ("email", "utm_source", "gclid", "labelId")}
                response = client.post("/api/leads", json=body)
                assert response.status_code == 201, response.text
                ids.append(response.json()["data"]["id"])
            elif choice < 0.8:
                patch(client, random_patch(rng, ids))
            else:
                import_batch(rng.randrange(1, 10), reimport=True)

        # Concurrent creates and updates through the app's thread pool.
        bodies = [random_patch(rng, ids) for _ in range(24)]

        def worker(i: int) -> None:
            with TestClient(app, headers={"X-API-KEY": key}) as own:
                if i % 3 == 0:
                    assert own.post("/api/leads", json={"name": f"racer {i}"}).status_code == 201
                else:
                    patch(own, bodies[i])

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(worker, range(24)))

        assert rollup_snapshot(store, org.id) == rebuilt_snapshot(store, org.id)
        for query_string in ROLLUP_QUERIES:
            total = client.get(f"/api/leads?{query_string}").json()["meta"]["pagination"]["total"]
            assert total == plain_count(store, org.id, query_string), query_string
