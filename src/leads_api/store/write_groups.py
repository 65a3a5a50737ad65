"""Group commit: writers that would wait for each other anyway take turns on one
connection, each in a SAVEPOINT of one shared transaction, and commit together.

Writes that meet at one lock run one at a time, each holding the lock through its
commit's WAL flush (4-12 ms on this machine): one at a time with a flush each caps them at
a hundred or a few hundred a second however many clients there are. Where they meet:

- on SQLite, at the database's one write lock: every writer of the file (a *lane* of
  its own, `None`). A writer that finds the lock taken would sleep in SQLite's busy
  handler and poll (1, 2, 5 ... 100 ms apart): under a steady stream of writes it kept
  missing the moments the lock was free, and the probe saw writes wait up to 10 s;
- on PostgreSQL, at the organization's row: every write of an organization's leads locks
  it until commit (its change position, store/tenants.py), then its rollup rows. A lane
  per organization; writers of different organizations do not wait for each other.

So, per lane, within one process (`WriteGroups`):

- writers take turns in arrival order, handed from one to the next (no polling);
- the first opens the group's transaction and takes the lane's lock at once (`open_group`:
  SQLite's `BEGIN IMMEDIATE` after a file lock beside the database that the other
  processes' groups take too, so they queue in the kernel; PostgreSQL's organization
  row, so a group holds everything it can lock only after that row, like every other
  writer of the organization: no deadlock with another process's group; it takes the
  organization's change position there, one for all its members, with the subscriptions
  their webhook messages need: two round trips a writer fewer while the others wait);
- each writer runs in a SAVEPOINT, so a failing writer undoes only its own changes and
  its error reaches only its own caller (`Group.savepoint`: never released, a round trip
  saved per writer);
- but a writer that only appends new leads and reads nothing (`append_only`: a create
  without an Idempotency-Key in an organization without a monthly limit) runs no SQL in
  its turn and takes no savepoint: its rows join the group's, and the group writes them
  in one statement before the next writer's savepoint (who may read them) or at its end
  (`unit_of_work.Deferred`). Its turn is Python only. Writing the rows failing fails
  the group, as a failed commit does: every member gets 503;
- the rollups of the whole group move once, and the stored objects of the leads its
  PATCHes wrote and its webhook messages are written once, before its commit
  (`GroupFlushes`, `unit_of_work.Deferred`): each writer's rollup moves, objects and
  events (each lead's object as that writer left it) join the group's only when the
  writer ends without an error;
- the group commits when nobody of the lane is waiting, or after GROUP_MAX writers or
  GROUP_MAX_MS, and every writer returns only after that commit: a write is acknowledged
  only once it is durable, and one flush serves the whole group.

A writer that has not had its turn and opened its group within the lane's timeout (SQLite's
busy timeout; 10 s on PostgreSQL, as for a pooled connection) gets ServiceUnavailable (503).
Processes meet at the lane's lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from leads_api.errors import ServiceUnavailable
from leads_api.store.rollups import ROLLUP_SINK_OPTION, RollupChanges, RollupSink
from leads_api.store.tenants import HELD_POSITION_OPTION, hold_position
from leads_api.store.unit_of_work import APPEND_ONLY_OPTION, DEFERRED_OPTION, Deferred

# How long a PostgreSQL writer waits for its turn before it gets a 503 (as for a connection).
TURN_TIMEOUT_S = 10.0


class GroupFlushes:
    """What the units of work of a group's writers leave for the end (their rollup moves and
    their events for the write listeners, the webhook outbox): each writer's own while it
    runs, joined to the group's when the writer ends without an error, all written once
    before the group commits. Each is then a few statements for the group, not per writer."""

    def __init__(self) -> None:
        self.rollups: RollupSink = {}
        self.deferred = Deferred()

    @contextmanager
    def writer(self, conn: Connection, *, append_only: bool = False) -> Iterator[None]:
        """Collect what the units of work of one writer on `conn` flush (they hand it here
        instead of writing it; with `append_only`, their new rows too); kept only if the
        block ends normally."""
        rollups: RollupSink = {}
        deferred = Deferred()
        conn.execution_options(**{
            ROLLUP_SINK_OPTION: rollups, DEFERRED_OPTION: deferred,
            APPEND_ONLY_OPTION: append_only,
        })
        try:
            yield
        finally:
            conn.execution_options(**{
                ROLLUP_SINK_OPTION: None, DEFERRED_OPTION: None, APPEND_ONLY_OPTION: False,
            })
        for org_id, changes in rollups.items():
            self.rollups.setdefault(org_id, RollupChanges()).merge(changes)
        self.deferred.merge(deferred)

    def flush(self, conn: Connection) -> None:
        """Write the group's rollup moves, its updated leads' objects and its events, in the
        order its writers wrote (on `conn`, in the group's transaction, before commit)."""
        for org_id in sorted(self.rollups):
            self.rollups[org_id].flush(conn, org_id=org_id)
        self.rollups.clear()
        self.deferred.write(conn)


@dataclass
class Group:
    """One transaction shared by consecutive writers of a lane, holding the lane's lock."""

    conn: Connection
    transaction: sa.RootTransaction
    release: Callable[[], None] = lambda: None  # after the connection closed: outer locks
    flushes: GroupFlushes = field(default_factory=GroupFlushes)
    members: int = 0
    savepoints: int = 0
    opened: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def savepoint(self) -> str:
        """Write the rows the append-only writers before left (this writer may read them),
        then open its savepoint; its name.

        Never released: a RELEASE would cost the writer one more round trip while the
        others wait for their turn, and the commit keeps every savepoint's changes anyway.
        A failing writer rolls back to its own, which undoes what it did and nothing of
        the writers before it (their savepoints are older)."""
        try:
            self.flushes.deferred.write_rows(self.conn)
        except BaseException as error:
            self.error = error  # the rows of members that ended well: the group cannot commit
            raise ServiceUnavailable("The write could not be committed; retry shortly") from error
        self.savepoints += 1
        name = f"writer_{self.savepoints}"
        self.conn.exec_driver_sql(f"SAVEPOINT {name}")
        return name

    def full(self, most: int, most_ms: int) -> bool:
        return self.members >= most or (time.monotonic() - self.opened) * 1000 >= most_ms


@dataclass
class _Lane:
    """Whose turn it is among one lane's writers of this process."""

    busy: bool = False
    waiting: deque[threading.Event] = field(default_factory=deque)
    group: Group | None = None


# (lane, seconds left of the timeout) -> a new group, its transaction open and its lock held
GroupOpener = Callable[[Hashable, float], Group]


class WriteGroups:
    """The writers of this process, grouped by lane (see the module's doc)."""

    GROUP_MAX = 64
    GROUP_MAX_MS = 50

    def __init__(self, open_group: GroupOpener, timeout_s: Callable[[], float]) -> None:
        self._open_group = open_group
        self._timeout_s = timeout_s
        self._guard = threading.Lock()
        self._lanes: dict[Hashable, _Lane] = {}
        self.commits = 0  # groups committed (one commit each), for tests and diagnostics

    @contextmanager
    def write(self, lane: Hashable, *, append_only: bool = False) -> Iterator[Connection]:
        """The group's connection for one writer's turn. `append_only`: the writer only
        inserts new leads through a unit of work and runs no SQL of its own (see the
        module's doc); a statement it runs anyway and that fails fails the group."""
        budget_s = self._timeout_s()
        started = time.monotonic()
        turns = self._enter(lane, budget_s)
        try:
            group = turns.group or self._open(lane, turns, budget_s - (time.monotonic() - started))
        except BaseException:
            self._leave(lane, turns)
            raise
        conn = group.conn
        try:
            savepoint = None if append_only else group.savepoint()
        except BaseException:
            self._hand_over(lane, turns, group)
            raise
        try:
            with group.flushes.writer(conn, append_only=append_only):
                yield conn
        except BaseException as error:
            if savepoint is not None:
                with suppress(exc.DBAPIError):
                    # This writer's changes only; the group goes on.
                    conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
            elif isinstance(error, exc.DBAPIError):
                group.error = error  # a statement outside any savepoint failed
            self._hand_over(lane, turns, group)
            raise
        group.members += 1
        self._hand_over(lane, turns, group)
        group.done.wait()
        if group.error is not None:
            raise ServiceUnavailable(
                "The write could not be committed; retry shortly"
            ) from group.error

    def _open(self, lane: Hashable, turns: _Lane, left_s: float) -> Group:
        turns.group = self._open_group(lane, left_s)
        return turns.group

    def _hand_over(self, lane: Hashable, turns: _Lane, group: Group) -> None:
        """After a writer's savepoint: pass the connection on to the next writer of the
        lane (who joins the group), or commit the group and let the next writer start a
        new one."""
        with self._guard:
            if (
                turns.waiting
                and group.error is None
                and not group.full(self.GROUP_MAX, self.GROUP_MAX_MS)
            ):
                turns.waiting.popleft().set()
                return
        turns.group = None
        try:
            if group.members and group.error is None:
                group.flushes.flush(group.conn)
                group.transaction.commit()
                self.commits += 1
            else:
                group.transaction.rollback()
        except BaseException as error:
            group.error = error
            with suppress(exc.DBAPIError):
                if group.transaction.is_active:
                    group.transaction.rollback()
        finally:
            group.conn.close()
            group.release()
            group.done.set()
            self._leave(lane, turns)

    def _enter(self, lane: Hashable, timeout_s: float) -> _Lane:
        with self._guard:
            turns = self._lanes.setdefault(lane, _Lane())
            if not turns.busy:
                turns.busy = True
                return turns
            mine = threading.Event()
            turns.waiting.append(mine)
        if mine.wait(max(0.0, timeout_s)):
            return turns
        with self._guard:
            if mine in turns.waiting:
                turns.waiting.remove(mine)
                raise ServiceUnavailable("The database is busy with other writes; retry shortly")
        return turns  # the turn was handed over just as the wait timed out

    def _leave(self, lane: Hashable, turns: _Lane) -> None:
        with self._guard:
            if turns.waiting:
                turns.waiting.popleft().set()  # straight to the next in line: still busy
            else:
                turns.busy = False
                del self._lanes[lane]  # no state kept for lanes that are idle


def postgres_groups(engine: Engine) -> WriteGroups:
    """A lane per organization; a group locks the organization's row first, taking one
    change position for all its members' writes (store/tenants.py, `hold_position`)."""

    def open_group(org_id: Hashable, _left_s: float) -> Group:
        assert isinstance(org_id, int)
        conn = engine.connect()
        try:
            transaction = conn.begin()
            held = hold_position(conn, org_id=org_id)
            conn.execution_options(**{HELD_POSITION_OPTION: held})
        except BaseException:
            conn.close()
            raise
        return Group(conn, transaction)

    return WriteGroups(open_group, lambda: TURN_TIMEOUT_S)


def sqlite_groups(engine: Engine, busy_timeout_s: Callable[[], float]) -> WriteGroups:
    """One lane for the file; a group takes a file lock beside the database (held by one
    group of any process at a time), then SQLite's write lock. `engine`'s connections
    begin with BEGIN IMMEDIATE when their `leads_write` option is set."""
    database = engine.url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    lock_path = None if in_memory else f"{database}.write-lock"

    def open_group(_lane: Hashable, left_s: float) -> Group:
        lock = _FileLock(lock_path)
        conn = None
        try:
            conn = engine.connect().execution_options(leads_write=True)
            sqlite = conn.connection.driver_connection
            assert sqlite is not None
            # What is left of the busy timeout after the queue, for SQLite's own wait.
            sqlite.execute(f"PRAGMA busy_timeout={max(1, int(left_s * 1000))}")
            transaction = conn.begin()  # BEGIN IMMEDIATE
        except BaseException:
            if conn is not None:
                conn.close()
            lock.release()
            raise
        return Group(conn, transaction, release=lock.release)

    return WriteGroups(open_group, busy_timeout_s)


class _FileLock:
    """An exclusive flock on `path` (none for an in-memory database), taken at once.

    Held by one writer group of another process at a time, for one transaction, which
    SQLite's busy timeout bounds; released by the kernel if that process dies.
    """

    def __init__(self, path: str | None) -> None:
        self._fd: int | None = None
        if path is None:
            return
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
