"""Shared pieces of the webhook tests: a receiver fixture, an in-process deliverer, and
reading the outbox with plain SQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from leads_api.delivery.deliverer import Deliverer, DeliveryThread
from leads_api.delivery.policy import DeliveryPolicy
from leads_api.store import Store
from webhook_receiver import Receiver

# Quick retries and polls, so a test sees a few rounds of backoff in a second or two.
FAST = DeliveryPolicy(timeout_s=1.0, retry_base_s=0.05, retry_factor=2.0, poll_s=0.05)


@contextmanager
def delivering(
    store: Store, policy: DeliveryPolicy = FAST, *, allow_private: bool = True
) -> Iterator[Deliverer]:
    deliverer = Deliverer(store, policy, allow_private=allow_private)
    thread = DeliveryThread(deliverer).start()
    try:
        yield deliverer
    finally:
        thread.stop()


def subscribe(client: TestClient, receiver: Receiver, **body: Any) -> dict[str, Any]:
    """Subscribe `receiver` (which from then on verifies with the new secret)."""
    response = client.post("/api/webhooks", json={"url": receiver.url, **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    receiver.secrets.append(data["secret"])
    return data


def outbox_rows(store: Store, webhook_id: str) -> list[tuple[str, str]]:
    """(type, lead id) of the subscription's undelivered messages, in order."""
    with store.read() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT type, lead_id FROM webhook_outbox WHERE webhook_id = :w ORDER BY position"
            ),
            {"w": webhook_id},
        )
        return [(r[0], r[1]) for r in rows]


def stored_changes(store: Store, org_id: int) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM webhook_events WHERE org_id = :o"), {"o": org_id}
            ).scalar_one()
        )


def eventually(check: Callable[[], bool], *, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def create_lead(client: TestClient, **body: Any) -> str:
    response = client.post("/api/leads", json={"name": "Ada", **body})
    assert response.status_code == 201, response.text
    lead_id: str = response.json()["data"]["id"]
    return lead_id


def patch_lead(client: TestClient, lead_id: str, **body: Any) -> None:
    response = client.patch("/api/leads", json={"id": lead_id, **body})
    assert response.status_code == 200, response.text
