"""Writers of one organization sharing a transaction (group commit on both databases): every
acknowledged write kept exactly once, a failing writer undoing only its own changes (its
leads, its position, its rollup moves) and its error reaching only its own caller, the
rollups exact, and the positions a gapless prefix the change feed can follow."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from conftest import lead_row
from leads_api.errors import ServiceUnavailable
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


def _one_group(
    store: Store,
    org: Organization,
    monkeypatch: pytest.MonkeyPatch,
    writers: list[Callable[[], object]],
) -> list[object]:
    """Run `writers` in this order in one group of `org`'s lane: a first writer holds the
    turn until they all queue behind it. Each one's result or the exception it raised."""
    groups = store._groups
    assert groups is not None
    monkeypatch.setattr(groups, "GROUP_MAX_MS", 60_000)
    release, started = threading.Event(), threading.Event()

    def first() -> None:
        with store.write(org_id=org.id, append_only=True) as conn:
            started.set()
            release.wait(10)
            insert_leads(conn, org_id=org.id, rows=[lead_row(name="First")])

    def outcome(writer: Callable[[], object]) -> object:
        try:
            return writer()
        except Exception as error:  # what its caller would get
            return error

    with ThreadPoolExecutor(len(writers) + 1) as pool:
        futures = [pool.submit(outcome, first)]
        assert started.wait(10)
        for queued, writer in enumerate(writers, start=1):
            futures.append(pool.submit(outcome, writer))
            while sum(len(t.waiting) for t in groups._lanes.values()) < queued:
                threading.Event().wait(0.005)  # each queues behind the one before
        release.set()
        return [future.result(timeout=30) for future in futures][1:]


def test_append_only_writers_rows_are_read_by_the_next_writer_and_kept_in_order(
    store: Store, make_org: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Append-only writers run no SQL in their turn: their rows wait, and go in before the
    next writer that runs SQL of its own (it sees them) and at the group's end."""
    org = make_org()
    groups = store._groups
    assert groups is not None
    commits_before = groups.commits

    def append(name: str) -> Callable[[], object]:
        def writer() -> object:
            row = lead_row(name=name, email=f"{name.lower()}@example.com")
            with store.write(org_id=org.id, append_only=True) as conn:
                insert_leads(conn, org_id=org.id, rows=[row])
            return row["id"]

        return writer

    def reader() -> object:  # a writer of its own SQL (a PATCH by email reads so)
        with store.write(org_id=org.id) as conn:
            return (
                conn.execute(
                    sa.select(leads.c.name)
                    .where(
                        leads.c.org_id == org.id,
                        leads.c.email_fold.in_(["a@example.com", "b@example.com"]),
                    )
                    .order_by(leads.c.name)
                )
                .scalars()
                .all()
            )

    results = _one_group(store, org, monkeypatch, [append("A"), append("B"), reader, append("C")])
    assert results[2] == ["A", "B"]  # the rows appended before it, in its own turn
    assert groups.commits - commits_before == 1  # five writers, one commit
    with store.read() as conn:
        names = (
            conn.execute(
                sa.select(leads.c.name)
                .where(leads.c.org_id == org.id)
                .order_by(leads.c.change_seq, leads.c.change_ord)
            )
            .scalars()
            .all()
        )
    assert names == ["First", "A", "B", "C"]  # the feed's order is the order of the turns
    assert rollup_snapshot(store, org.id) == rebuilt_snapshot(store, org.id)


def _appender(store: Store, org_id: int, row: dict[str, object]) -> Callable[[], object]:
    """A writer that appends `row` (append-only) and returns its id."""

    def writer() -> object:
        with store.write(org_id=org_id, append_only=True) as conn:
            insert_leads(conn, org_id=org_id, rows=[row])
        return row["id"]

    return writer


def test_append_only_rows_the_database_refuses_fail_every_member_of_their_group(
    store: Store, make_org: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused row is found only when the group writes its rows, after its writer's turn:
    then no member of the group is acknowledged (503) and none of their writes stays."""
    org = make_org()
    stored = lead_row(name="Stored first")
    with store.write(org_id=org.id) as conn:
        insert_leads(conn, org_id=org.id, rows=[stored])

    append = partial(_appender, store, org.id)

    def reader() -> object:
        with store.write(org_id=org.id) as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(leads)).scalar_one()

    duplicate = {**lead_row(name="Duplicate"), "id": stored["id"]}
    # Found at the group's end: every member fails.
    queue = [append(lead_row(name="Ok")), append(duplicate), append(lead_row(name="After"))]
    results = _one_group(store, org, monkeypatch, queue)
    assert all(isinstance(r, ServiceUnavailable) for r in results), results
    assert stored_ids(store, org.id) == {stored["id"]}
    # Found when a writer of its own SQL takes its turn: it and the members before it fail;
    # the writer queued after it starts the next group, which commits.
    queue = [append(duplicate), reader, append(after := lead_row(name="After the reader"))]
    results = _one_group(store, org, monkeypatch, queue)
    assert isinstance(results[0], ServiceUnavailable)
    assert isinstance(results[1], ServiceUnavailable)
    assert results[2] == after["id"]
    assert stored_ids(store, org.id) == {stored["id"], after["id"]}
    assert rollup_snapshot(store, org.id) == rebuilt_snapshot(store, org.id)


def test_a_failing_statement_of_an_append_only_writer_fails_its_group(
    store: Store, make_org: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append-only writer has no savepoint to roll back to: a statement of its own that
    fails leaves the group's transaction in doubt, so no member of it is acknowledged; the
    writer queued after it starts the next group."""
    org = make_org()

    append = partial(_appender, store, org.id)

    def failing() -> object:
        with store.write(org_id=org.id, append_only=True) as conn:
            conn.exec_driver_sql("SELECT * FROM no_such_table")
        return None

    after = lead_row(name="After")
    results = _one_group(
        store, org, monkeypatch, [append(lead_row(name="Before")), failing, append(after)]
    )
    assert isinstance(results[0], ServiceUnavailable)
    assert isinstance(results[1], DBAPIError)  # its own error, to its own caller
    assert results[2] == after["id"]
    assert stored_ids(store, org.id) == {after["id"]}  # not "First", not "Before"
    assert rollup_snapshot(store, org.id) == rebuilt_snapshot(store, org.id)
