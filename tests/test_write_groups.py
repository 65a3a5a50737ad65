"""Writers of one organization sharing a transaction (group commit on both databases): every
acknowledged write kept exactly once, a failing writer undoing only its own changes (its
leads, its position, its rollup moves) and its error reaching only its own caller, the
rollups exact, and the positions a gapless prefix the change feed can follow."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from conftest import lead_row
from leads_api.store import Store
from leads_api.store.schema import leads, organizations
from leads_api.store.tenants import Organization
from leads_api.store.unit_of_work import insert_leads
from test_rollups import rebuilt_snapshot, rollup_snapshot

WRITERS = 240
THREADS = 16


class Refused(Exception):
    """A writer's own failure, after it wrote."""


def stored_ids(store: Store, org_id: int) -> set[str]:
    with store.read() as conn:
        return set(conn.execute(sa.select(leads.c.id).where(leads.c.org_id == org_id)).scalars())


def grouped_writes(store: Store, org: Organization, write: Callable[[int], str | None]) -> set[str]:
    """`write(i)` for every writer, 16 at a time; the ids of the acknowledged ones."""
    with ThreadPoolExecutor(THREADS) as pool:
        return {i for i in pool.map(write, range(WRITERS)) if i is not None}


def test_grouped_writers_keep_every_acknowledged_write_and_only_those(
    store: Store, make_org: Callable[..., Organization]
) -> None:
    org = make_org()
    duplicate = lead_row(name="Stored first", status="won", value_cents=500)
    with store.write(org_id=org.id) as conn:
        insert_leads(conn, org_id=org.id, rows=[duplicate])
    errors: list[BaseException] = []
    lock = threading.Lock()

    def write(i: int) -> str | None:
        row = lead_row(name=f"Writer {i}", status=("open", "won", "lost")[i % 3], value_cents=i)
        try:
            with store.write(org_id=org.id) as conn:
                if i % 7 == 0:  # a statement the database refuses, mid-group
                    insert_leads(conn, org_id=org.id, rows=[{**duplicate, "name": f"Dup {i}"}])
                insert_leads(conn, org_id=org.id, rows=[row])
                if i % 5 == 0:
                    raise Refused(row["id"])  # after writing: its lead must not stay
        except (Refused, IntegrityError) as error:
            with lock:
                errors.append(error)
            return None
        return str(row["id"])

    acknowledged = grouped_writes(store, org, write)
    refused = [i for i in range(WRITERS) if i % 7 == 0 or i % 5 == 0]
    assert len(errors) == len(refused)
    assert len(acknowledged) == WRITERS - len(refused)
    assert stored_ids(store, org.id) == acknowledged | {duplicate["id"]}
    assert rollup_snapshot(store, org.id) == rebuilt_snapshot(store, org.id)
    with store.read() as conn:
        version = conn.execute(
            sa.select(organizations.c.data_version).where(organizations.c.id == org.id)
        ).scalar_one()
        places = [
            tuple(row)
            for row in conn.execute(
                sa.select(leads.c.change_seq, leads.c.change_ord).where(leads.c.org_id == org.id)
            )
        ]
    # Every position taken by a committed write (on PostgreSQL, one per group), none left by
    # a refused one: 1..version, no gaps; and every lead its own place in the feed's order.
    assert sorted({seq for seq, _ in places}) == list(range(1, version + 1))
    assert len(set(places)) == len(places) == len(acknowledged) + 1


def test_writers_of_two_organizations_each_keep_their_own(
    store: Store, make_org: Callable[..., Organization]
) -> None:
    orgs = [make_org(), make_org()]

    def write(i: int) -> str | None:
        org = orgs[i % 2]
        row = lead_row(name=f"Writer {i}")
        with store.write(org_id=org.id) as conn:
            insert_leads(conn, org_id=org.id, rows=[row])
        return f"{org.id}:{row['id']}"

    written = grouped_writes(store, orgs[0], write)
    for org in orgs:
        assert {f"{org.id}:{i}" for i in stored_ids(store, org.id)} == {
            w for w in written if w.startswith(f"{org.id}:")
        }
        assert rollup_snapshot(store, org.id) == rebuilt_snapshot(store, org.id)


def test_postgres_writers_of_one_organization_share_commits(
    store: Store, make_org: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's writer groups (SQLite's: tests/test_write_order.py)")
    org = make_org()
    writers = store._groups
    assert writers is not None
    monkeypatch.setattr(writers, "GROUP_MAX_MS", 60_000)  # the first writer waits long
    commits_before = writers.commits
    release = threading.Event()
    started = threading.Event()

    def first() -> None:
        with store.write(org_id=org.id) as conn:
            started.set()
            release.wait(10)  # the others queue behind this writer meanwhile
            insert_leads(conn, org_id=org.id, rows=[lead_row(name="First")])

    def later(i: int) -> None:
        with store.write(org_id=org.id) as conn:
            insert_leads(conn, org_id=org.id, rows=[lead_row(name=f"Later {i}")])

    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(first)]
        assert started.wait(10)
        futures += [pool.submit(later, i) for i in range(8)]
        while sum(len(t.waiting) for t in writers._lanes.values()) < 8:
            threading.Event().wait(0.01)
        release.set()
        for future in futures:
            future.result(timeout=30)
    assert len(stored_ids(store, org.id)) == 9
    assert writers.commits - commits_before == 1  # nine writes, one commit
    with store.read() as conn:
        places = conn.execute(
            sa.select(leads.c.name, leads.c.change_seq, leads.c.change_ord)
            .where(leads.c.org_id == org.id)
            .order_by(leads.c.change_ord)
        ).all()
    # One position for the group, taken when it opened; ordinals across its members in the
    # order they wrote.
    assert {seq for _, seq, _ in places} == {1}
    assert [ordinal for _, _, ordinal in places] == list(range(9))
    assert places[0].name == "First"
