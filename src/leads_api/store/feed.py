"""The change feed: an organization's leads in the order they last changed. Scoped to an
organization.

Every write stamps the leads it creates or changes with its change position (`change_seq`,
the organization's data version it took, see store/unit_of_work.py), and writers of one
organization take positions one after the other, each only once the one before has
committed. So the positions a reader can see are always all positions up to some point:
reading `(change_seq, id) > since` in order, and continuing after the last lead read, never
skips a lead, whatever commits meanwhile, on either database. A lead changed again moves to
its new position, so it comes once, at its latest version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leads_api.fields import LEAD_FIELDS, Field
from leads_api.query.model import ChangesQuery, FeedPosition
from leads_api.store.schema import CHANGE_SEQ_COLUMN, leads
from leads_api.store.sql import columns_for, where_clause

_SEQ = leads.c[CHANGE_SEQ_COLUMN]


@dataclass(frozen=True)
class ChangesPage:
    fields: tuple[Field, ...]
    rows: list[Sequence[Any]]
    next: FeedPosition  # after the last lead of the page (`since` when there is none)
    more: bool  # more changes follow


def changed_leads(conn: Connection, *, org_id: int, query: ChangesQuery) -> ChangesPage:
    """The leads matching `query.filters` whose position is after `query.since`, oldest
    change first, at most `query.filters.limit` of them."""
    filters, since = query.filters, query.since
    fields = filters.fields or LEAD_FIELDS
    statement = (
        sa.select(*columns_for(fields), _SEQ.label("_seq"), leads.c.id.label("_id"))
        .where(
            where_clause(filters, org_id=org_id, dialect=conn.dialect.name),
            sa.tuple_(_SEQ, leads.c.id) > sa.tuple_(sa.literal(since.seq), since.lead_id),
        )
        .order_by(_SEQ, leads.c.id)
        .limit(filters.limit + 1)
    )
    rows: list[Sequence[Any]] = list(conn.execute(statement).all())
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    last = FeedPosition(int(rows[-1][-2]), str(rows[-1][-1])) if rows else since
    return ChangesPage(fields, [row[:-2] for row in rows], last, more)
