"""The psycopg connection under a SQLAlchemy connection, for what SQLAlchemy does not offer:
COPY, and pipelines (many statements sent at once, their results awaited once).

Statements run there are part of the SQLAlchemy connection's open transaction. The raw
connection bypasses SQLAlchemy's wrapping of driver errors, so the block's psycopg errors
are wrapped as SQLAlchemy would wrap them: callers see IntegrityError / OperationalError (a
503) as for any other statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


@contextmanager
def psycopg_connection(conn: Connection, *, what: str) -> Iterator[psycopg.Connection]:
    """`conn`'s psycopg connection; `what` names the work in a wrapped error."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        yield raw
    except psycopg.Error as error:
        raise DBAPIError.instance(what, None, error, psycopg.Error, dialect=conn.dialect) from error
