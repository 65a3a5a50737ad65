"""The transactional outbox: every change of leads writes its messages in its own
transaction (creates, PATCHes, imports), a refused or rolled-back write writes none, and
an organization without subscriptions writes nothing at all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from cli_support import Cli
from conftest import lead_row
from leads_api.store import Store, unit_of_work
from leads_api.store.rollups import ROLLUP_COLUMNS
from leads_api.store.schema import leads
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import UPDATE_CHUNK_ROWS, insert_leads, lead_writes
from leads_api.store.webhooks import create_webhook
from leads_api.webhook_input import EVENT_TYPES
from server import free_port
from test_lead_objects import assert_stored_objects_are_built_ones
from webhook_receiver import Receiver
from webhook_support import create_lead, outbox_rows, patch_lead, stored_changes, subscribe


@pytest.fixture(autouse=True)
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADS_WEBHOOK_ALLOW_PRIVATE", "1")


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(port=free_port())  # never started: these tests only read the outbox


def test_creates_and_changes_write_their_messages(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)
    lead = create_lead(client)
    assert outbox_rows(store, hook["id"]) == [("lead.created", lead)]
    patch_lead(client, lead, note="called back")
    patch_lead(client, lead, status="qualified")
    assert outbox_rows(store, hook["id"]) == [
        ("lead.created", lead),
        ("lead.updated", lead),
        ("lead.updated", lead),
        ("lead.status_changed", lead),
    ]


def test_each_subscription_gets_only_its_event_types(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    statuses = subscribe(client, receiver, events=["lead.status_changed"])
    creates = subscribe(client, receiver, events=["lead.created"])
    disabled = subscribe(client, receiver)
    assert client.patch(f"/api/webhooks/{disabled['id']}", json={"enabled": False}).is_success
    lead = create_lead(client)
    patch_lead(client, lead, note="x")
    patch_lead(client, lead, status="won")
    assert outbox_rows(store, statuses["id"]) == [("lead.status_changed", lead)]
    assert outbox_rows(store, creates["id"]) == [("lead.created", lead)]
    assert outbox_rows(store, disabled["id"]) == []


def test_refused_and_rolled_back_writes_write_nothing(
    client: TestClient, store: Store, org: Organization, receiver: Receiver
) -> None:
    hook = subscribe(client, receiver)
    assert client.patch("/api/leads", json={"id": "lead_nope1234567890123", "note": "x"})\
        .status_code == 404
    assert client.post("/api/leads", json={"name": 5, "status": "won"}).status_code == 400
    with pytest.raises(RuntimeError), store.write() as conn:
        insert_leads(conn, org_id=org.id, rows=[lead_row()])
        raise RuntimeError("roll back")
    assert outbox_rows(store, hook["id"]) == []
    assert stored_changes(store, org.id) == 0


def test_an_organization_without_subscriptions_stores_no_changes(
    client: TestClient, store: Store, org: Organization, receiver: Receiver
) -> None:
    lead = create_lead(client)
    patch_lead(client, lead, status="won")
    assert stored_changes(store, org.id) == 0
    hook = subscribe(client, receiver)
    assert client.delete(f"/api/webhooks/{hook['id']}").status_code == 204
    patch_lead(client, lead, note="after")
    assert stored_changes(store, org.id) == 0


def test_the_message_holds_the_lead_as_get_returns_it(
    client: TestClient, store: Store, receiver: Receiver
) -> None:
    subscribe(client, receiver)
    lead = create_lead(client, email="ada@example.com", gclid="Cj0", ad_storage="granted")
    patch_lead(client, lead, status="won", value=12.5)
    with store.read() as conn:
        stored = conn.execute(
            sa.text("SELECT lead FROM webhook_events WHERE lead_id = :l ORDER BY seq DESC"),
            {"l": lead},
        ).first()[0]
    assert orjson.loads(stored) == client.get(f"/api/leads/{lead}").json()["data"]


def test_an_import_fans_out_every_insert_and_update(
    client: TestClient, store: Store, org: Organization, receiver: Receiver, cli: Cli,
    tmp_path: Path,
) -> None:
    hook = subscribe(client, receiver)
    existing = [create_lead(client) for _ in range(3)]
    before = len(outbox_rows(store, hook["id"]))
    lines = [{"id": existing[0], "status": "won"}, {"id": existing[1], "note": "imported"},
             {"id": existing[2], "name": "Ada"}]  # unchanged: no message
    lines += [{"name": f"new {i}"} for i in range(250)]
    path = tmp_path / "leads.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    cli.ok("import", "--org", org.name, path)
    messages = outbox_rows(store, hook["id"])[before:]
    updates = [m for m in messages if m[1] in existing]
    assert updates == [
        ("lead.updated", existing[0]),
        ("lead.status_changed", existing[0]),
        ("lead.updated", existing[1]),
    ]
    created = [m for m in messages if m[1] not in existing]
    assert {t for t, _ in created} == {"lead.created"}
    assert len({lead for _, lead in created}) == len(created) == 250


def test_a_new_subscription_waits_for_the_writes_in_progress_and_sees_every_later_one(
    store: Store, make_org: Callable[..., Organization]
) -> None:
    """A group of writers reads the subscriptions once, when it opens (store/tenants.py,
    HeldPosition): a subscription made meanwhile must wait for that group's commit, or the
    writes acknowledged after it could go without their messages."""
    org = make_org()
    writing, release = threading.Event(), threading.Event()
    before, after = lead_row(name="Before"), lead_row(name="After")

    def write_in_progress() -> None:
        with store.write(org_id=org.id) as conn:
            insert_leads(conn, org_id=org.id, rows=[before])
            writing.set()
            release.wait(10)

    def subscribe_now() -> str:
        with store.write() as conn:
            hook, _ = create_webhook(
                conn, org_id=org.id, url="http://127.0.0.1:9/hook",
                events=["lead.created"], description=None,
            )
        return hook.id

    with ThreadPoolExecutor(2) as pool:
        writer = pool.submit(write_in_progress)
        assert writing.wait(10)
        subscription = pool.submit(subscribe_now)
        with pytest.raises(FutureTimeout):
            subscription.result(timeout=0.5)  # it waits for the write in progress
        release.set()
        writer.result(timeout=10)
        hook_id = subscription.result(timeout=10)
    with store.write(org_id=org.id) as conn:
        insert_leads(conn, org_id=org.id, rows=[after])
    assert outbox_rows(store, hook_id) == [("lead.created", after["id"])]


class Refused(Exception):
    """A writer's own failure, after it wrote."""


def test_a_writer_group_writes_the_messages_of_its_writers_that_succeeded_each_as_it_left_the_lead(
    store: Store, make_org: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group writes its writers' messages, and the objects of the leads they updated,
    once, at its end (store/write_groups.py): those of a writer that failed are gone with
    its savepoint, and each message holds the lead as its own writer left it, not as the
    group's last writer did. A PATCH of many leads writes their objects at once, each
    only onto the row version it was rendered from, so an earlier writer's object of one
    of them, written at the group's end, cannot overwrite it."""
    org = make_org()
    others = [lead_row(name=f"Other {n}") for n in range(UPDATE_CHUNK_ROWS + 50)]
    with store.write() as conn:
        hook, _ = create_webhook(conn, org_id=org.id, url="http://127.0.0.1:9/hook",
                                 events=[t.name for t in EVENT_TYPES], description=None)
        insert_leads(conn, org_id=org.id, rows=others)
    other_ids = {r["id"] for r in others}
    groups = store._groups
    assert groups is not None
    monkeypatch.setattr(groups, "GROUP_MAX_MS", 60_000)  # the first writer waits long
    commits_before = groups.commits
    first, refused, last = lead_row(name="First"), lead_row(name="Refused"), lead_row(name="C")
    started, release = threading.Event(), threading.Event()

    def create_first() -> None:
        with store.write(org_id=org.id) as conn:
            started.set()
            release.wait(10)  # the others queue behind this writer meanwhile
            insert_leads(conn, org_id=org.id, rows=[first])

    def set_status(status: str, ids: list[str]) -> None:
        with store.write(org_id=org.id) as conn, lead_writes(conn, org_id=org.id) as writes:
            writes.lock()
            matched = conn.execute(
                sa.select(leads.c.id, *(leads.c[c] for c in ROLLUP_COLUMNS))
                .where(leads.c.org_id == org.id, leads.c.id.in_(ids))
            ).mappings().all()
            writes.update(sorted((dict(m) for m in matched), key=lambda m: m["id"] != ids[0]),
                          {"status": status})

    def create_refused() -> None:
        with store.write(org_id=org.id) as conn:
            insert_leads(conn, org_id=org.id, rows=[refused])
            raise Refused()

    def create_last() -> None:
        with store.write(org_id=org.id) as conn:
            insert_leads(conn, org_id=org.id, rows=[last])

    queued = [lambda: set_status("qualified", [first["id"]]), create_refused,
              lambda: set_status("won", [first["id"], *other_ids]),  # at once: many
              create_last]
    with ThreadPoolExecutor(len(queued) + 1) as pool:
        futures = [pool.submit(create_first)]
        assert started.wait(10)
        for n, write in enumerate(queued, start=1):  # queued in this order, so run in it
            futures.append(pool.submit(write))
            while sum(len(t.waiting) for t in groups._lanes.values()) < n:
                threading.Event().wait(0.01)
        release.set()
        for future in futures:
            with suppress(Refused):
                future.result(timeout=30)
    assert groups.commits - commits_before == 1  # one group
    assert [m for m in outbox_rows(store, hook.id) if m[1] not in other_ids] == [
        ("lead.created", first["id"]),
        ("lead.updated", first["id"]), ("lead.status_changed", first["id"]),
        ("lead.updated", first["id"]), ("lead.status_changed", first["id"]),
        ("lead.created", last["id"]),
    ]
    with store.read() as conn:
        objects = conn.execute(
            sa.text("SELECT lead FROM webhook_events WHERE org_id = :o ORDER BY seq"),
            {"o": org.id},
        ).scalars().all()
    assert [(o["id"], o["status"]) for o in map(orjson.loads, objects)
            if o["id"] not in other_ids] == [
        (first["id"], "open"), (first["id"], "qualified"), (first["id"], "won"),
        (last["id"], "open"),
    ]
    # The stored objects, written at the group's end too, are the last writer's.
    assert_stored_objects_are_built_ones(store, org.id, 2 + len(others))


def test_a_long_unit_of_work_hands_its_events_on_in_runs_and_loses_none(
    store: Store, make_org: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a writer group (an import), events go to the outbox in runs of EVENT_CHUNK
    before the flush, so an import's objects are not all held to its end: every message is
    there, in the order the leads were written."""
    monkeypatch.setattr(unit_of_work, "EVENT_CHUNK", 4)
    org = make_org()
    with store.write() as conn:
        hook, _ = create_webhook(conn, org_id=org.id, url="http://127.0.0.1:9/hook",
                                 events=[t.name for t in EVENT_TYPES], description=None)
    rows = [lead_row(name=f"Imported {n}") for n in range(11)]
    stored_before_the_flush = []
    count = sa.text("SELECT count(*) FROM webhook_events WHERE org_id = :o")
    with store.bulk_write() as conn, lead_writes(conn, org_id=org.id) as writes:
        for start in range(0, len(rows), 3):
            writes.insert(rows[start : start + 3])
            stored_before_the_flush.append(conn.execute(count, {"o": org.id}).scalar_one())
    # 3 written: 3 wait; 6: a run of 6 goes; 9: 3 wait; 11: a run of 5 goes
    assert stored_before_the_flush == [0, 6, 6, 11]
    assert outbox_rows(store, hook.id) == [("lead.created", r["id"]) for r in rows]
