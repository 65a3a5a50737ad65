"""Opening the store: the URL, per-dialect connection setup, and transactions.

`Store.read()` and `Store.write()` are the only ways code gets a connection. They turn a
database that cannot be reached (or an SQLite file that stays locked) into
ServiceUnavailable, so a driver error never reaches a client.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import Connection, Engine

from leads_api.errors import ServiceUnavailable, UsageError
from leads_api.store.write_groups import WriteGroups, postgres_groups, sqlite_groups

DEFAULT_DATABASE_URL = "sqlite:///./leads.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
DEFAULT_CACHE_KIB = 2_000  # SQLite's own default page cache
BULK_LOAD_CACHE_KIB = 256 * 1024
# A PostgreSQL server that does not answer (host down, packets dropped) must turn into a
# 503 within seconds, not hang a request for the OS's TCP timeout.
PG_CONNECT_TIMEOUT_S = 5
# No parallel workers for one statement: the service runs many small statements at once,
# and the cores a statement's workers would take are other requests'. The planner chose
# them on estimates it cannot make (a click-ID bit test): a rare pair's page forked two
# workers to walk the created index. Measured at a million leads, fresh Q5 with 32
# clients, 6 s runs alternated: 157-200 req/s with them, 236-290 without (Q2, Q7, Q9 the
# same within the runs' spread). Options the database URL gives come after, and win.
PG_SESSION_OPTIONS = "-c max_parallel_workers_per_gather=0"


def database_url_from_env() -> str:
    return os.environ.get("LEADS_DATABASE_URL") or DEFAULT_DATABASE_URL


def normalise_url(url: str) -> sa.URL:
    """Accept `postgresql://` and `postgres://` and pick the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError:
        raise UsageError(f"LEADS_DATABASE_URL is not a URL: {_BAD_URL_HINT}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UsageError(
            f"LEADS_DATABASE_URL names an unsupported database "
            f"({parsed.get_backend_name()!r}): {_BAD_URL_HINT}"
        )
    return parsed


_BAD_URL_HINT = "use sqlite:///path/to/file.db or postgresql://user@host:5432/db"


def describe_database_error(error: BaseException, url: str) -> str:
    """One line for a person: what went wrong reaching the database at `url` (shown
    without its password), and what to do about it. Never a traceback."""
    cause = error.__cause__ if isinstance(error, ServiceUnavailable) else error
    raw = str(getattr(cause, "orig", None) or cause)
    reason = " ".join(raw.splitlines()[0].replace("connection failed: ", "").split())
    try:
        normalise_url(url)
        shown = sa.make_url(url).render_as_string(hide_password=True)
    except (UsageError, exc.ArgumentError):
        shown = "LEADS_DATABASE_URL"
    lowered = reason.lower()
    if "database" in lowered and "does not exist" in lowered:
        hint = "create it (createdb) or fix LEADS_DATABASE_URL"
    elif "password" in lowered or "role" in lowered or "authentication" in lowered:
        hint = "check the user and password in LEADS_DATABASE_URL"
    elif "unable to open" in lowered:
        hint = "does the SQLite file's folder exist, and may this user write there?"
    else:
        hint = "is the database server running and reachable? (LEADS_DATABASE_URL)"
    return f"Cannot use the database at {shown}: {reason}; {hint}"


def create_engine(url: str) -> Engine:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    given = parsed.query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    connect_args["options"] = f"{PG_SESSION_OPTIONS} {given}" if given else PG_SESSION_OPTIONS
    return sa.create_engine(
        parsed,
        connect_args=connect_args,
        # No overflow: a connection opened beyond the pool is closed again when returned, and
        # under steady load that churn (a new server process each time) was measured to
        # triple the slowest 1 % of latencies. A request that finds all in use waits.
        pool_size=pool_size(),
        max_overflow=0,
        # No pre-ping: it costs a round trip on every request. A connection the server
        # dropped fails its first statement instead: that request gets a 503, and the pool
        # replaces every connection older than the failure (see _unavailable_as_503).
        pool_timeout=10,
    )


def group_commit_enabled() -> bool:
    """Whether PostgreSQL writers of one organization commit in groups
    (LEADS_PG_GROUP_COMMIT, default on; 0 turns it off)."""
    return os.environ.get("LEADS_PG_GROUP_COMMIT", "1").strip().lower() not in ("0", "off", "false")


def pool_size() -> int:
    """Connections each process keeps open (LEADS_DB_POOL_SIZE, default 20)."""
    return max(1, min(40, int(os.environ.get("LEADS_DB_POOL_SIZE") or 20)))


def sqlite_busy_timeout_ms() -> int:
    """How long a writer waits for SQLite's write lock before the request gets a 503."""
    return int(os.environ.get("LEADS_SQLITE_BUSY_TIMEOUT_MS") or SQLITE_BUSY_TIMEOUT_MS)


class _SQLiteCompiler(SQLiteCompiler):
    """SQLite's compiler, rendering table hints: `with_hint(leads, "INDEXED BY ...")`
    becomes `FROM leads INDEXED BY ...` (SQLAlchemy's own SQLite compiler drops them)."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


def _sqlite_engine(url: sa.URL, *, connections: int | None = None) -> Engine:
    busy_ms = sqlite_busy_timeout_ms()
    # Up to one connection per request thread (Starlette's pool has 40): WAL readers run in
    # parallel, and a request should wait for SQLite, not for a pooled connection.
    size = pool_size() if connections is None else connections
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
        pool_size=size,
        max_overflow=40 - size if connections is None else 0,
        pool_timeout=busy_ms / 1000,
    )
    engine.dialect.statement_compiler = _SQLiteCompiler

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, below, emit BEGIN itself (pysqlite's own
        # transaction handling would defer it and could not ask for IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it is acknowledged, even if the machine stops.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later tries to
        # upgrade its read lock fails at once with SQLITE_BUSY instead of waiting.
        immediate = conn.get_execution_options().get("leads_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """The database behind the service: an engine plus the two ways to use it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Writers that would wait for each other take turns and commit in groups
        # (store/write_groups.py): on SQLite every writer, on connections of their own so
        # that a write never waits for a connection that readers hold; on PostgreSQL the
        # writers of one organization, when the write names it.
        self._groups: WriteGroups | None = None
        self._sqlite_writer_engine: Engine | None = None
        if engine.dialect.name == "sqlite":
            # One connection at a time is in use; the second serves an import
            # (bulk_write) that runs beside a write in the same process.
            self._sqlite_writer_engine = _sqlite_engine(engine.url, connections=2)
            self._groups = sqlite_groups(
                self._sqlite_writer_engine, lambda: sqlite_busy_timeout_ms() / 1000
            )
        elif group_commit_enabled():
            self._groups = postgres_groups(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection to read with. On PostgreSQL each statement sees the data committed
        when it starts, as in a READ COMMITTED transaction, but without the BEGIN and
        COMMIT round trips (autocommit); on SQLite the reads share one snapshot."""
        with _unavailable_as_503(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
            else:
                with conn.begin():
                    yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction whose statements all see one snapshot (an export), which
        PostgreSQL server-side cursors also need."""
        with _unavailable_as_503(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def write(
        self, *, org_id: int | None = None, append_only: bool = False
    ) -> Iterator[Connection]:
        """A write transaction: committed when the block ends without an exception. On
        SQLite, writers of this process take turns in arrival order and consecutive ones
        share one commit, each in a savepoint of its own; on PostgreSQL, so do the writers
        that name the one organization whose leads they change (`org_id`); others get a
        transaction of their own (store/write_groups.py). `append_only`: the block only
        inserts new leads through a unit of work and reads nothing, so in a group its rows
        may wait for the group's next statement (lead_writes.create_appends_only)."""
        on_sqlite = self._sqlite_writer_engine is not None
        if self._groups is not None and (on_sqlite or org_id is not None):
            lane = None if on_sqlite else org_id
            with _unavailable_as_503(), self._groups.write(lane, append_only=append_only) as conn:
                yield conn
            return
        with self._transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def _transaction(self, engine: Engine, *, busy_ms: int | None = None) -> Iterator[Connection]:
        with _unavailable_as_503(), engine.connect() as conn:
            if busy_ms is not None:  # what is left of the busy timeout after the queue
                sqlite = conn.connection.driver_connection
                assert sqlite is not None
                sqlite.execute(f"PRAGMA busy_timeout={busy_ms}")
            conn = conn.execution_options(leads_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def bulk_write(self) -> Iterator[Connection]:
        """A write transaction for many leads (an import). SQLite gets a large page cache
        for it: a bulk load inserts into every index at random places, and re-reading
        evicted index pages was measured at a fifth of the load's time (300,000 leads).

        It does not queue with other writers: it holds SQLite's write lock for as long as
        the import runs, and writers elsewhere should meet SQLite's busy timeout (a 503)
        rather than wait in a queue behind it."""
        if self._sqlite_writer_engine is None:
            transaction = self._transaction(self.engine)
        else:
            transaction = self._transaction(
                self._sqlite_writer_engine, busy_ms=sqlite_busy_timeout_ms()
            )
        with transaction as conn:
            if self.dialect != "sqlite":
                yield conn
                return
            conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_LOAD_CACHE_KIB}")
            try:
                yield conn
            finally:
                with suppress(exc.DBAPIError):  # the connection may be what failed
                    conn.exec_driver_sql(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._sqlite_writer_engine is not None:
            self._sqlite_writer_engine.dispose()


@contextmanager
def _unavailable_as_503() -> Iterator[None]:
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as error:
        if not _is_unavailability(error):
            raise  # a statement the database refused: a bug, not an outage (500)
        raise ServiceUnavailable(
            "The database is unavailable right now; retry shortly"
        ) from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise ServiceUnavailable(
                "The database connection was lost; retry shortly"
            ) from error
        raise
    except exc.TimeoutError as error:  # no pooled connection became free in time
        raise ServiceUnavailable("The database is busy; retry shortly") from error


# SQLite reports a locked or unreadable file and a statement it cannot run alike, as
# OperationalError; only the first kind means "try again later".
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "readonly", "full")


def _is_unavailability(error: exc.DBAPIError) -> bool:
    if error.connection_invalidated or isinstance(error, exc.InterfaceError):
        return True
    if type(error.orig).__module__.startswith("sqlite3"):
        message = str(error.orig).lower()
        return any(word in message for word in _SQLITE_UNAVAILABLE)
    return True  # PostgreSQL's OperationalError: connection trouble, server shutting down
