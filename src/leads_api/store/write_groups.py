"""Group commit on PostgreSQL: the writers of one organization in one process share a
transaction and one commit, each in a savepoint of its own.

Every write of an organization's leads locks the organization's row until it commits (its
change position, store/tenants.py) and then its rollup rows, so writes of one organization
run one at a time, each holding the lock through its commit's WAL flush. One at a time
with a flush each caps an organization at a few hundred writes a second however many
clients there are. So, as SQLite's writers do (`SQLiteWriters` in store/engine.py):

- writers of one organization take turns on one connection, in arrival order;
- the first opens a transaction and locks the organization's row at once (`FOR UPDATE`),
  so a group holds everything it can lock only after the organization's row, like every
  other writer of it (no deadlock with another process's group, even for two creates
  with one Idempotency-Key);
- each writer runs in a SAVEPOINT, so a failing writer undoes only its own changes and
  its error reaches only its own caller;
- the rollups of the whole group move once, before its commit (`GroupRollups`): each
  writer's moves join the group's only when its savepoint is released;
- the group commits when no writer of the organization is waiting, or after GROUP_MAX
  writers or GROUP_MAX_MS, and every writer returns only after that commit: a write is
  acknowledged only once it is durable.

Writers of different organizations use different groups (different connections) and do
not wait for each other. Each process groups its own writers; processes meet at the
organization's row lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from leads_api.errors import ServiceUnavailable
from leads_api.store.rollups import ROLLUP_SINK_OPTION, RollupChanges, RollupSink
from leads_api.store.schema import organizations

# How long a writer waits for its turn before it gets a 503 (as long as for a connection).
TURN_TIMEOUT_S = 10.0


class GroupRollups:
    """The rollup moves of a group's writers: each writer's own while it runs, joined to the
    group's when its savepoint is released, all written once before the group commits."""

    def __init__(self) -> None:
        self.group: RollupSink = {}

    @contextmanager
    def writer(self, conn: Connection) -> Iterator[None]:
        """Collect the moves of one writer on `conn` (the units of work's flushes hand
        them here instead of writing them); kept only if the block ends normally."""
        own: RollupSink = {}
        conn.execution_options(**{ROLLUP_SINK_OPTION: own})
        try:
            yield
        finally:
            conn.execution_options(**{ROLLUP_SINK_OPTION: None})
        for org_id, changes in own.items():
            self.group.setdefault(org_id, RollupChanges()).merge(changes)

    def flush(self, conn: Connection) -> None:
        """Write the group's moves (on `conn`, in the group's transaction, before commit)."""
        for org_id in sorted(self.group):
            self.group[org_id].flush(conn, org_id=org_id)
        self.group.clear()


@dataclass
class _Group:
    """One transaction shared by consecutive writers of one organization."""

    conn: Connection
    transaction: sa.RootTransaction
    rollups: GroupRollups = field(default_factory=GroupRollups)
    members: int = 0
    opened: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def full(self, most: int, most_ms: int) -> bool:
        return self.members >= most or (time.monotonic() - self.opened) * 1000 >= most_ms


@dataclass
class _Turns:
    """Whose turn it is among one organization's writers of this process."""

    busy: bool = False
    waiting: deque[threading.Event] = field(default_factory=deque)
    group: _Group | None = None


class PostgresWriters:
    """The writers of this process, grouped by organization (see the module's doc)."""

    GROUP_MAX = 64
    GROUP_MAX_MS = 50

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._guard = threading.Lock()
        self._turns: dict[int, _Turns] = {}
        self.commits = 0  # groups committed (one commit each), for tests and diagnostics

    @contextmanager
    def write(self, org_id: int) -> Iterator[Connection]:
        turns = self._enter(org_id, TURN_TIMEOUT_S)
        try:
            group = turns.group or self._open_group(turns, org_id)
        except BaseException:
            self._leave(org_id, turns)
            raise
        conn = group.conn
        savepoint = conn.begin_nested()
        try:
            with group.rollups.writer(conn):
                yield conn
            savepoint.commit()  # RELEASE: part of the group's transaction now
        except BaseException:
            with suppress(exc.DBAPIError):
                if savepoint.is_active:
                    savepoint.rollback()  # this writer's changes only; the group goes on
            self._hand_over(org_id, turns, group)
            raise
        group.members += 1
        self._hand_over(org_id, turns, group)
        group.done.wait()
        if group.error is not None:
            raise ServiceUnavailable(
                "The write could not be committed; retry shortly"
            ) from group.error

    def _open_group(self, turns: _Turns, org_id: int) -> _Group:
        conn = self.engine.connect()
        try:
            transaction = conn.begin()
            conn.execute(
                sa.select(organizations.c.id)
                .where(organizations.c.id == org_id)
                .with_for_update()
            )
        except BaseException:
            conn.close()
            raise
        turns.group = _Group(conn, transaction)
        return turns.group

    def _hand_over(self, org_id: int, turns: _Turns, group: _Group) -> None:
        """After a writer's savepoint: pass the connection on to the next writer of the
        organization (who joins the group), or commit the group and let the next writer
        start a new one."""
        with self._guard:
            if turns.waiting and not group.full(self.GROUP_MAX, self.GROUP_MAX_MS):
                turns.waiting.popleft().set()
                return
        turns.group = None
        try:
            if group.members:
                group.rollups.flush(group.conn)
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
            group.done.set()
            self._leave(org_id, turns)

    def _enter(self, org_id: int, timeout_s: float) -> _Turns:
        with self._guard:
            turns = self._turns.setdefault(org_id, _Turns())
            if not turns.busy:
                turns.busy = True
                return turns
            mine = threading.Event()
            turns.waiting.append(mine)
        if mine.wait(timeout_s):
            return turns
        with self._guard:
            if mine in turns.waiting:
                turns.waiting.remove(mine)
                raise ServiceUnavailable("The database is busy with other writes; retry shortly")
        return turns  # the turn was handed over just as the wait timed out

    def _leave(self, org_id: int, turns: _Turns) -> None:
        with self._guard:
            if turns.waiting:
                turns.waiting.popleft().set()  # straight to the next in line: still busy
            else:
                turns.busy = False
                del self._turns[org_id]  # no state kept for organizations that are idle
