"""Work on the psycopg connection under SQLAlchemy's (COPY, pipelines: store/driver.py) is
part of the open transaction, and its errors reach callers as SQLAlchemy's, as any other
statement's would (so a refused write is the caller's error and an outage a 503)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from leads_api.errors import ServiceUnavailable
from leads_api.store import Store
from leads_api.store.driver import psycopg_connection
from leads_api.store.engine import create_engine


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    store = Store(create_engine(postgres_url))
    yield store
    store.dispose()


def test_a_refused_statement_in_a_pipeline_is_sqlalchemys_error_and_undoes_the_write(
    pg_store: Store,
) -> None:
    with pg_store.write() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS driver_probe (k int PRIMARY KEY)")
        conn.exec_driver_sql("TRUNCATE driver_probe")
    with pytest.raises(IntegrityError, match="driver_probe"), pg_store.write() as conn:
        conn.exec_driver_sql("INSERT INTO driver_probe VALUES (0)")
        with (
            psycopg_connection(conn, what="probe") as raw,
            raw.pipeline(),
            raw.cursor() as cursor,
        ):
            cursor.executemany("INSERT INTO driver_probe VALUES (%s)", [(1,), (2,), (1,)])
    with pg_store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM driver_probe")).scalar_one() == 0
    with pg_store.write() as conn:
        conn.exec_driver_sql("DROP TABLE driver_probe")


def test_pipelined_statements_are_in_the_open_transaction(pg_store: Store) -> None:
    xact = sa.text("SELECT pg_current_xact_id()::text")
    with pg_store.write() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE probe (k int)")  # dropped with the session
        before = conn.execute(xact).scalar_one()
        with psycopg_connection(conn, what="probe") as raw, raw.cursor() as cur:
            with raw.pipeline():
                cur.executemany("INSERT INTO probe VALUES (%s)", [(1,), (2,)])
                cur.execute("SELECT pg_current_xact_id()::text")
            assert cur.fetchone() == (before,)
        assert conn.execute(sa.text("SELECT sum(k) FROM probe")).scalar_one() == 3
        assert conn.execute(xact).scalar_one() == before


def test_a_connection_lost_in_a_pipeline_is_not_handed_out_again(pg_store: Store) -> None:
    """A server that drops the connection mid-pipeline: the write ends in a 503 whose cause
    is marked as a lost connection (SQLAlchemy sees the loss when the transaction rolls back
    on it), and the pool discards that connection instead of giving the next write a dead
    one."""
    with pg_store.engine.connect() as killer:
        killer.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(ServiceUnavailable) as raised, pg_store.write() as conn:
            backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            killer.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            with (
                psycopg_connection(conn, what="probe") as raw,
                raw.cursor() as cursor,
                raw.pipeline(),
            ):
                cursor.execute("SELECT 1")
    lost = raised.value.__cause__
    assert isinstance(lost, OperationalError)
    assert lost.connection_invalidated
    with pg_store.write() as conn:  # the pool's next connection is a live one
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_statements_run_without_parallel_workers_unless_the_url_says_otherwise(
    pg_store: Store, postgres_url: str
) -> None:
    """The service's sessions plan no parallel workers (engine.PG_SESSION_OPTIONS); options
    the database URL gives still apply, after it."""
    def setting(store: Store, name: str) -> str:
        with store.read() as conn:
            return str(conn.exec_driver_sql(f"SHOW {name}").scalar_one())

    assert setting(pg_store, "max_parallel_workers_per_gather") == "0"
    separator = "&" if "?" in postgres_url else "?"
    options = "-c max_parallel_workers_per_gather=1 -c statement_timeout=12345"
    own = Store(create_engine(f"{postgres_url}{separator}{urlencode({'options': options})}"))
    try:
        assert setting(own, "max_parallel_workers_per_gather") == "1"
        assert setting(own, "statement_timeout") == "12345ms"
    finally:
        own.dispose()
