"""Reading leads: one page with its exact total, or one lead. Scoped to an organization."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.fields import LEAD_FIELDS, Field
from leads_api.query.model import ListQuery
from leads_api.store.schema import leads
from leads_api.store.sql import columns_for, order_by, where_clause


@dataclass(frozen=True)
class Page:
    fields: tuple[Field, ...]  # the columns of each row, in lead-object order
    rows: list[Sequence[Any]]
    total: int


def count_leads(conn: Connection, *, org_id: int, query: ListQuery) -> int:
    statement = sa.select(sa.func.count()).select_from(leads).where(
        where_clause(query, org_id=org_id, dialect=conn.dialect.name)
    )
    return int(conn.execute(statement).scalar_one())


def list_leads(conn: Connection, *, org_id: int, query: ListQuery) -> Page:
    fields = query.fields or LEAD_FIELDS
    total = count_leads(conn, org_id=org_id, query=query)
    if query.offset >= total:
        return Page(fields, [], total)  # past the end: no need to ask (nor to overflow OFFSET)
    statement = (
        sa.select(*columns_for(fields))
        .where(where_clause(query, org_id=org_id, dialect=conn.dialect.name))
        .order_by(*order_by(query))
        .limit(query.limit)
        .offset(query.offset)
    )
    return Page(fields, list(conn.execute(statement).all()), total)


def iter_leads(
    conn: Connection, *, org_id: int, query: ListQuery, batch_size: int = 2_000
) -> Any:
    """Every matching lead in full, in the query's order, streamed (for export)."""
    statement = (
        sa.select(*columns_for(LEAD_FIELDS))
        .where(where_clause(query, org_id=org_id, dialect=conn.dialect.name))
        .order_by(*order_by(query))
    )
    result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
        statement
    )
    yield from result


def get_lead(
    conn: Connection, *, org_id: int, lead_id: str, fields: tuple[Field, ...] | None = None
) -> tuple[tuple[Field, ...], Sequence[Any]] | None:
    chosen = fields or LEAD_FIELDS
    statement = sa.select(*columns_for(chosen)).where(
        leads.c.org_id == org_id, leads.c.id == lead_id
    )
    row = conn.execute(statement).first()
    return None if row is None else (chosen, row)
